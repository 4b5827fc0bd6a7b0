"""The regression objective: one number per row, mean squared error, Pearson / Spearman / MSE / MAE,
bootstrap intervals in ``ftcli eval``, a score per prediction."""

from __future__ import annotations

from typing import Any

import numpy as np

from ftcli.config.schemas import DatasetConfig
from ftcli.tasks.base import OtherSplit, Task, TaskData

SCORE = "score"  # the head's one output, as id2label names it


class Regression(Task):
    problem_type = "regression"

    def load_data(self, dataset: DatasetConfig, seed: int) -> TaskData:
        """Every split with float ``labels``; a value that is not a number names its file and row."""
        from ftcli.data.labels import encode_float_labels
        from ftcli.data.tables import finish_splits, require_columns

        raw = self.raw(dataset)
        column = dataset.label_column
        require_columns(raw, [*self.input_columns(dataset), ("label_column", column)])
        splits = {s: encode_float_labels(ds, column, raw.where[s]) for s, ds in raw.splits.items()}
        columns = [c for _, c in self.input_columns(dataset) if c]
        return TaskData(finish_splits(splits, dataset, seed, [*columns, "labels"]), [SCORE], columns)

    def criterion(self, outputs: Any, labels: Any) -> Any:
        import torch

        return torch.nn.functional.mse_loss(outputs.float().squeeze(-1), labels.float())

    def metrics(self, outputs: np.ndarray, labels: np.ndarray, names: list[str]) -> dict[str, Any]:
        from ftcli.metrics.regression import regression_metrics

        return regression_metrics(labels, outputs[:, 0])

    def eval_extras(
        self, outputs: np.ndarray, labels: np.ndarray, options: Any, seed: int, other: OtherSplit | None = None
    ) -> dict[str, Any]:
        """95% bootstrap intervals of Pearson, Spearman and MSE."""
        from ftcli.metrics.calibration import bootstrap_ci
        from ftcli.metrics.regression import pearson, spearman

        if options.bootstrap <= 0:
            return {}

        def mse(t: np.ndarray, p: np.ndarray) -> float:
            return float(((p - t) ** 2).mean())

        fns = {"pearson": pearson, "spearman": spearman, "mse": mse}
        ci = bootstrap_ci(labels, outputs[:, 0], fns, options.bootstrap, 0.95, seed)
        return {"ci95": {k: list(v) for k, v in ci.items()}}

    def predictions(self, outputs: np.ndarray, names: list[str]) -> list[dict[str, Any]]:
        return [{SCORE: float(v)} for v in outputs[:, 0]]

    def card_task(self, labels: list[str] | None) -> str:
        return f"{self.inputs} regression: one score per input (mean squared error)"

    def gold(self, values: list[Any], names: list[str]) -> np.ndarray | None:
        """The column as numbers, or None when any value is not one."""
        try:
            return np.asarray([float(v) for v in values])
        except (TypeError, ValueError):
            return None
