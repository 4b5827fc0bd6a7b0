"""``ftcli predict``: the task's prediction for one input, or for every row of a CSV/TSV/JSON(L) file (images and
audio: also every file in a folder, or in a .txt list of paths)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from ftcli.config.errors import FtcliError
from ftcli.config.inputs import ONE_INPUT
from ftcli.config.validate import validate
from ftcli.data.rows import FORMATS, read_rows, write_rows
from ftcli.reporting.progress import console
from ftcli.runtime.accelerator import inference_batch_size, make_accelerator
from ftcli.tasks.task import Loaded, Task
from ftcli.training.checkpoint import load_checkpoint, resolve_checkpoint, task_of


def run_predict(cfg: Any) -> dict[str, Any]:
    """``ftcli predict``: one input printed (``text=``, ``image=`` …: ``ONE_INPUT``), or ``input=`` rows written to
    ``output=``."""
    validate(cfg)
    if sum(cfg.get(k) is not None for k in (*ONE_INPUT, "input")) != 1:
        raise FtcliError(
            'predict needs exactly one of text="...", image=<file>, audio=<file>, question="..." (with context="..."), '
            'prompt="..." or input=<file> (with output=<file>)'
        )
    ckpt = resolve_checkpoint(cfg.checkpoint)
    model, processor, run_cfg = load_checkpoint(ckpt)
    task = task_of(run_cfg, ckpt)
    predictor = task.predictor
    if predictor is None:
        raise FtcliError(f"checkpoint={ckpt}: a {task.name} checkpoint has no predict")
    model_cfg = run_cfg.model if run_cfg is not None else OmegaConf.create({"max_length": 512})
    accelerator = make_accelerator(cfg.hardware)
    model.to(accelerator.device)
    names = output_names(task, model, processor, cfg)
    loaded = Loaded(model, processor, model_cfg, accelerator, cfg)
    dataset = run_cfg.dataset if run_cfg is not None else None
    if cfg.input is None:
        row, columns = predictor.single_input(cfg)
        pred = task.objective.predictions(predictor.predict(loaded, [row], columns, 1, Path(".")), names)[0]
        show(pred)
        return pred
    src = Path(cfg.input).expanduser()
    quoting = input_quoting(cfg, dataset, src)
    rows = predictor.input_rows(src)  # images: a folder or a list of paths
    rows = read_rows(src, quoting) if rows is None else rows
    if not rows:
        raise FtcliError(f"input={cfg.input}: no rows")
    columns = predictor.input_columns(cfg, dataset, rows, str(cfg.input))
    start = time.perf_counter()
    base = src.resolve().parent if src.is_file() else Path(".")  # relative paths in a file: relative to its folder
    outputs = predictor.predict(loaded, rows, columns, inference_batch_size(cfg.batch_size, accelerator.device), base)
    rate = len(rows) / max(time.perf_counter() - start, 1e-9)
    suffix = src.suffix if src.suffix.lower() in FORMATS else ".csv"  # a folder or a .txt list: CSV
    dest = Path(cfg.output).expanduser() if cfg.output else Path(cfg.output_dir) / f"predictions{suffix}"
    write_rows(dest, rows, task.objective.predictions(outputs, names), quoting)
    result: dict[str, Any] = {"rows": len(rows), "output": str(dest), "samples_per_s": rate}
    result.update(agreement(task, outputs, rows, dataset, names))
    against = f" · {task.metric} against its labels {result[task.metric]:.4f}" if task.metric in result else ""
    console.print(f"{len(rows)} row{'s' * (len(rows) != 1)} ({rate:.0f}/s) → {dest}{against}")
    return result


def output_names(task: Task, model: Any, processor: Any, cfg: Any) -> list[str]:
    """The names of the model's outputs: its own labels, or (``labels=[…]``, a CLIP/SigLIP checkpoint) other class
    names, its head made zero-shot from them."""
    labels = cfg.get("labels")
    if labels is None:
        return [model.config.id2label[i] for i in range(model.config.num_labels)]
    names = [str(n) for n in labels]
    if task.zero_shot is None:
        raise FtcliError(
            f"labels={names}: only a CLIP or SigLIP checkpoint classifies over other labels (zero-shot); this one "
            f"is a {task.name} checkpoint: leave labels out"
        )
    if len(names) < 2 or len(set(names)) != len(names) or not all(n.strip() for n in names):
        raise FtcliError(f"labels={names}: give at least two distinct, non-empty class names, e.g. labels=[cat,dog]")
    task.zero_shot.relabel(model, processor, names)
    return names


def input_quoting(cfg: Any, dataset: Any, src: Path) -> str:
    """GLUE-style TSVs need quoting=none: take the training data's setting only for a file of its kind."""
    if cfg.quoting:
        return str(cfg.quoting)
    trained_on = (dataset.get("validation_file") or dataset.get("train_file") or "") if dataset is not None else ""
    same_kind = dataset is not None and src.suffix.lower() == Path(trained_on).suffix.lower()
    return str(dataset.quoting) if same_kind else "minimal"


def agreement(task: Task, outputs: np.ndarray, rows: list[dict[str, Any]], dataset: Any, names: list[str]) -> dict:
    """When the file has the training data's label column, how well the predictions match it."""
    label_col = dataset.label_column if dataset is not None else "label"
    gold = task.objective.gold([r.get(label_col) for r in rows], names) if label_col in rows[0] else None
    return {} if gold is None else {task.metric: task.metrics(outputs, gold, names)[task.metric]}


def show(pred: dict[str, Any]) -> None:
    """One prediction on the terminal: the answer in bold, then what supports it."""
    for value in pred.values():
        if isinstance(value, dict):
            for k, v in value.items():
                console.print(f"  {k:<12} {v:.4f}")
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):  # entity spans
            for v in value:
                console.print(f"  {json.dumps(v, ensure_ascii=False)}", highlight=False)
        elif isinstance(value, list):  # several labels
            console.print(f"[bold]{', '.join(map(str, value)) or '(none)'}[/]")
        else:
            console.print(f"[bold]{value:.4f}[/]" if isinstance(value, float) else f"[bold]{value}[/]")
