"""Pictures where people would rather look than read: learning curves, confusion matrix, reliability diagram
(PNG, matplotlib's Agg backend)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

MAX_SHOWN = 20  # classes beyond which the confusion matrix is summarised by its most confused pairs


def _pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed), or None when matplotlib is absent."""

    # Hydra's job logging sets the root logger to INFO: matplotlib would announce "generated new fontManager"
    # (and other internals) on ftcli eval's output. Its warnings still show; a level someone chose stays.
    mpl_log = logging.getLogger("matplotlib")
    if mpl_log.level == logging.NOTSET:
        mpl_log.setLevel(logging.WARNING)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def read_metrics_log(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(training records, validation records) from a run's metrics.jsonl."""
    train: list[dict[str, Any]] = []
    val: list[dict[str, Any]] = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            (val if rec.get("split") == "validation" else train).append(rec)
    return train, val


def plot_learning_curves(metrics_jsonl: Path, out: Path, metric: str = "accuracy") -> Path | None:
    """Train loss, validation metrics and the learning rate against the optimizer step."""
    plt = _pyplot()
    train, val = read_metrics_log(metrics_jsonl)
    if plt is None or not (train or val):
        return None
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    ax = axes[0]
    ax.plot([r["step"] for r in train], [r["loss"] for r in train], ".-", label="train loss")
    if val:
        ax.plot([r["step"] for r in val], [r["loss"] for r in val], "o-", label="validation loss")
    ax.set(title="loss", xlabel="step")
    ax.legend()
    ax = axes[1]
    for key in dict.fromkeys([metric, "accuracy", "f1_macro", "pearson", "spearman"]):
        if val and key in val[0] and key != "loss":
            ax.plot([r["step"] for r in val], [r[key] for r in val], "o-", label=f"validation {key}")
    ax.set(title="validation", xlabel="step")
    ax.legend()
    ax = axes[2]
    ax.plot([r["step"] for r in train], [r["lr"] for r in train], ".-", color="tab:green")
    ax.set(title="learning rate", xlabel="step")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    for a in axes:
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_confusion_matrix(matrix: list[list[int]], names: list[str], out: Path) -> Path | None:
    """Counts per (true, predicted) cell, shaded by the share of the true class."""

    plt = _pyplot()
    if plt is None:
        return None
    cm = np.asarray(matrix)
    share = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    size = min(max(3.5, 0.6 * len(names) + 2), 16)  # 100 classes: cells without numbers, still readable
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    written = len(names) <= MAX_SHOWN
    for i in range(len(names) if written else 0):
        for j in range(len(names)):
            ax.text(
                j,
                i,
                f"{cm[i, j]}\n{share[i, j]:.0%}",
                ha="center",
                va="center",
                color="white" if share[i, j] > 0.5 else "black",
            )
    ax.set(
        xticks=range(len(names)) if written else [],
        yticks=range(len(names)) if written else [],
        xticklabels=names if written else [],
        yticklabels=names if written else [],
        xlabel="predicted",
        ylabel="true",
        title="confusion matrix (share of the true class)",
    )
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_reliability(metrics: dict[str, Any], out: Path) -> Path | None:
    """Accuracy against confidence per bin (the diagonal is perfect calibration) and each bin's count."""

    plt = _pyplot()
    if plt is None or "reliability" not in metrics:
        return None
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.2, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    series = [("model", metrics["reliability"], metrics["ece"], "tab:blue")]
    ts = metrics.get("temperature_scaling")
    if ts:
        after = f"after T={ts['temperature']:.2f}"
        series = [
            ("before (held-out)", ts["reliability_before"], ts["ece_before"], "tab:blue"),
            (after, ts["reliability_after"], ts["ece_after"], "tab:orange"),
        ]
    edges = np.asarray(series[0][1]["edges"])
    width = edges[1] - edges[0]
    top.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    for k, (label, r, ece, color) in enumerate(series):
        count = np.asarray(r["count"])
        filled = count > 0
        centers = edges[:-1] + width / 2
        shift = (k - (len(series) - 1) / 2) * width / len(series)
        bar_w = width / len(series)
        top.bar(
            centers[filled] + shift,
            np.asarray(r["accuracy"])[filled],
            width=bar_w,
            alpha=0.7,
            color=color,
            edgecolor="black",
            lw=0.5,
            label=f"{label}: ECE {ece:.4f}",
        )
        top.plot(np.asarray(r["confidence"])[filled], np.asarray(r["accuracy"])[filled], "o", color=color, ms=3)
        bottom.bar(centers + shift, count, width=bar_w, color=color, alpha=0.7)
    top.set(ylabel="accuracy in bin", xlim=(0, 1), ylim=(0, 1), title="reliability diagram")
    top.legend(loc="upper left", fontsize=8)
    top.grid(alpha=0.3)
    bottom.set(xlabel="confidence of the predicted class", ylabel="examples")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
