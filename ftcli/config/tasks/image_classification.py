"""The ``task=image_classification`` schema: one label per image (an image folder, a table of image paths, a hub
image set)."""

from __future__ import annotations

from dataclasses import dataclass

from ftcli.config.schemas import TaskConfig


@dataclass
class ImageClassificationConfig(TaskConfig):
    option = "image_classification"
    inputs = "image"
    # top5_accuracy: reported when there are more than 5 classes
    metrics = ("accuracy", "top5_accuracy", "f1_macro", "precision_macro", "recall_macro", "mcc", "loss")
