"""A CLIP model that is also an image classifier: transformers' ``CLIPModel`` plus one bias-free linear layer
(``classifier``) over the L2-normalised image embedding.

Its weights start as the zero-shot classifier: row c is ``exp(logit_scale)`` times the normalised, template-
averaged text embedding of class c, so ``logits`` equal CLIP's zero-shot logits before any training. Given
``input_ids`` too, ``forward`` is ``CLIPModel.forward`` (contrastive training).

This file is self-contained (torch and transformers only) on purpose: ftcli copies it into every CLIP
checkpoint and points ``auto_map`` at it, so ``AutoModelForImageClassification.from_pretrained(path,
trust_remote_code=True)`` and ``pipeline("image-classification", model=path, trust_remote_code=True)`` give
ftcli's predictions; ``CLIPModel.from_pretrained(path)`` loads the same folder as a plain CLIP (both towers,
for zero-shot with any label set), leaving ``classifier.weight`` aside.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import CLIPConfig, CLIPModel
from transformers.modeling_outputs import ImageClassifierOutput


class FtcliClipForImageClassification(CLIPModel):
    config_class = CLIPConfig

    def __init__(self, config: CLIPConfig) -> None:
        super().__init__(config)
        # CLIPConfig's num_labels is 2 unless the labels were given: the head has one row per label
        self.classifier = nn.Linear(int(config.projection_dim or 0), int(config.num_labels or 0), bias=False)
        self.post_init()

    def image_embeds(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The L2-normalised projected image embedding (what the classifier reads)."""
        out = self.vision_model(pixel_values=pixel_values)
        emb = self.visual_projection(out.pooler_output)
        return emb / emb.norm(p=2, dim=-1, keepdim=True).clamp(min=1e-12)

    def text_embeds(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The L2-normalised projected text embedding."""
        out = self.text_model(input_ids=input_ids, attention_mask=attention_mask)
        emb = self.text_projection(out.pooler_output)
        return emb / emb.norm(p=2, dim=-1, keepdim=True).clamp(min=1e-12)

    def forward(  # type: ignore[override]
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> Any:
        if input_ids is not None:  # both towers: CLIP's own output (normalised embeddings, scaled logits)
            return super().forward(input_ids=input_ids, pixel_values=pixel_values, attention_mask=attention_mask)
        if pixel_values is None:
            raise ValueError("pixel_values are required")
        logits = self.classifier(self.image_embeds(pixel_values).to(self.classifier.weight.dtype))
        loss = nn.functional.cross_entropy(logits.float(), labels) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits)
