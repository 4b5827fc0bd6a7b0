"""The ``task=image_regression`` schema: one number per image (an age, a count, a score)."""

from __future__ import annotations

from dataclasses import dataclass

from ftcli.config.schemas import TaskConfig


@dataclass
class ImageRegressionConfig(TaskConfig):
    option = "image_regression"
    inputs = "image"
    metrics = ("pearson", "spearman", "mse", "mae", "loss")
