"""``ftcli export``: a checkpoint as ONNX (verified with onnxruntime) or as a clean transformers folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ftcli.config.errors import FtcliError
from ftcli.config.validate import validate
from ftcli.reporting.progress import console
from ftcli.runtime.onnx import export_onnx, verify_onnx
from ftcli.tasks.task import Task
from ftcli.training.checkpoint import RUN_CONFIG, resolve_checkpoint, run_config, task_of
from ftcli.training.strategies.lora import load_merged


def validation_batches(task: Task, run_cfg: Any, processor: Any, samples: int | None) -> Any:
    """The checkpoint's own validation split (what the export is checked on), as inference batches."""
    data = task.load_data(run_cfg.dataset, run_cfg.trainer.seed)
    ds = data.splits["validation"]
    if samples and samples < len(ds):
        ds = ds.select(range(samples))
    return task.eval_loader(task.encode(ds, data, processor, run_cfg.model), processor, 64)


HEAD_KEYS = (  # what ftcli's heads add to their backbone's config
    "id2label",
    "label2id",
    "problem_type",
    "pooling",
    "classifier_dropout",
    "subject_markers",
    "object_markers",
)


def plain_config(config: Any, classes: bool = False) -> dict[str, Any]:
    """An exported folder's config.json, which ``AutoConfig`` and ``AutoTokenizer`` read without running code.
    ftcli's own heads (pooled, relation markers) are written as their backbone's config (``bert`` …) with the head's
    keys beside it, not as ``ftcli_pooled`` with an ``AutoConfig`` in ``auto_map``: ``AutoTokenizer.from_pretrained``
    reads config.json first and would ask "Do you wish to run the custom code?". An ONNX folder needs no code at all;
    ``classes``: keep auto_map's model classes (a safetensors folder, loaded with ``trust_remote_code=True``)."""
    found = config.to_dict()
    auto_map = found.pop("auto_map", None) or {}
    backbone = found.pop("backbone", None)
    if not isinstance(backbone, dict):
        return found
    kept = {k: found[k] for k in HEAD_KEYS if k in found}
    code = {k: v for k, v in auto_map.items() if k != "AutoConfig"} if classes else {}
    if not code:
        return {**backbone, **kept, "architectures": None}
    return {**backbone, **kept, "architectures": found.get("architectures"), "auto_map": code}


def save_transformers(model: Any, processor: Any, out: Path) -> None:
    """``format=safetensors``: config, weights, processor and (for ftcli's own heads) their modeling file, with a
    config.json that asks nothing of ``AutoTokenizer`` (see plain_config)."""
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    if isinstance(model.config.to_dict().get("backbone"), dict):
        config = plain_config(model.config, classes=True)
        (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def run_export(cfg: Any) -> dict[str, Any]:
    """``ftcli export``: write the exported model into ``cfg.output`` (or the run dir)."""
    validate(cfg)
    ckpt = resolve_checkpoint(cfg.checkpoint)
    out = Path(cfg.output).expanduser() if cfg.output else Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model, processor, merged = load_merged(ckpt)
    model.eval()
    if cfg.format == "safetensors":
        save_transformers(model, processor, out)
        console.print(f"transformers folder{' (LoRA merged)' if merged else ''} → {out}")
        return {"output": str(out), "merged": merged}

    try:
        import onnxscript  # noqa: F401  (torch's dynamo exporter needs it)
    except ImportError as e:
        raise FtcliError("format=onnx: install onnx, onnxscript and onnxruntime (pip install 'ftcli[export]')") from e
    run_cfg = run_config(ckpt)
    task = task_of(run_cfg, ckpt)
    if task.onnx is None:
        raise FtcliError(f"format=onnx: a {task.name} checkpoint has no ONNX export; use format=safetensors")
    path = out / "model.onnx"
    spec = task.onnx.onnx_spec(model, processor)
    names = export_onnx(model, spec, path, cfg.opset)
    processor.save_pretrained(out)
    (out / "config.json").write_text(json.dumps(plain_config(model.config), indent=2, sort_keys=True) + "\n")
    result: dict[str, Any] = {"output": str(path), "inputs": names}
    if cfg.verify and run_cfg is not None:
        batches = validation_batches(task, run_cfg, processor, cfg.verify_samples)
        worst, rows = verify_onnx(model, path, names, batches, spec.outputs)
        result.update(max_abs_diff=worst, verified_on=rows)
        (out / "onnx_check.json").write_text(json.dumps(result, indent=2))
        if worst > cfg.atol:
            raise FtcliError(f"atol={cfg.atol}: ONNX logits differ from PyTorch's by up to {worst:.2e}; not trusted")
        console.print(f"onnxruntime vs PyTorch on {rows} validation examples: max |Δlogit| {worst:.2e}")
    if cfg.verify and run_cfg is None:
        console.print(f"[yellow]not verified: {ckpt} has no {RUN_CONFIG} naming its validation data")
    console.print(f"ONNX model ({', '.join(names)} → {', '.join(spec.outputs)}) → {path}")
    return result
