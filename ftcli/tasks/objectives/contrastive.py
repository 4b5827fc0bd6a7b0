"""The contrastive objective on image–caption pairs: CLIP's symmetric InfoNCE with its learnable temperature
(SigLIP: its pairwise sigmoid loss, with a learnable bias too) and negatives from every process; evaluated as a
zero-shot classifier of the class names (their prompts) and by retrieval (image→text, text→image Recall@1/5/10,
mean rank).

Its outputs (made by the caption inputs, ``tasks/inputs/clip.py``) are ``[zero-shot logits | image embedding |
caption embedding | caption id]`` per row: the class names' logits come first, so what reads logits (predictions,
calibration) reads those.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ftcli.config.schemas import DatasetConfig
from ftcli.data.tables import Raw
from ftcli.metrics.retrieval import retrieval_metrics
from ftcli.tasks.objectives.classification import Classification
from ftcli.tasks.objectives.clip_losses import family_loss
from ftcli.tasks.task import Evaluation, Labelled


class Contrastive:
    """Both towers of a CLIP/SigLIP model trained on pairs; the class names make its zero-shot classifier."""

    problem_type = "single_label_classification"  # the head (derived from the text tower) is a classifier

    def __init__(self) -> None:
        self.classes = Classification()  # labels, zero-shot accuracy, calibration, predictions

    def labels(self, raw: Raw, dataset: DatasetConfig, inputs: list[tuple[str, str | None]]) -> Labelled:
        return self.classes.labels(raw, dataset, inputs)

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        out = model(
            pixel_values=batch["pixel_values"], input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        )
        inner = getattr(model, "module", model)  # under DDP: the wrapped model's own logit_scale (and bias)
        return family_loss(inner.config.model_type, out.image_embeds, out.text_embeds, inner)

    def metric_error(self, metric: str, names: list[str]) -> str | None:
        return self.classes.metric_error(metric, names)

    def metrics(self, outputs: np.ndarray, labels: np.ndarray, names: list[str]) -> dict[str, Any]:
        c = len(names)
        metrics = self.classes.metrics(outputs[:, :c], labels, names)
        if outputs.shape[1] > c:  # packed by the inputs; predict's outputs are the logits alone
            d = (outputs.shape[1] - c - 1) // 2
            image, text = outputs[:, c : c + d], outputs[:, c + d : c + 2 * d]
            metrics.update(retrieval_metrics(image, text, outputs[:, -1].astype(np.int64)))
        return metrics

    def extras(self, outputs: np.ndarray, labels: np.ndarray, names: list[str], how: Evaluation) -> dict[str, Any]:
        c, other = len(names), how.other
        sliced = None if other is None else (lambda split: (other(split)[0][:, :c], other(split)[1]))
        return self.classes.extras(outputs[:, :c], labels, names, Evaluation(how.options, how.seed, sliced))

    def predictions(self, outputs: np.ndarray, names: list[str]) -> list[dict[str, Any]]:
        return self.classes.predictions(outputs[:, : len(names)], names)

    def gold(self, values: list[Any], names: list[str]) -> np.ndarray | None:
        return self.classes.gold(values, names)

    def describe(self, kind: str, labels: list[str] | None) -> str:
        return "CLIP image–text model (contrastive), zero-shot " + self.classes.describe(kind, labels)
