"""CLIP and SigLIP models that are also image classifiers: transformers' ``CLIPModel`` / ``SiglipModel`` plus one
linear layer (``classifier``) over the L2-normalised image embedding (CLIP's projected one; SigLIP has no
projections: its vision tower's attention-pooling head gives the embedding).

Its weights start as the zero-shot classifier: row c is ``exp(logit_scale)`` times the normalised, template-
averaged text embedding of class c, and (SigLIP) every bias is ``logit_bias``, so ``logits`` equal the model's
own zero-shot logits (``logits_per_image``) before any training. Given ``input_ids`` too, ``forward`` is the
model's own (contrastive training).

This file is self-contained (torch and transformers only) on purpose: ftcli copies it into every CLIP/SigLIP
checkpoint and points ``auto_map`` at it, so ``AutoModelForImageClassification.from_pretrained(path,
trust_remote_code=True)`` and ``pipeline("image-classification", model=path, trust_remote_code=True)`` give
ftcli's predictions; ``CLIPModel.from_pretrained(path)`` (``SiglipModel``, ``AutoModel``) loads the same folder
as a plain model (both towers, for zero-shot with any label set), leaving the classifier aside.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import CLIPConfig, CLIPModel, SiglipConfig, SiglipModel
from transformers.modeling_outputs import ImageClassifierOutput


def _normalised(emb: torch.Tensor) -> torch.Tensor:
    return emb / emb.norm(p=2, dim=-1, keepdim=True).clamp(min=1e-12)


class ZeroShotClassifierMixin:
    """The head and the embeddings, for any two-tower model whose ``get_image_features`` /
    ``get_text_features`` return the embedding as ``pooler_output`` (transformers 5)."""

    head_bias = False  # SigLIP's logits carry a learnt bias; CLIP's do not

    def add_classifier(self, config: Any, dim: int) -> None:
        # the config's num_labels is 2 unless the labels were given: the head has one row per label
        self.classifier = nn.Linear(dim, int(config.num_labels or 0), bias=self.head_bias)

    def image_embeds(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The L2-normalised image embedding (what the classifier reads)."""
        return _normalised(self.get_image_features(pixel_values=pixel_values).pooler_output)  # type: ignore[attr-defined]

    def text_embeds(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The L2-normalised text embedding."""
        out = self.get_text_features(input_ids=input_ids, attention_mask=attention_mask)  # type: ignore[attr-defined]
        return _normalised(out.pooler_output)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> Any:
        if input_ids is not None:  # both towers: the model's own output (normalised embeddings, scaled logits)
            return super().forward(  # type: ignore[misc]
                input_ids=input_ids, pixel_values=pixel_values, attention_mask=attention_mask
            )
        if pixel_values is None:
            raise ValueError("pixel_values are required")
        logits = self.classifier(self.image_embeds(pixel_values).to(self.classifier.weight.dtype))
        loss = nn.functional.cross_entropy(logits.float(), labels) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits)


class FtcliClipForImageClassification(ZeroShotClassifierMixin, CLIPModel):
    """CLIPModel + a bias-free head on the normalised projected image embedding."""

    config_class = CLIPConfig

    def __init__(self, config: CLIPConfig) -> None:
        super().__init__(config)
        self.add_classifier(config, int(config.projection_dim or 0))
        self.post_init()


class FtcliSiglipForImageClassification(ZeroShotClassifierMixin, SiglipModel):
    """SiglipModel + a head (with bias: ``logit_bias`` at zero-shot) on the normalised pooled image embedding."""

    config_class = SiglipConfig
    head_bias = True

    def __init__(self, config: SiglipConfig) -> None:
        super().__init__(config)
        self.add_classifier(config, int(config.vision_config.hidden_size))  # type: ignore[union-attr]
        self.post_init()
