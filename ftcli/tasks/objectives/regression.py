"""The regression objective: one number per row, mean squared error, Pearson / Spearman / MSE / MAE, bootstrap
intervals in ``ftcli eval``, a score per prediction."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ftcli.config.schemas import DatasetConfig
from ftcli.data.labels import encode_float_labels
from ftcli.data.tables import Raw, require_columns
from ftcli.metrics.calibration import bootstrap_ci
from ftcli.metrics.regression import pearson, regression_metrics, spearman
from ftcli.runtime.inference import logits_of
from ftcli.tasks.task import Evaluation, Labelled

SCORE = "score"  # the head's one output, as id2label names it


def _mse(targets: np.ndarray, preds: np.ndarray) -> float:
    return float(((preds - targets) ** 2).mean())


class Regression:
    """One score per row: a one-output head."""

    problem_type = "regression"

    def labels(self, raw: Raw, dataset: DatasetConfig, inputs: list[tuple[str, str | None]]) -> Labelled:
        """Every split with float ``labels``; a value that is not a number names its file and row."""
        column = dataset.label_column
        require_columns(raw, [*inputs, ("dataset.label_column", column)])
        return Labelled({s: encode_float_labels(ds, column, raw.where[s]) for s, ds in raw.splits.items()}, [SCORE])

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        return torch.nn.functional.mse_loss(logits_of(model, batch).float().squeeze(-1), batch["labels"].float())

    def metric_error(self, metric: str, names: list[str]) -> str | None:
        return None

    def metrics(self, outputs: np.ndarray, labels: np.ndarray, names: list[str]) -> dict[str, Any]:
        return regression_metrics(labels, outputs[:, 0])

    def extras(self, outputs: np.ndarray, labels: np.ndarray, names: list[str], how: Evaluation) -> dict[str, Any]:
        """95% bootstrap intervals of Pearson, Spearman and MSE."""
        if how.options.bootstrap <= 0:
            return {}
        fns = {"pearson": pearson, "spearman": spearman, "mse": _mse}
        ci = bootstrap_ci(labels, outputs[:, 0], fns, how.options.bootstrap, 0.95, how.seed)
        return {"ci95": {k: list(v) for k, v in ci.items()}}

    def predictions(self, outputs: np.ndarray, names: list[str]) -> list[dict[str, Any]]:
        return [{SCORE: float(v)} for v in outputs[:, 0]]

    def gold(self, values: list[Any], names: list[str]) -> np.ndarray | None:
        """The column as numbers, or None when any value is not one."""
        try:
            return np.asarray([float(v) for v in values])
        except (TypeError, ValueError):
            return None

    def describe(self, kind: str, labels: list[str] | None) -> str:
        return f"{kind} regression: one score per input (mean squared error)"
