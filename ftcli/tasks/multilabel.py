"""The multi-label objective: any number of labels per row (topics, tags), one sigmoid per label with binary
cross-entropy, micro/macro F1, subset accuracy and per-label precision/recall/F1.

A label is predicted when its probability reaches a threshold: ``task.threshold`` (0.5), or one per label
tuned on validation data by ``ftcli eval eval.tune_thresholds=true`` and stored in the checkpoint
(``thresholds.json``), which ``ftcli predict`` and later evaluations then use.

Labels come from a list-valued column (JSON/JSONL/Parquet/hub: ``["sports", "politics"]``) or from one 0/1
column per label (``dataset.label_columns=[sports,politics]``, e.g. a CSV).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import DatasetConfig, TextMultiLabelConfig
from ftcli.tasks.base import OtherSplit, Task, TaskData

THRESHOLDS = "thresholds.json"  # in a checkpoint: {"thresholds": {label: t}, "fitted_on": ...}
GRID = np.round(np.arange(0.01, 1.0, 0.01), 2)  # candidate thresholds when tuning


class MultiLabel(Task):
    problem_type = "multi_label_classification"  # transformers: sigmoid + BCE (pipelines apply the sigmoid)
    cfg: TextMultiLabelConfig
    _names: list[str] | None = None  # the label names of the last metrics() call (eval_extras is not told them)

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        self.tuned: dict[str, float] = {}  # per-label thresholds read from a checkpoint

    # ---- data ------------------------------------------------------------------------------------
    def load_data(self, dataset: DatasetConfig, seed: int) -> TaskData:
        """Every split with a multi-hot ``labels`` column (floats, one per label name)."""
        from ftcli.data.tables import finish_splits, load_raw, require_columns

        raw = load_raw(dataset)
        inputs = self.input_columns(dataset)
        if dataset.label_columns:
            label_columns = list(dataset.label_columns)
            require_columns(raw, [*inputs, *[("label_columns", c) for c in label_columns]])
            names = list(dataset.label_names or label_columns)
            if sorted(names) != sorted(label_columns):
                raise FtcliError(
                    f"dataset.label_columns={label_columns}: the model's labels are {names}; name the same columns"
                )
            splits = {s: encode_label_columns(ds, names, raw.where[s]) for s, ds in raw.splits.items()}
        else:
            column = dataset.label_column
            require_columns(raw, [*inputs, ("label_column", column)])
            names = list(dataset.label_names or label_set(raw.splits["train"], column, raw.where["train"]))
            splits = {s: encode_label_lists(ds, column, names, raw.where[s]) for s, ds in raw.splits.items()}
        columns = [c for _, c in inputs if c]
        return TaskData(finish_splits(splits, dataset, seed, [*columns, "labels"]), names, columns)

    # ---- loss and metrics ------------------------------------------------------------------------
    def criterion(self, outputs: Any, labels: Any) -> Any:
        import torch

        return torch.nn.functional.binary_cross_entropy_with_logits(outputs.float(), labels.float())

    def thresholds(self, names: list[str]) -> np.ndarray:
        """The decision threshold of each label: tuned ones from the checkpoint, else ``task.threshold``."""
        return np.asarray([self.tuned.get(n, float(self.cfg.threshold)) for n in names])

    def metrics(self, outputs: np.ndarray, labels: np.ndarray, names: list[str]) -> dict[str, Any]:
        self._names = list(names)  # eval_extras (which is not told them) tunes thresholds per label name
        preds = sigmoid(outputs) >= self.thresholds(names)
        return {**multilabel_metrics(labels, preds, names), "loss": bce(outputs, labels)}

    def eval_extras(
        self, outputs: np.ndarray, labels: np.ndarray, options: Any, seed: int, other: OtherSplit | None = None
    ) -> dict[str, Any]:
        """Bootstrap intervals; calibration of every (row, label) decision; tuned thresholds when asked."""
        from ftcli.metrics.calibration import bootstrap_ci

        names = [str(i) for i in range(outputs.shape[1])]
        extras: dict[str, Any] = binary_calibration(outputs, labels, options.ece_bins)
        preds = sigmoid(outputs) >= self.thresholds(self._names or names)
        if options.bootstrap > 0:

            def metric(key: str) -> Any:
                return lambda t, p: multilabel_metrics(t, p, names)[key]

            fns = {k: metric(k) for k in ("f1_micro", "f1_macro", "subset_accuracy")}
            ci = bootstrap_ci(labels, preds, fns, options.bootstrap, 0.95, seed)
            extras["ci95"] = {k: list(v) for k, v in ci.items()}
        if options.temperature_scaling:
            extras["temperature_scaling"] = binary_temperature(outputs, labels, options, seed, other)
        if options.tune_thresholds:
            extras["tuned_thresholds"] = self._tune(outputs, labels, options, other)
        return extras

    def _tune(self, outputs: np.ndarray, labels: np.ndarray, options: Any, other: OtherSplit | None) -> dict:
        """Per-label thresholds with the best F1 on ``calibration_split`` (else validation); the metrics of
        the evaluated split at those thresholds."""
        where = options.calibration_split or "validation"
        fit_out, fit_labels = (outputs, labels) if where == options.split or other is None else other(where)
        names = self._names or [str(i) for i in range(outputs.shape[1])]
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
        from ftcli.runtime.files import MANIFEST, atomic_folder

        record = {"thresholds": tuned["thresholds"], "fitted_on": tuned["fitted_on"], "split": metrics.get("split")}
        folder = Path(folder)
        with atomic_folder(folder) as tmp:  # hard links: no weights copied, and a linked last/ keeps its files
            for f in sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in (MANIFEST, THRESHOLDS)):
                dest = tmp / f.relative_to(folder)
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.hardlink_to(f)
            (tmp / THRESHOLDS).write_text(json.dumps(record, indent=2) + "\n")
        self.tuned = {k: float(v) for k, v in tuned["thresholds"].items()}
        return f"per-label thresholds (fitted on {tuned['fitted_on']}) → {folder / THRESHOLDS}"

    def load_fitted(self, folder: Path) -> None:
        path = Path(folder) / THRESHOLDS
        if path.is_file():
            try:
                self.tuned = {str(k): float(v) for k, v in json.loads(path.read_text())["thresholds"].items()}
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise FtcliError(f"checkpoint={folder}: {THRESHOLDS} is unreadable ({e})") from e

    # ---- predictions -------------------------------------------------------------------------------
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

    def card_task(self, labels: list[str] | None) -> str:
        names = f" over {len(labels)} labels: " + ", ".join(f"`{n}`" for n in labels) if labels else ""
        return f"{self.inputs} multi-label classification{names} (a sigmoid per label)"

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


# ---- labels: list columns or 0/1 columns, with errors that name the row -----------------------------


def _natural(name: str) -> tuple[int, Any]:
    return (0, int(name)) if name.lstrip("-").isdigit() else (1, name)


def _row_lists(ds: Any, column: str, where: str) -> list[list[str]]:
    """Each row's labels as strings; a cell that is not a list names its row and the two ways to give labels."""
    rows = []
    for i, value in enumerate(ds[column]):
        if value is None:
            value = []
        if not isinstance(value, list):
            raise FtcliError(
                f"row {i + 1} of {where}: column '{column}' holds {value!r}, not a list of labels; a multi-label row "
                'is a list (JSON: ["sports", "music"]), or give one 0/1 column per label with dataset.label_columns'
            )
        rows.append([str(v) for v in value])
    return rows


def label_set(ds: Any, column: str, where: str) -> list[str]:
    """The labels that occur in the train split (numbers in numeric order, then names sorted)."""
    names = sorted({v for row in _row_lists(ds, column, where) for v in row}, key=_natural)
    if not names:
        raise FtcliError(f"column '{column}' of {where} holds no labels at all")
    return names


def _with_labels(ds: Any, key: list[Any], rows: list[list[float]], where: str) -> Any:
    digest = hashlib.sha256(json.dumps([ds._fingerprint, *key], default=str).encode()).hexdigest()[:16]
    return ds.map(
        lambda _, idx: {"labels": [rows[i] for i in idx]},
        with_indices=True,
        batched=True,
        desc=f"labels ({where})",
        new_fingerprint=digest,
    )


def encode_label_lists(ds: Any, column: str, names: list[str], where: str) -> Any:
    """A multi-hot ``labels`` column from a list column; a label outside ``names`` names its row."""
    index = {n: i for i, n in enumerate(names)}
    rows = []
    for i, values in enumerate(_row_lists(ds, column, where)):
        hot = [0.0] * len(names)
        for v in values:
            if v not in index:
                raise FtcliError(
                    f"label {v!r} in row {i + 1} of {where} is not one of the labels {names}; a multi-label row may "
                    "only hold labels of the training data: set dataset.label_names, or fix the data"
                )
            hot[index[v]] = 1.0
        rows.append(hot)
    return _with_labels(ds, ["lists", column, names], rows, where)


def _zero_one(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value)) and value in (0, 1):
        return float(value)
    if isinstance(value, str) and value.strip().lower() in ("0", "1", "true", "false"):
        return float(value.strip().lower() in ("1", "true"))
    return None


def encode_label_columns(ds: Any, names: list[str], where: str) -> Any:
    """A multi-hot ``labels`` column from one 0/1 column per label; anything else names its row and column."""
    columns = {n: ds[n] for n in names}
    rows = []
    for i in range(len(ds)):
        hot = []
        for n in names:
            bit = _zero_one(columns[n][i])
            if bit is None:
                raise FtcliError(
                    f"value {columns[n][i]!r} in row {i + 1} of {where} (column '{n}') is not 0 or 1; "
                    "dataset.label_columns names one 0/1 column per label"
                )
            hot.append(bit)
        rows.append(hot)
    return _with_labels(ds, ["columns", names], rows, where)


# ---- metrics in numpy (scikit-learn gives the same numbers: tests check) -----------------------------


def sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -x.astype(np.float64)))  # no overflow for large |x|


def bce(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean binary cross-entropy of sigmoid(logits) over every (row, label), as torch computes it."""
    x = logits.astype(np.float64)
    return float((np.logaddexp(0.0, x) - labels * x).mean())


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0 (scikit-learn's zero_division=0)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def multilabel_metrics(labels: np.ndarray, preds: np.ndarray, names: list[str]) -> dict[str, Any]:
    """Micro and macro precision/recall/F1, subset accuracy, Hamming loss and per-label P/R/F1/support of
    multi-hot ``preds`` against multi-hot ``labels`` ([rows, labels] each)."""
    y, p = labels.astype(bool), preds.astype(bool)
    tp, fp, fn = (y & p).sum(0), (~y & p).sum(0), (y & ~p).sum(0)
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    TP, FP, FN = tp.sum(), fp.sum(), fn.sum()  # noqa: N806  (the totals of tp, fp, fn)
    return {
        "f1_micro": float(_ratio(2 * TP, 2 * TP + FP + FN)),
        "f1_macro": float(f1.mean()),
        "subset_accuracy": float((y == p).all(1).mean()),
        "precision_micro": float(_ratio(TP, TP + FP)),
        "recall_micro": float(_ratio(TP, TP + FN)),
        "precision_macro": float(precision.mean()),
        "recall_macro": float(recall.mean()),
        "hamming_loss": float((y != p).mean()),
        "per_label": {
            n: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(y[:, i].sum()),
            }
            for i, n in enumerate(names)
        },
        "examples": len(labels),
    }


def tune_thresholds(logits: np.ndarray, labels: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Per label, the threshold on GRID with the best F1 (ties: the one nearest the current threshold);
    a label without a positive example keeps its current threshold."""
    probs, y = sigmoid(logits), labels.astype(bool)
    best, best_f1 = start.astype(np.float64).copy(), np.full(len(start), -1.0)
    for t in sorted(GRID, key=lambda g: abs(g - 0.5)):  # nearest 0.5 first: a tie keeps the nearer one
        p = probs >= t
        tp, fp, fn = (y & p).sum(0), (~y & p).sum(0), (y & ~p).sum(0)
        f1 = _ratio(2 * tp, 2 * tp + fp + fn)
        better = (f1 > best_f1 + 1e-12) & (y.sum(0) > 0)
        best[better], best_f1[better] = t, f1[better]
    return best


# ---- calibration: every (row, label) decision is a binary prediction ---------------------------------


def _binary(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[rows, labels] logits → two-class logits [rows·labels, 2] (softmax of (0, z) is sigmoid(z)), targets."""
    z = logits.astype(np.float64).reshape(-1)
    return np.stack([np.zeros_like(z), z], 1), labels.reshape(-1).astype(np.int64)


def binary_calibration(logits: np.ndarray, labels: np.ndarray, bins: int) -> dict[str, Any]:
    from ftcli.metrics.calibration import expected_calibration_error, reliability_bins
    from ftcli.metrics.classification import softmax

    two, y = _binary(logits, labels)
    probs = softmax(two)
    return {"ece": expected_calibration_error(probs, y, bins), "reliability": reliability_bins(probs, y, bins)}


def binary_temperature(
    logits: np.ndarray, labels: np.ndarray, options: Any, seed: int, other: OtherSplit | None
) -> dict[str, Any]:
    """One temperature for every label's sigmoid, fitted by NLL on held-out rows (``calibration_split``, else
    a seeded half of the split); ECE before → after on rows it was not fitted on."""
    from ftcli.metrics.calibration import expected_calibration_error as ece
    from ftcli.metrics.calibration import fit_temperature, reliability_bins
    from ftcli.metrics.classification import softmax

    if options.calibration_split and other is not None:
        fit_out, fit_labels = other(options.calibration_split)
        held_out, held_labels, where = logits, labels, f"fitted on {options.calibration_split}"
    else:
        perm = np.random.default_rng(seed).permutation(len(labels))
        fit, held = perm[: len(perm) // 2], perm[len(perm) // 2 :]
        fit_out, fit_labels, held_out, held_labels = logits[fit], labels[fit], logits[held], labels[held]
        where = f"fitted on half of {options.split} ({len(fit)}), measured on the other half ({len(held)})"
    t = fit_temperature(*_binary(fit_out, fit_labels))
    two, y = _binary(held_out, held_labels)
    bins = options.ece_bins
    return {
        "temperature": t,
        "where": where,
        "ece_before": ece(softmax(two), y, bins),
        "ece_after": ece(softmax(two, t), y, bins),
        "reliability_before": reliability_bins(softmax(two), y, bins),
        "reliability_after": reliability_bins(softmax(two, t), y, bins),
    }
