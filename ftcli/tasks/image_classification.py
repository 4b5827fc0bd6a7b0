"""Image classification: one label per image (an image folder, a table of image paths, a hub image set)."""

from __future__ import annotations

from ftcli.config.schemas import ImageClassificationConfig
from ftcli.tasks.classification import Classification
from ftcli.tasks.image import ImageTask


class ImageClassification(Classification, ImageTask):
    schema = ImageClassificationConfig
