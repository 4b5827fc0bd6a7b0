"""The ``task=text_multilabel`` schema: any number of labels per text (topics, tags, intents)."""

from __future__ import annotations

from dataclasses import dataclass

from ftcli.config.schemas import TaskConfig, opt


@dataclass
class TextMultiLabelConfig(TaskConfig):
    option = "text_multilabel"
    metrics = ("f1_micro", "f1_macro", "subset_accuracy", "precision_micro", "recall_micro", "loss")
    # a label is predicted when its sigmoid reaches this; `ftcli eval eval.tune_thresholds=true` tunes one per
    # label on validation data and stores them in the checkpoint (predict then uses those)
    threshold: float = opt(0.5, gt=0.0, lt=1.0)
