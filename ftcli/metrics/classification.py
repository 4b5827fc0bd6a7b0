"""Classification metrics in numpy, from the confusion matrix: accuracy (top-k), macro and per-class
precision/recall/F1, MCC, cross-entropy. scikit-learn gives the same numbers (tests check) but costs a second
of start-up in every run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def softmax(logits: np.ndarray, temperature: float = 1.0, dtype: type = np.float64) -> np.ndarray:
    """Probabilities over the last axis (``dtype``: float32 gives transformers pipelines' own numbers)."""
    z = logits.astype(dtype) / dtype(temperature)
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean cross-entropy of softmax(logits / temperature) against integer labels."""
    z = logits.astype(np.float64) / temperature
    z = z - z.max(-1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def accuracy(labels: np.ndarray, preds: np.ndarray) -> float:
    return float((labels == preds).mean())


def confusion(labels: np.ndarray, preds: np.ndarray, k: int) -> np.ndarray:
    """k×k counts; rows: true class, columns: predicted class."""
    return np.bincount(labels * k + preds, minlength=k * k).reshape(k, k)


def macro_f1(num_labels: int) -> Callable[[np.ndarray, np.ndarray], float]:
    """Macro F1 over a fixed label set, vectorised (the bootstrap calls it a thousand times)."""

    def f1(labels: np.ndarray, preds: np.ndarray) -> float:
        cm = confusion(labels, preds, num_labels)
        tp = np.diag(cm).astype(np.float64)
        denom = cm.sum(0) + cm.sum(1)  # 2·tp + fp + fn
        return float(np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0).mean())

    return f1


def top_k_accuracy(labels: np.ndarray, logits: np.ndarray, k: int) -> float:
    """Share of rows whose label is among the k highest logits."""
    top = np.argpartition(-logits, k - 1, axis=-1)[:, :k]
    return float((top == labels[:, None]).any(-1).mean())


def most_confused(cm: np.ndarray, names: list[str], n: int = 10) -> list[dict[str, Any]]:
    """The ``n`` largest off-diagonal cells: (true, predicted, count), largest first."""
    off = cm.astype(np.int64).copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off, axis=None, kind="stable")[:n]
    cells = [np.unravel_index(i, cm.shape) for i in flat]
    return [{"true": names[t], "predicted": names[p], "count": int(off[t, p])} for t, p in cells if off[t, p] > 0]


def classification_metrics(labels: np.ndarray, logits: np.ndarray, label_names: list[str]) -> dict[str, Any]:
    """Accuracy (top-5 too when there are more than 5 classes), macro and per-class precision/recall/F1,
    MCC, loss, the confusion matrix and its most confused pairs."""
    k = len(label_names)
    preds = logits.argmax(-1)
    cm = confusion(labels, preds, k)
    tp, support, predicted = np.diag(cm).astype(float), cm.sum(1), cm.sum(0)
    p = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    r = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    f = np.divide(2 * p * r, p + r, out=np.zeros(k), where=(p + r) > 0)
    n = float(cm.sum())
    # Matthews correlation for k classes (Gorodkin, 2004); 0 where it is undefined
    cov = tp.sum() * n - float(predicted @ support)
    denom = np.sqrt((n * n - float(predicted @ predicted)) * (n * n - float(support @ support)))
    top5 = {"top5_accuracy": top_k_accuracy(labels, logits, 5)} if k > 5 else {}
    return {
        "accuracy": accuracy(labels, preds),
        **top5,
        "f1_macro": float(f.mean()),
        "precision_macro": float(p.mean()),
        "recall_macro": float(r.mean()),
        "mcc": float(cov / denom) if denom > 0 else 0.0,
        "loss": nll(logits, labels),
        "per_class": {
            name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(support[i])}
            for i, name in enumerate(label_names)
        },
        "confusion_matrix": cm.tolist(),
        "most_confused": most_confused(cm, label_names),
        "examples": len(labels),
    }
