"""The ``task=clip_contrastive`` schema: both CLIP towers trained on image–caption pairs."""

from __future__ import annotations

from dataclasses import dataclass

from ftcli.config.schemas import CLASSIFICATION_METRICS, RETRIEVAL_METRICS, TaskConfig, opt


@dataclass
class ClipContrastiveConfig(TaskConfig):
    """Both CLIP towers trained on image–caption pairs with CLIP's symmetric InfoNCE (configs/task)."""

    option = "clip_contrastive"
    inputs = "image"
    metrics = (*CLASSIFICATION_METRICS[:-1], *RETRIEVAL_METRICS, "loss")  # accuracy: zero-shot, from prompts
    templates: list[str] = opt(factory=lambda: ["a photo of a {}."])
    # each row's caption (a missing column is an error); null: templates[0] of the row's label (data without captions)
    caption_column: str | None = "caption"
