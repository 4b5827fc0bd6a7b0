"""The classification objective: one class per row, softmax + cross-entropy, accuracy and friends,
calibration and bootstrap intervals in ``ftcli eval``, a label with probabilities per prediction."""

from __future__ import annotations

from typing import Any

import numpy as np

from ftcli.config.schemas import DatasetConfig
from ftcli.tasks.base import OtherSplit, Task, TaskData


class Classification(Task):
    problem_type = "single_label_classification"

    def load_data(self, dataset: DatasetConfig, seed: int) -> TaskData:
        """Every split with integer ``labels``: strings map through ``dataset.label_names`` (or their sorted
        set in the train split), integer ids must be in range."""
        from ftcli.data.labels import class_names, encode_class_labels
        from ftcli.data.tables import finish_splits, require_columns

        raw = self.raw(dataset)
        column = dataset.label_column
        require_columns(raw, [*self.input_columns(dataset), ("label_column", column)])
        names = list(dataset.label_names or class_names(raw.splits["train"], column, raw.where["train"]))
        splits = {s: encode_class_labels(ds, column, names, raw.where[s]) for s, ds in raw.splits.items()}
        columns = [c for _, c in self.input_columns(dataset) if c]
        return TaskData(finish_splits(splits, dataset, seed, [*columns, "labels"]), names, columns)

    def criterion(self, outputs: Any, labels: Any) -> Any:
        import torch

        return torch.nn.functional.cross_entropy(outputs.float(), labels)

    def metric_error(self, metric: str, label_names: list[str]) -> str | None:
        if metric == "top5_accuracy" and len(label_names) <= 5:
            return f"trainer.metric=top5_accuracy: needs more than 5 classes; the data has {len(label_names)}"
        return None

    def metrics(self, outputs: np.ndarray, labels: np.ndarray, names: list[str]) -> dict[str, Any]:
        from ftcli.metrics.classification import classification_metrics

        return classification_metrics(labels, outputs, names)

    def eval_extras(
        self, outputs: np.ndarray, labels: np.ndarray, options: Any, seed: int, other: OtherSplit | None = None
    ) -> dict[str, Any]:
        """ECE, reliability bins and bootstrap intervals; with ``temperature_scaling`` one temperature fitted
        on held-out data (``calibration_split`` via ``other``, else a seeded half) and ECE before → after."""
        from ftcli.metrics.calibration import calibration_report

        extras = calibration_report(outputs, labels, options.ece_bins, options.bootstrap, seed)
        if options.temperature_scaling:
            extras["temperature_scaling"] = self._temperature(outputs, labels, options, seed, other)
        return extras

    def _temperature(
        self, outputs: np.ndarray, labels: np.ndarray, options: Any, seed: int, other: OtherSplit | None
    ) -> dict[str, Any]:
        from ftcli.metrics.calibration import expected_calibration_error as ece
        from ftcli.metrics.calibration import fit_temperature, reliability_bins
        from ftcli.metrics.classification import softmax

        if options.calibration_split and other is not None:  # fit on another split, judge on this whole one
            fit_out, fit_labels = other(options.calibration_split)
            held_out, held_labels, where = outputs, labels, f"fitted on {options.calibration_split}"
        else:  # fit on a seeded half of the split, judge on the other half (never on the fitting data)
            perm = np.random.default_rng(seed).permutation(len(labels))
            fit, held = perm[: len(perm) // 2], perm[len(perm) // 2 :]
            fit_out, fit_labels, held_out, held_labels = outputs[fit], labels[fit], outputs[held], labels[held]
            where = f"fitted on half of {options.split} ({len(fit)}), measured on the other half ({len(held)})"
        t, bins = fit_temperature(fit_out, fit_labels), options.ece_bins
        return {
            "temperature": t,
            "where": where,
            "ece_before": ece(softmax(held_out), held_labels, bins),
            "ece_after": ece(softmax(held_out, t), held_labels, bins),
            "reliability_before": reliability_bins(softmax(held_out), held_labels, bins),
            "reliability_after": reliability_bins(softmax(held_out, t), held_labels, bins),
        }

    def predictions(self, outputs: np.ndarray, names: list[str]) -> list[dict[str, Any]]:
        from ftcli.metrics.classification import softmax

        probs = softmax(outputs)
        return [
            {"label": names[int(p.argmax())], "probabilities": dict(zip(names, map(float, p), strict=True))}
            for p in probs
        ]

    def card_task(self, labels: list[str] | None) -> str:
        names = f" into {len(labels)} classes: " + ", ".join(f"`{n}`" for n in labels) if labels else ""
        return f"{self.inputs} classification{names}"

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
