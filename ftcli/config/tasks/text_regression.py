"""The ``task=text_regression`` schema: one number per text or text pair (STS-B-style similarity, ratings)."""

from __future__ import annotations

from dataclasses import dataclass

from ftcli.config.schemas import TaskConfig


@dataclass
class TextRegressionConfig(TaskConfig):
    option = "text_regression"
    metrics = ("pearson", "spearman", "mse", "mae", "loss")
