"""Metrics; ``predict``/``evaluate`` over batches; ``run_eval(cfg)`` for ``ftcli eval``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ftcli.config import FtcliError

# loss is minimised; every other metric is maximised
LOWER_IS_BETTER = {"loss"}


def compute_metrics(labels: np.ndarray, logits: np.ndarray, label_names: list[str]) -> dict[str, Any]:
    """Accuracy, macro and per-class precision/recall/F1, MCC, loss and the confusion matrix."""
    from sklearn.metrics import confusion_matrix, matthews_corrcoef, precision_recall_fscore_support

    k = len(label_names)
    preds = logits.argmax(-1)
    shifted = logits - logits.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    loss = float(-log_probs[np.arange(len(labels)), labels].mean())
    p, r, f, support = precision_recall_fscore_support(labels, preds, labels=range(k), zero_division=0)
    return {
        "accuracy": float((preds == labels).mean()),
        "f1_macro": float(f.mean()),
        "precision_macro": float(p.mean()),
        "recall_macro": float(r.mean()),
        "mcc": float(matthews_corrcoef(labels, preds)) if len(labels) > 1 else 0.0,
        "loss": loss,
        "per_class": {
            name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(support[i])}
            for i, name in enumerate(label_names)
        },
        "confusion_matrix": confusion_matrix(labels, preds, labels=range(k)).tolist(),
        "examples": len(labels),
    }


def predict(model: Any, batches: Any, accelerator: Any) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels in dataset order. Each batch moves to the CPU at once (memory stays flat)."""
    import torch

    model.eval()
    logits, labels, order = [], [], []
    with torch.inference_mode():
        for batch in batches:
            idx, y = batch.pop("idx"), batch.pop("labels")
            out = model(**batch).logits.float()
            out, y, idx = accelerator.gather_for_metrics((out, y, idx))
            logits.append(out.cpu().numpy())
            labels.append(y.cpu().numpy())
            order.append(idx.cpu().numpy())
    position = np.concatenate(order)
    restore = np.argsort(position, kind="stable")
    return np.concatenate(logits)[restore], np.concatenate(labels)[restore]


def evaluate(model: Any, batches: Any, accelerator: Any, label_names: list[str]) -> dict[str, Any]:
    """Metrics of ``model`` over ``batches`` (dicts with ``idx`` and ``labels``)."""
    start = time.perf_counter()
    logits, labels = predict(model, batches, accelerator)
    metrics = compute_metrics(labels, logits, label_names)
    metrics["samples_per_s"] = len(labels) / max(time.perf_counter() - start, 1e-9)
    return metrics


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def resolve_checkpoint(path: str) -> Path:
    """A checkpoint folder as is; a run directory → its checkpoints/best."""
    p = Path(path).expanduser()
    if (p / "checkpoints" / "best" / "config.json").is_file():
        return p / "checkpoints" / "best"
    if (p / "config.json").is_file():
        return p
    if not p.exists():
        raise FtcliError(f"checkpoint={path}: no such file or folder")
    raise FtcliError(f"checkpoint={path}: not a checkpoint (no config.json) nor a run dir (no checkpoints/best)")


def run_eval(cfg: Any) -> dict[str, Any]:
    """``ftcli eval``: load a checkpoint, evaluate it on a split, print a table, write eval.json."""
    from omegaconf import OmegaConf

    from ftcli.checkpoint import load_checkpoint
    from ftcli.config import validate
    from ftcli.data import load_splits, tokenize
    from ftcli.train import eval_loader, make_accelerator

    validate(cfg)
    ckpt = resolve_checkpoint(cfg.checkpoint)
    model, tokenizer, run_cfg = load_checkpoint(ckpt, allow_pickle=cfg.eval.allow_pickle)
    dataset_cfg = cfg.dataset if _dataset_overridden() or run_cfg is None else run_cfg.dataset
    accelerator = make_accelerator(cfg.hardware, grad_accum=1)
    seed = run_cfg.trainer.seed if run_cfg is not None else 42
    max_length = run_cfg.model.max_length if run_cfg is not None else 512
    batch_size = cfg.eval.batch_size or (run_cfg.trainer.eval_batch_size if run_cfg is not None else 128)
    with accelerator.main_process_first():
        data = load_splits(dataset_cfg, seed)
    split = cfg.eval.split
    if split not in data.splits:
        raise FtcliError(f"eval.split={split}: dataset {dataset_cfg.name} has {', '.join(data.splits)}")
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if len(names) != len(data.label_names):
        raise FtcliError(
            f"checkpoint={cfg.checkpoint}: the model has {len(names)} labels, dataset {dataset_cfg.name} has "
            f"{len(data.label_names)}"
        )
    with accelerator.main_process_first():
        ds = tokenize(data.splits[split], tokenizer, data.text_columns, max_length)
    model = accelerator.prepare(model)
    batches = eval_loader(ds, tokenizer, batch_size, accelerator)
    metrics = evaluate(model, batches, accelerator, names)
    metrics.update(checkpoint=str(ckpt), split=split, dataset=dataset_cfg.name)
    if accelerator.is_main_process:
        out = Path(cfg.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "eval.json").write_text(json.dumps(metrics, indent=2))
        print_report(metrics, names)
    accelerator.end_training()
    return metrics


def _dataset_overridden() -> bool:
    """Whether the user chose ``dataset=...`` on the command line (else the run's own dataset is used)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return any(o.split("=")[0].lstrip("+~") in ("dataset",) for o in HydraConfig.get().overrides.task)
    except ValueError:  # not under Hydra (tests calling run_eval directly)
        return False


def print_report(metrics: dict[str, Any], names: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    summary = Table(title=f"{metrics['dataset']} / {metrics['split']}  ({metrics['examples']} examples)")
    for key in ("accuracy", "f1_macro", "precision_macro", "recall_macro", "mcc", "loss", "samples_per_s"):
        summary.add_column(key, justify="right")
    summary.add_row(*(f"{metrics[k]:.4f}" if k != "samples_per_s" else f"{metrics[k]:.0f}" for k in (
        "accuracy", "f1_macro", "precision_macro", "recall_macro", "mcc", "loss", "samples_per_s")))  # fmt: skip
    console.print(summary)
    per_class = Table(title="per class")
    for col in ("label", "precision", "recall", "f1", "support", *[f"pred {n}" for n in names]):
        per_class.add_column(col, justify="right")
    for i, n in enumerate(names):
        c = metrics["per_class"][n]
        row = [n, f"{c['precision']:.4f}", f"{c['recall']:.4f}", f"{c['f1']:.4f}", str(c["support"])]
        per_class.add_row(*row, *[str(v) for v in metrics["confusion_matrix"][i]])
    console.print(per_class)
    console.print(f"accuracy {metrics['accuracy']:.4f}  → {metrics['checkpoint']}")
