"""The ``task=relation_extraction`` schema: the relation between a subject and an object span of a sentence
(TACRED's rows and scoring)."""

from __future__ import annotations

from dataclasses import dataclass

from ftcli.config.schemas import TaskConfig, opt

MARKERS = ("typed", "plain", "none")


@dataclass
class RelationExtractionConfig(TaskConfig):
    option = "relation_extraction"
    # TACRED's official micro scores leave `negative` out (a guess of it is no guess); macro F1 over the relations
    metrics = ("f1", "precision", "recall", "macro_f1", "accuracy", "loss")
    # typed: [S:PERSON] Maria [/S:PERSON] … [O:CITY] … [/O:CITY]; plain: [S] … [/S], [O] … [/O]. Markers are new
    # special tokens, their embeddings start from existing ones, and the head reads the two start markers' states.
    # none: the sentence alone through the pooled head (strategy.pooling / model.pooling; cls is the usual one)
    marker: str = opt("typed", choices=MARKERS)
    negative: str = "no_relation"  # the label that means "no relation"
