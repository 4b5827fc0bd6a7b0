"""The ``task=clip_classification`` schema: CLIP's (or SigLIP's) image tower as a classifier, its head the
zero-shot classifier."""

from __future__ import annotations

from dataclasses import dataclass

from ftcli.config.schemas import CLASSIFICATION_METRICS, TaskConfig, opt


@dataclass
class ClipClassificationConfig(TaskConfig):
    """CLIP's image tower as a classifier whose head starts as the zero-shot classifier (configs/task)."""

    option = "clip_classification"
    inputs = "image"
    metrics = CLASSIFICATION_METRICS
    # prompts per class name, averaged in embedding space ("{}" is the class name)
    templates: list[str] = opt(factory=lambda: ["a photo of a {}."])
    head_init: str = opt("zeroshot", choices=("zeroshot", "random"))  # random: to measure what zero-shot gives
