"""The ``task=token_classification`` schema: a tag per word: named entities (CoNLL files, token/tag lists, hub sets)."""

from __future__ import annotations

from dataclasses import dataclass

from ftcli.config.schemas import TaskConfig, opt

TAG_SCHEMES = ("IOB1", "IOB2", "BIOES")


@dataclass
class TokenClassificationConfig(TaskConfig):
    option = "token_classification"
    metrics = ("f1", "precision", "recall", "accuracy", "loss")  # entity-level (seqeval's semantics); accuracy: tags
    # how the data's tags mark entities; auto: read them as any of the three (B-/I-/E-/S-/O prefixes).
    # The model always learns IOB2 tags (what transformers' token-classification pipeline groups).
    tag_scheme: str = opt("auto", choices=("auto", *TAG_SCHEMES))
    stride: int = opt(32, ge=0)  # tokens shared by consecutive windows of a sentence longer than model.max_length
