"""``ftcli eval``: one or several checkpoints on a split, with the task's metrics, intervals and report."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from ftcli.config.errors import FtcliError
from ftcli.config.registry import train_metric
from ftcli.config.schemas import EvalOptions
from ftcli.config.validate import validate
from ftcli.data.labels import LabelError
from ftcli.metrics.compare import LOWER_IS_BETTER
from ftcli.reporting.progress import console
from ftcli.reporting.report import print_report, summary_line, write_comparison, write_report
from ftcli.runtime.accelerator import inference_batch_size, make_accelerator
from ftcli.tasks.task import Evaluation, Task
from ftcli.training.checkpoint import find_checkpoints, load_checkpoint, task_of


def run_labels(ckpts: list[Path]) -> list[str]:
    """Short names for checkpoints in a comparison: the run dir and the overrides that differ between runs."""

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
    there are several, plus comparison.csv/.md). Several checkpoints are ranked by their runs'
    ``trainer.metric`` (the task's default when they do not say).
    """
    validate(cfg)
    if cfg.eval.temperature_scaling and cfg.eval.calibration_split == cfg.eval.split:
        raise FtcliError(
            f"eval.calibration_split={cfg.eval.split}: fitting and judging the temperature on the same data "
            "flatters it; choose another split, or null (fit on half of eval.split, judge on the other half)"
        )
    ckpts = find_checkpoints(cfg.checkpoint)
    accelerator = make_accelerator(cfg.hardware)
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
    metric = rows[0]["metric"]
    if accelerator.is_main_process:
        write_comparison(rows, out, metric)
    accelerator.end_training()
    pick = min if metric in LOWER_IS_BETTER else max
    best = pick((r for r in rows if metric in r), key=lambda r: r[metric])
    return {"comparison": rows, "metric": metric, metric: best[metric], "best_checkpoint": best["checkpoint"]}


def eval_dataset_config(cfg: Any, run_cfg: Any) -> Any:
    """The data to evaluate on: the training run's dataset, unless the command line says otherwise.

    ``dataset=<option>`` replaces it; ``dataset.<key>=<value>`` alone changes that key of the run's own
    dataset (e.g. ``dataset.max_eval_samples=200`` or ``dataset.validation_file=other.csv``).
    """

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
    """Metrics (and the task's extras: calibration, intervals) of one checkpoint on ``cfg.eval.split``;
    files into ``out``. Returns the metrics and the dataset config used (for further checkpoints)."""

    model, processor, run_cfg = load_checkpoint(ckpt, allow_pickle=cfg.eval.allow_pickle)
    task = task_of(run_cfg, ckpt, cfg.get("task"))  # a folder from elsewhere: the task its dataset picks
    seed = run_cfg.trainer.seed if run_cfg is not None else 42
    dataset_cfg = dataset_cfg or eval_dataset_config(cfg, run_cfg)
    names = checkpoint_labels(task, model, processor, dataset_cfg, seed, cfg.eval)  # CLIP from elsewhere: the data's
    dataset_cfg = _with_label_names(dataset_cfg, names, ckpt)
    trained_with = run_cfg.trainer.eval_batch_size if run_cfg is not None else None
    batch_size = inference_batch_size(cfg.eval.batch_size or trained_with, accelerator.device)
    model_cfg = run_cfg.model if run_cfg is not None else OmegaConf.create({"max_length": 512})
    model = accelerator.prepare(model)
    outputs_of = split_outputs(task, model, processor, dataset_cfg, seed, model_cfg, batch_size, accelerator)
    outputs_of = _naming_labels(outputs_of, cfg.checkpoint, names)
    outputs, labels, seconds = outputs_of(cfg.eval.split)
    metrics = task.metrics(outputs, labels, names)
    metrics["samples_per_s"] = len(labels) / max(seconds, 1e-9)
    how = Evaluation(cfg.eval, seed, other=lambda split: outputs_of(split)[:2])
    metrics.update(task.eval_extras(outputs, labels, names, how))
    metric = train_metric(run_cfg) if run_cfg is not None else task.metric
    metrics.update(checkpoint=str(ckpt), split=cfg.eval.split, dataset=dataset_cfg.name, task=task.name)
    metrics["metric"] = metric
    if accelerator.is_main_process:
        stored = task.fitted.save_fitted(ckpt, metrics) if task.fitted else None  # tuned thresholds: kept
        if stored:
            console.print(stored)
        write_results(metrics, names, out, ckpt, cfg.eval.plots, many)
    return metrics, dataset_cfg


def checkpoint_labels(task: Task, model: Any, processor: Any, dataset_cfg: Any, seed: int, options: Any) -> list[str]:
    """The names of a checkpoint's outputs, in order; a CLIP folder not written by ftcli (zero-shot evaluation, no
    training): the data's class names, and the head made from them with ``eval.templates``."""
    if task.zero_shot is not None and task.zero_shot.plain(model):
        names = task.load_data(dataset_cfg, seed).label_names
        task.zero_shot.relabel(model, processor, names, [str(t) for t in options.templates], "eval.templates")
        return names
    if list(options.templates) != EvalOptions().templates:  # a trained head: its prompts were fixed in training
        console.print(
            "[yellow]note:[/] eval.templates is ignored: this checkpoint's head was trained (the templates make the "
            "zero-shot head of a CLIP folder from elsewhere)"
        )
    return [model.config.id2label[i] for i in range(model.config.num_labels)]


def _with_label_names(dataset_cfg: Any, names: list[str], ckpt: Path) -> Any:
    """A copy of the dataset config whose labels map through the model's own names, not the data's order."""

    dataset_cfg = OmegaConf.create(OmegaConf.to_container(dataset_cfg))
    if not dataset_cfg.get("label_names"):
        dataset_cfg.label_names = names
    elif list(dataset_cfg.label_names) != names:
        raise FtcliError(
            f"dataset.label_names={list(dataset_cfg.label_names)}: checkpoint {ckpt} predicts {names} "
            f"(in that order); set dataset.label_names to match"
        )
    return dataset_cfg


SplitOutputs = Callable[[str], tuple[np.ndarray, np.ndarray, float]]  # outputs, labels, inference seconds


def split_outputs(
    task: Task, model: Any, processor: Any, dataset_cfg: Any, seed: int, model_cfg: Any, batch_size: int, acc: Any
) -> SplitOutputs:
    """A function: split name → (outputs, labels) of ``model`` on that split (the data loaded once)."""
    loaded: list[Any] = []

    def outputs_of(split: str) -> tuple[np.ndarray, np.ndarray, float]:
        if not loaded:
            with acc.main_process_first():
                loaded.append(task.load_data(dataset_cfg, seed))
        data = loaded[0]
        if split not in data.splits:
            raise FtcliError(f"eval.split={split}: dataset {dataset_cfg.name} has {', '.join(data.splits)}")
        with acc.main_process_first():
            ds = task.encode(data.splits[split], data, processor, model_cfg)
        start = time.perf_counter()
        outputs, labels = task.outputs(model, acc.prepare(task.eval_loader(ds, processor, batch_size)), processor, acc)
        return outputs, labels, time.perf_counter() - start

    return outputs_of


def _naming_labels(outputs_of: SplitOutputs, checkpoint: Any, names: list[str]) -> SplitOutputs:
    """Labels outside the checkpoint's label set: say that the set came from the checkpoint."""

    def checked(split: str) -> tuple[np.ndarray, np.ndarray, float]:
        try:
            return outputs_of(split)
        except LabelError as e:
            raise FtcliError(f"checkpoint={checkpoint}: the model has {len(names)} labels {names}; {e}") from e

    return checked


def write_results(metrics: dict[str, Any], names: list[str], out: Path, ckpt: Path, plots: bool, many: bool) -> None:
    """eval.json, the report with its pictures, and the terminal summary (one line when several follow)."""

    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(metrics, indent=2))
    if plots:
        write_report(metrics, names, out, ckpt)
    if many:  # a comparison follows: one line per checkpoint is enough
        console.print(summary_line(metrics))
    else:
        print_report(metrics, names)


def _dataset_overrides() -> tuple[bool, list[str]]:
    """Whether ``dataset=...`` was chosen on the command line, and the ``dataset.<key>`` keys set there."""
    try:
        from hydra.core.hydra_config import HydraConfig

        task = HydraConfig.get().overrides.task
    except ValueError:  # not under Hydra (tests calling run_eval directly)
        return False, []
    keys = [o.split("=")[0].lstrip("+~") for o in task]
    return "dataset" in keys, [k.split(".", 1)[1] for k in keys if k.startswith("dataset.")]
