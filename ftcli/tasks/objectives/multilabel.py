"""The multi-label objective: any number of labels per row (topics, tags), one sigmoid per label with binary
cross-entropy, micro/macro F1, subset accuracy and per-label precision/recall/F1.

A label is predicted when its probability reaches a threshold: ``task.threshold`` (0.5), or one per label tuned on
validation data by ``ftcli eval eval.tune_thresholds=true`` and stored in the checkpoint (``thresholds.json``), which
``ftcli predict`` and later evaluations then use (:func:`read_thresholds`: the registry gives them to the objective).

Labels come from a list-valued column (JSON/JSONL/Parquet/hub: ``["sports", "politics"]``) or from one 0/1 column
per label (``dataset.label_columns=[sports,politics]``, e.g. a CSV).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import DatasetConfig
from ftcli.config.tasks.text_multilabel import TextMultiLabelConfig
from ftcli.data.labels import encode_label_columns, encode_label_lists, label_set
from ftcli.data.tables import Raw, require_columns
from ftcli.metrics.calibration import bootstrap_ci
from ftcli.metrics.multilabel import (
    as_two_classes,
    bce,
    binary_calibration,
    multilabel_metrics,
    sigmoid,
    tune_thresholds,
)
from ftcli.runtime.files import with_file
from ftcli.runtime.inference import logits_of
from ftcli.tasks.objectives.classification import temperature
from ftcli.tasks.task import Evaluation, Labelled

THRESHOLDS = "thresholds.json"  # in a checkpoint: {"thresholds": {label: t}, "fitted_on": ...}


def read_thresholds(folder: Path | None) -> dict[str, float]:
    """The per-label thresholds ``ftcli eval`` stored in a checkpoint folder (none: {})."""
    path = Path(folder) / THRESHOLDS if folder is not None else None
    if path is None or not path.is_file():
        return {}
    try:
        return {str(k): float(v) for k, v in json.loads(path.read_text())["thresholds"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise FtcliError(f"checkpoint={folder}: {THRESHOLDS} is unreadable ({e})") from e


class MultiLabel:
    """Any number of labels per row: a sigmoid per label."""

    problem_type = "multi_label_classification"  # transformers: sigmoid + BCE (pipelines apply the sigmoid)

    def __init__(self, cfg: TextMultiLabelConfig, tuned: dict[str, float]) -> None:
        self.cfg = cfg
        self.tuned = tuned  # per-label thresholds read from the checkpoint

    def labels(self, raw: Raw, dataset: DatasetConfig, inputs: list[tuple[str, str | None]]) -> Labelled:
        """Every split with a multi-hot ``labels`` column (floats, one per label name)."""
        if dataset.label_columns:
            label_columns = list(dataset.label_columns)
            require_columns(raw, [*inputs, *[("dataset.label_columns", c) for c in label_columns]])
            names = list(dataset.label_names or label_columns)
            if sorted(names) != sorted(label_columns):
                raise FtcliError(
                    f"dataset.label_columns={label_columns}: the model's labels are {names}; name the same columns"
                )
            return Labelled({s: encode_label_columns(ds, names, raw.where[s]) for s, ds in raw.splits.items()}, names)
        column = dataset.label_column
        require_columns(raw, [*inputs, ("dataset.label_column", column)])
        names = list(dataset.label_names or label_set(raw.splits["train"], column, raw.where["train"]))
        return Labelled({s: encode_label_lists(ds, column, names, raw.where[s]) for s, ds in raw.splits.items()}, names)

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        logits = logits_of(model, batch).float()
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, batch["labels"].float())

    def metric_error(self, metric: str, names: list[str]) -> str | None:
        return None

    def thresholds(self, names: list[str]) -> np.ndarray:
        """The decision threshold of each label: tuned ones from the checkpoint, else ``task.threshold``."""
        return np.asarray([self.tuned.get(n, float(self.cfg.threshold)) for n in names])

    def metrics(self, outputs: np.ndarray, labels: np.ndarray, names: list[str]) -> dict[str, Any]:
        preds = sigmoid(outputs) >= self.thresholds(names)
        return {**multilabel_metrics(labels, preds, names), "loss": bce(outputs, labels)}

    def extras(self, outputs: np.ndarray, labels: np.ndarray, names: list[str], how: Evaluation) -> dict[str, Any]:
        """Bootstrap intervals; calibration of every (row, label) decision; tuned thresholds when asked."""
        options = how.options
        extras: dict[str, Any] = binary_calibration(outputs, labels, options.ece_bins)
        if options.bootstrap > 0:
            preds = sigmoid(outputs) >= self.thresholds(names)

            def metric(key: str) -> Any:
                return lambda t, p: multilabel_metrics(t, p, names)[key]

            fns = {k: metric(k) for k in ("f1_micro", "f1_macro", "subset_accuracy")}
            ci = bootstrap_ci(labels, preds, fns, options.bootstrap, 0.95, how.seed)
            extras["ci95"] = {k: list(v) for k, v in ci.items()}
        if options.temperature_scaling:  # one temperature for every label's sigmoid
            extras["temperature_scaling"] = temperature(outputs, labels, how, as_two_classes)
        if options.tune_thresholds:
            extras["tuned_thresholds"] = self._tune(outputs, labels, names, how)
        return extras

    def _tune(self, outputs: np.ndarray, labels: np.ndarray, names: list[str], how: Evaluation) -> dict:
        """Per-label thresholds with the best F1 on ``calibration_split`` (else validation); the metrics of the
        evaluated split at those thresholds."""
        options = how.options
        where = options.calibration_split or "validation"
        own = where == options.split or how.other is None
        fit_out, fit_labels = (outputs, labels) if own else how.other(where)  # type: ignore[misc]
        best = tune_thresholds(fit_out, fit_labels, self.thresholds(names))
        after = multilabel_metrics(labels, sigmoid(outputs) >= best, names)
        note = " (the evaluated split itself: optimistic)" if where == options.split else ""
        return {
            "thresholds": dict(zip(names, map(float, best), strict=True)),
            "fitted_on": where + note,
            "metrics": {k: v for k, v in after.items() if k != "per_label"},
        }

    def save_fitted(self, folder: Path, metrics: dict[str, Any]) -> str | None:
        """Tuned thresholds → ``thresholds.json`` in the checkpoint, which is rewritten whole (its manifest too)."""
        tuned = metrics.get("tuned_thresholds")
        if not tuned:
            return None
        record = {"thresholds": tuned["thresholds"], "fitted_on": tuned["fitted_on"], "split": metrics.get("split")}
        folder = Path(folder)
        with_file(folder, THRESHOLDS, json.dumps(record, indent=2) + "\n")
        return f"per-label thresholds (fitted on {tuned['fitted_on']}) → {folder / THRESHOLDS}"

    def predictions(self, outputs: np.ndarray, names: list[str]) -> list[dict[str, Any]]:
        probs = sigmoid(outputs)
        chosen = probs >= self.thresholds(names)
        return [
            {
                "labels": [n for n, on in zip(names, row, strict=True) if on],
                "probabilities": dict(zip(names, map(float, p), strict=True)),
            }
            for p, row in zip(probs, chosen, strict=True)
        ]

    def gold(self, values: list[Any], names: list[str]) -> np.ndarray | None:
        """Lists of label names (or their JSON text) as multi-hot rows; None when a value is not one."""
        rows = []
        for value in values:
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError:
                    return None
            if not isinstance(value, list) or any(str(v) not in names for v in value):
                return None
            rows.append([float(n in {str(v) for v in value}) for n in names])
        return np.asarray(rows)

    def describe(self, kind: str, labels: list[str] | None) -> str:
        names = f" over {len(labels)} labels: " + ", ".join(f"`{n}`" for n in labels) if labels else ""
        return f"{kind} multi-label classification{names} (a sigmoid per label)"
