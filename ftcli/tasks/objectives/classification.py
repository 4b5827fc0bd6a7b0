"""The classification objective: one class per row, softmax + cross-entropy, accuracy and friends, calibration
and bootstrap intervals in ``ftcli eval``, a label with probabilities per prediction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ftcli.config.schemas import DatasetConfig
from ftcli.data.labels import class_names, encode_class_labels
from ftcli.data.tables import Raw, require_columns
from ftcli.metrics.calibration import Split, calibration_report, halves, temperature_scaling
from ftcli.metrics.classification import classification_metrics, softmax
from ftcli.runtime.inference import logits_of
from ftcli.tasks.task import Evaluation, Labelled


class Classification:
    """One class per row: the head has one output per class."""

    problem_type = "single_label_classification"

    def labels(self, raw: Raw, dataset: DatasetConfig, inputs: list[tuple[str, str | None]]) -> Labelled:
        """Every split with integer ``labels``: strings map through ``dataset.label_names`` (or their sorted set in
        the train split), integer ids must be in range."""
        column = dataset.label_column
        require_columns(raw, [*inputs, ("dataset.label_column", column)])
        names = list(dataset.label_names or class_names(raw.splits["train"], column, raw.where["train"]))
        return Labelled(
            {s: encode_class_labels(ds, column, names, raw.where[s]) for s, ds in raw.splits.items()}, names
        )

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        return torch.nn.functional.cross_entropy(logits_of(model, batch).float(), batch["labels"])

    def metric_error(self, metric: str, names: list[str]) -> str | None:
        if metric == "top5_accuracy" and len(names) <= 5:
            return f"trainer.metric=top5_accuracy: needs more than 5 classes; the data has {len(names)}"
        return None

    def metrics(self, outputs: np.ndarray, labels: np.ndarray, names: list[str]) -> dict[str, Any]:
        return classification_metrics(labels, outputs, names)

    def extras(self, outputs: np.ndarray, labels: np.ndarray, names: list[str], how: Evaluation) -> dict[str, Any]:
        """ECE, reliability bins and bootstrap intervals; with ``temperature_scaling`` one temperature fitted on
        held-out data and ECE before → after."""
        options = how.options
        extras = calibration_report(outputs, labels, options.ece_bins, options.bootstrap, how.seed)
        if options.temperature_scaling:
            extras["temperature_scaling"] = temperature(outputs, labels, how)
        return extras

    def predictions(self, outputs: np.ndarray, names: list[str]) -> list[dict[str, Any]]:
        probs = softmax(outputs)
        return [
            {"label": names[int(p.argmax())], "probabilities": dict(zip(names, map(float, p), strict=True))}
            for p in probs
        ]

    def gold(self, values: list[Any], names: list[str]) -> np.ndarray | None:
        """Label names, or integer ids (possibly as text); None when any value is neither."""
        ids = []
        for value in values:
            s = "" if value is None else str(value).strip()
            if s in names:
                ids.append(names.index(s))
            elif s.lstrip("-").isdigit() and 0 <= int(s) < len(names):
                ids.append(int(s))
            else:
                return None
        return np.asarray(ids)

    def describe(self, kind: str, labels: list[str] | None) -> str:
        names = f" into {len(labels)} classes: " + ", ".join(f"`{n}`" for n in labels) if labels else ""
        return f"{kind} classification{names}"


def _same(logits: np.ndarray, labels: np.ndarray) -> Split:
    return logits, labels


def temperature(
    outputs: np.ndarray, labels: np.ndarray, how: Evaluation, as_classes: Callable[..., Split] = _same
) -> dict[str, Any]:
    """One temperature fitted on held-out rows: ``eval.calibration_split`` (the whole evaluated split is judged),
    else a seeded half of the split (judged on the other half). ``as_classes``: (logits, labels) → softmax classes
    (multi-label: each decision as two classes)."""
    options = how.options
    if options.calibration_split and how.other is not None:
        fit, held = how.other(options.calibration_split), (outputs, labels)
        where = f"fitted on {options.calibration_split}"
    else:
        fit, held = halves(outputs, labels, how.seed)
        where = f"fitted on half of {options.split} ({len(fit[1])}), measured on the other half ({len(held[1])})"
    report = temperature_scaling(as_classes(*fit), as_classes(*held), options.ece_bins)
    return {"temperature": report.pop("temperature"), "where": where, **report}
