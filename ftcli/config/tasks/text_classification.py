"""The ``task=text_classification`` schema: one label per text or text pair (SST-2, any CSV or hub set)."""

from __future__ import annotations

from dataclasses import dataclass

from ftcli.config.schemas import TaskConfig


@dataclass
class TextClassificationConfig(TaskConfig):
    option = "text_classification"
    metrics = ("accuracy", "f1_macro", "precision_macro", "recall_macro", "mcc", "loss")
