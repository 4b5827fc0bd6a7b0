"""Metrics; ``predict``/``evaluate`` over batches; ``run_eval(cfg)`` for ``ftcli eval``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ftcli.calibration import nll
from ftcli.config import FtcliError

# loss is minimised; every other metric is maximised
LOWER_IS_BETTER = {"loss"}


def compute_metrics(labels: np.ndarray, logits: np.ndarray, label_names: list[str]) -> dict[str, Any]:
    """Accuracy, macro and per-class precision/recall/F1, MCC, loss and the confusion matrix.

    All of it follows from the confusion matrix, in numpy: scikit-learn gives the same numbers (a test
    checks) but costs a second of start-up in every run.
    """
    k = len(label_names)
    preds = logits.argmax(-1)
    loss = nll(logits, labels)
    cm = np.bincount(labels * k + preds, minlength=k * k).reshape(k, k)  # rows: true, columns: predicted
    tp, support, predicted = np.diag(cm).astype(float), cm.sum(1), cm.sum(0)
    p = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    r = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    f = np.divide(2 * p * r, p + r, out=np.zeros(k), where=(p + r) > 0)
    n = float(cm.sum())
    # Matthews correlation for k classes (Gorodkin, 2004); 0 where it is undefined
    cov = tp.sum() * n - float(predicted @ support)
    denom = np.sqrt((n * n - float(predicted @ predicted)) * (n * n - float(support @ support)))
    return {
        "accuracy": float((preds == labels).mean()),
        "f1_macro": float(f.mean()),
        "precision_macro": float(p.mean()),
        "recall_macro": float(r.mean()),
        "mcc": float(cov / denom) if denom > 0 else 0.0,
        "loss": loss,
        "per_class": {
            name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(support[i])}
            for i, name in enumerate(label_names)
        },
        "confusion_matrix": cm.tolist(),
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
            # processes may hold batches of different sizes: pad to one size (idx -1 marks padding), gather
            out, y, idx = (accelerator.pad_across_processes(t, dim=0, pad_index=-1) for t in (out, y, idx))
            out, y, idx = accelerator.gather((out, y, idx))
            real = (idx >= 0).cpu().numpy()
            logits.append(out.cpu().numpy()[real])
            labels.append(y.cpu().numpy()[real])
            order.append(idx.cpu().numpy()[real])
    # Over several processes the last batches are padded with repeated examples (the eval batches come
    # from a batch sampler of unknown length, which gather_for_metrics cannot trim): keep each idx once.
    _, first = np.unique(np.concatenate(order), return_index=True)  # sorted by idx: dataset order
    return np.concatenate(logits)[first], np.concatenate(labels)[first]


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
    marks = ("config.json", "adapter_config.json")  # a full model, or a LoRA adapter (peft)
    if any((p / "checkpoints" / "best" / m).is_file() for m in marks):
        return p / "checkpoints" / "best"
    if any((p / m).is_file() for m in marks):
        return p
    if not p.exists():
        raise FtcliError(f"checkpoint={path}: no such file or folder")
    raise FtcliError(f"checkpoint={path}: not a checkpoint (no config.json) nor a run dir (no checkpoints/best)")


def find_checkpoints(spec: Any) -> list[Path]:
    """Every checkpoint that ``spec`` names: a checkpoint, a run dir, a multirun dir, or a list of them."""
    from omegaconf import ListConfig

    if isinstance(spec, (list, tuple, ListConfig)):
        found = [c for item in spec for c in find_checkpoints(str(item))]
        if not found:
            raise FtcliError("checkpoint=[]: name at least one checkpoint")
        return found
    try:
        return [resolve_checkpoint(str(spec))]
    except FtcliError:
        p = Path(str(spec)).expanduser()
        runs = sorted(p.glob("**/checkpoints/best/config.json"), key=lambda f: _natural(f.relative_to(p)))
        if not p.is_dir() or not runs:
            raise
        return [f.parent for f in runs]


def _natural(path: Path) -> list[Any]:
    """Sort key that puts multirun job 10 after job 9."""
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def run_labels(ckpts: list[Path]) -> list[str]:
    """Short names for checkpoints in a comparison: the run dir and the overrides that differ between runs."""
    from omegaconf import OmegaConf

    runs = [c.parent.parent if c.parent.name == "checkpoints" else c for c in ckpts]
    overrides = []
    for run in runs:
        f = run / ".hydra" / "overrides.yaml"
        items = [str(o) for o in OmegaConf.load(f)] if f.is_file() else []
        overrides.append([o for o in items if not o.startswith("hydra.")])
    common = set.intersection(*(set(o) for o in overrides)) if len(overrides) > 1 else set()
    labels = [
        " ".join([run.name, *[o for o in items if o not in common]]) for run, items in zip(runs, overrides, strict=True)
    ]
    return labels if len(set(labels)) == len(labels) else [str(c) for c in ckpts]


def run_eval(cfg: Any) -> dict[str, Any]:
    """``ftcli eval``: evaluate one checkpoint, or several on the same data with a comparison table.

    Writes eval.json, the PNGs and report.md into the run dir (one sub-folder per checkpoint when
    there are several, plus comparison.csv/.md).
    """
    from ftcli.config import validate
    from ftcli.train import make_accelerator

    validate(cfg)
    if cfg.eval.temperature_scaling and cfg.eval.calibration_split == cfg.eval.split:
        raise FtcliError(
            f"eval.calibration_split={cfg.eval.split}: fitting and judging the temperature on the same data "
            "flatters it; choose another split, or null (fit on half of eval.split, judge on the other half)"
        )
    ckpts = find_checkpoints(cfg.checkpoint)
    accelerator = make_accelerator(cfg.hardware, grad_accum=1)
    out = Path(cfg.output_dir)
    if len(ckpts) == 1:
        metrics, _ = eval_checkpoint(cfg, ckpts[0], out, accelerator)
        accelerator.end_training()
        return metrics
    dataset_cfg, rows = None, []
    for i, (ckpt, label) in enumerate(zip(ckpts, run_labels(ckpts), strict=True)):
        # the first checkpoint decides the data; every later one sees exactly the same
        metrics, dataset_cfg = eval_checkpoint(cfg, ckpt, out / f"{i:02d}", accelerator, dataset_cfg, many=True)
        rows.append({"checkpoint": str(ckpt), "run": label, **metrics})
        accelerator.free_memory()  # drop this model before the next one loads
    if accelerator.is_main_process:
        from ftcli.report import write_comparison

        write_comparison(rows, out)
    accelerator.end_training()
    best = max(rows, key=lambda r: r["accuracy"])
    return {"comparison": rows, "accuracy": best["accuracy"], "best_checkpoint": best["checkpoint"]}


def eval_dataset_config(cfg: Any, run_cfg: Any) -> Any:
    """The data to evaluate on: the training run's dataset, unless the command line says otherwise.

    ``dataset=<option>`` replaces it; ``dataset.<key>=<value>`` alone changes that key of the run's own
    dataset (e.g. ``dataset.max_eval_samples=200`` or ``dataset.validation_file=other.csv``).
    """
    from omegaconf import OmegaConf

    group, keys = _dataset_overrides()
    if group or run_cfg is None:
        return cfg.dataset
    ds = OmegaConf.create(OmegaConf.to_container(run_cfg.dataset))
    for key in keys:
        OmegaConf.update(ds, key, OmegaConf.select(cfg.dataset, key), merge=False)
    return ds


def eval_checkpoint(
    cfg: Any, ckpt: Path, out: Path, accelerator: Any, dataset_cfg: Any = None, many: bool = False
) -> tuple[dict[str, Any], Any]:
    """Metrics, calibration and intervals of one checkpoint on ``cfg.eval.split``; files into ``out``.

    Returns the metrics and the dataset config used (to evaluate further checkpoints on the same data).
    """
    from omegaconf import OmegaConf

    from ftcli.calibration import calibration_report, fit_temperature, reliability_bins, softmax
    from ftcli.calibration import expected_calibration_error as ece
    from ftcli.checkpoint import load_checkpoint
    from ftcli.data import LabelError
    from ftcli.train import inference_batch_size

    model, tokenizer, run_cfg = load_checkpoint(ckpt, allow_pickle=cfg.eval.allow_pickle)
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if dataset_cfg is None:
        dataset_cfg = eval_dataset_config(cfg, run_cfg)
    dataset_cfg = OmegaConf.create(OmegaConf.to_container(dataset_cfg))
    if not dataset_cfg.get("label_names"):  # labels map through the model's own names, not the data's order
        dataset_cfg.label_names = names
    elif list(dataset_cfg.label_names) != names:
        raise FtcliError(
            f"dataset.label_names={list(dataset_cfg.label_names)}: checkpoint {ckpt} predicts {names} "
            f"(in that order); set dataset.label_names to match"
        )
    seed = run_cfg.trainer.seed if run_cfg is not None else 42
    max_length = run_cfg.model.max_length if run_cfg is not None else 512
    trained_with = run_cfg.trainer.eval_batch_size if run_cfg is not None else None
    batch_size = inference_batch_size(cfg.eval.batch_size or trained_with, accelerator.device)
    split = cfg.eval.split
    model = accelerator.prepare(model)
    try:
        logits, labels, rate = _split_logits(
            model, tokenizer, dataset_cfg, split, seed, max_length, batch_size, accelerator
        )
    except LabelError as e:  # the label set came from the checkpoint: say so
        raise FtcliError(f"checkpoint={cfg.checkpoint}: the model has {len(names)} labels {names}; {e}") from e
    metrics = compute_metrics(labels, logits, names)
    metrics["samples_per_s"] = rate
    metrics.update(calibration_report(logits, labels, cfg.eval.ece_bins, cfg.eval.bootstrap, seed))
    if cfg.eval.temperature_scaling:
        if cfg.eval.calibration_split:  # fit on another split, judge on the whole evaluation split
            fit_logits, fit_labels, _ = _split_logits(
                model,
                tokenizer,
                dataset_cfg,
                cfg.eval.calibration_split,
                seed,
                max_length,
                batch_size,
                accelerator,
            )
            held_logits, held_labels, where = logits, labels, f"fitted on {cfg.eval.calibration_split}"
        else:  # fit on a seeded half of the split, judge on the other half (never on the fitting data)
            perm = np.random.default_rng(seed).permutation(len(labels))
            fit, held = perm[: len(perm) // 2], perm[len(perm) // 2 :]
            fit_logits, fit_labels = logits[fit], labels[fit]
            held_logits, held_labels = logits[held], labels[held]
            where = f"fitted on half of {split} ({len(fit)}), measured on the other half ({len(held)})"
        t = fit_temperature(fit_logits, fit_labels)
        bins = cfg.eval.ece_bins
        metrics["temperature_scaling"] = {
            "temperature": t,
            "where": where,
            "ece_before": ece(softmax(held_logits), held_labels, bins),
            "ece_after": ece(softmax(held_logits, t), held_labels, bins),
            "reliability_before": reliability_bins(softmax(held_logits), held_labels, bins),
            "reliability_after": reliability_bins(softmax(held_logits, t), held_labels, bins),
        }
    metrics.update(checkpoint=str(ckpt), split=split, dataset=dataset_cfg.name)
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "eval.json").write_text(json.dumps(metrics, indent=2))
        if cfg.eval.plots:
            from ftcli.report import write_report

            write_report(metrics, names, out, ckpt)
        if many:  # a comparison follows: one line per checkpoint is enough
            from ftcli.progress import console

            console.print(summary_line(metrics))
        else:
            print_report(metrics, names)
    return metrics, dataset_cfg


def _split_logits(
    model: Any,
    tokenizer: Any,
    dataset_cfg: Any,
    split: str,
    seed: int,
    max_length: int,
    batch_size: int,
    accelerator: Any,
) -> tuple[np.ndarray, np.ndarray, float]:
    """(logits, labels, samples/s) of ``model`` on one split of the dataset."""
    from ftcli.data import load_splits, tokenize
    from ftcli.train import eval_loader

    with accelerator.main_process_first():
        data = load_splits(dataset_cfg, seed)
    if split not in data.splits:
        raise FtcliError(f"eval.split={split}: dataset {dataset_cfg.name} has {', '.join(data.splits)}")
    with accelerator.main_process_first():
        ds = tokenize(data.splits[split], tokenizer, data.text_columns, max_length)
    start = time.perf_counter()
    logits, labels = predict(model, eval_loader(ds, tokenizer, batch_size, accelerator), accelerator)
    return logits, labels, len(labels) / max(time.perf_counter() - start, 1e-9)


def _dataset_overrides() -> tuple[bool, list[str]]:
    """Whether ``dataset=...`` was chosen on the command line, and the ``dataset.<key>`` keys set there."""
    try:
        from hydra.core.hydra_config import HydraConfig

        task = HydraConfig.get().overrides.task
    except ValueError:  # not under Hydra (tests calling run_eval directly)
        return False, []
    keys = [o.split("=")[0].lstrip("+~") for o in task]
    return "dataset" in keys, [k.split(".", 1)[1] for k in keys if k.startswith("dataset.")]


def print_report(metrics: dict[str, Any], names: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    summary = Table(title=f"{metrics['dataset']} / {metrics['split']}  ({metrics['examples']} examples)")
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    for key in ("accuracy", "f1_macro", "precision_macro", "recall_macro", "mcc", "loss"):
        summary.add_row(key, f"{metrics[key]:.4f}")
    summary.add_row("samples/s", f"{metrics['samples_per_s']:.0f}")
    console.print(summary)
    per_class = Table(title="per class")
    for col in ("label", "precision", "recall", "f1", "support", *[f"pred {n}" for n in names]):
        per_class.add_column(col, justify="right")
    for i, n in enumerate(names):
        c = metrics["per_class"][n]
        row = [n, f"{c['precision']:.4f}", f"{c['recall']:.4f}", f"{c['f1']:.4f}", str(c["support"])]
        per_class.add_row(*row, *[str(v) for v in metrics["confusion_matrix"][i]])
    console.print(per_class)
    console.print(summary_line(metrics))


def summary_line(metrics: dict[str, Any]) -> str:
    """accuracy with its 95% interval, macro F1, ECE (before → after temperature scaling)."""
    ci = metrics.get("ci95", {})

    def with_ci(key: str) -> str:
        lo_hi = ci.get(key)
        return f"{metrics[key]:.4f}" + (f" [95% CI {lo_hi[0]:.4f}–{lo_hi[1]:.4f}]" if lo_hi else "")

    line = f"accuracy {with_ci('accuracy')} · f1_macro {with_ci('f1_macro')}"
    if "ece" in metrics:
        line += f" · ECE {metrics['ece']:.4f}"
    ts = metrics.get("temperature_scaling")
    if ts:
        before, after = f"{ts['ece_before']:.4f}", f"{ts['ece_after']:.4f}"
        line += f" · temperature {ts['temperature']:.3f}: ECE {before} → {after} ({ts['where']})"
    return f"{line}  → {metrics['checkpoint']}"
