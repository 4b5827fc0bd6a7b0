"""``ftcli export``: a checkpoint as ONNX (verified with onnxruntime) or as a clean transformers folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ftcli.config.errors import FtcliError
from ftcli.reporting.progress import console
from ftcli.tasks import Task


def export_onnx(task: Task, model: Any, processor: Any, path: Path, opset: int) -> list[str]:
    """Write ``path`` (the task's inputs with dynamic axes, one output ``logits``); return its input names."""
    import logging
    import warnings

    import torch

    model = model.float().eval()
    spec = task.onnx_spec(model, processor)
    big = sum(p.numel() * 4 for p in model.parameters()) > 1.8e9  # protobuf's 2 GB limit
    for name in ("onnx_ir", "onnxscript"):  # their per-pass INFO lines drown what matters
        logging.getLogger(name).setLevel(logging.WARNING)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*axis name.*")  # shared Dims: the names are kept anyway
        torch.onnx.export(
            spec.module,
            spec.sample,
            str(path),
            input_names=spec.names,
            output_names=["logits"],
            opset_version=opset,
            dynamo=True,
            dynamic_shapes=spec.dynamic,
            external_data=big,
            verbose=False,
        )
    return spec.names


def verify_onnx(task: Task, model: Any, path: Path, names: list[str], batches: Any) -> tuple[float, int]:
    """Largest |logit difference| between onnxruntime and PyTorch over ``batches``, and the rows compared."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise FtcliError("verify=true needs onnxruntime (pip install 'ftcli[export]'), or set verify=false") from e
    import torch

    from ftcli.runtime.inference import infer

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    dtypes = {i.name: np.int64 if "int" in i.type else np.float32 for i in session.get_inputs()}
    model = model.float().eval()

    def worst(batch: dict[str, Any]) -> dict[str, Any]:
        ours = model(**{k: batch[k] for k in names}).logits
        theirs = session.run(["logits"], {k: batch[k].numpy().astype(dtypes[k]) for k in names})[0]
        return {"diff": (ours - torch.from_numpy(theirs)).abs().flatten(1).amax(1)}

    diffs = infer(worst, batches)["diff"]
    return float(diffs.max()), len(diffs)


def validation_batches(task: Task, run_cfg: Any, processor: Any, samples: int | None) -> Any:
    """The checkpoint's own validation split (what the export is checked on), as inference batches."""
    data = task.load_data(run_cfg.dataset, run_cfg.trainer.seed)
    ds = data.splits["validation"]
    if samples and samples < len(ds):
        ds = ds.select(range(samples))
    return task.eval_loader(task.encode(ds, data.columns, processor, run_cfg.model), processor, 64)


def merged_model(ckpt: Path) -> tuple[Any, Any, bool]:
    """(model, tokenizer, merged?) — a LoRA checkpoint (peft adapter) merged into its base weights."""
    from ftcli.training.checkpoint import load_checkpoint

    if (ckpt / "adapter_config.json").is_file():
        try:
            from peft import AutoPeftModelForSequenceClassification, PeftModel
        except ImportError as e:
            raise FtcliError(f"checkpoint={ckpt}: a LoRA adapter; install peft (pip install 'ftcli[lora]')") from e
        from transformers import AutoTokenizer

        from ftcli.models.text import register_pooled_classifier

        register_pooled_classifier()
        base_path = json.loads((ckpt / "adapter_config.json").read_text()).get("base_model_name_or_path") or ""
        if (Path(base_path) / "config.json").is_file():  # an ftcli checkpoint (pooled head included)
            base, tokenizer, _ = load_checkpoint(Path(base_path))
            model = PeftModel.from_pretrained(base, ckpt)
        else:  # a hub id or plain folder: peft builds the base itself
            model = AutoPeftModelForSequenceClassification.from_pretrained(ckpt)
            tokenizer = AutoTokenizer.from_pretrained(base_path)
        if (ckpt / "tokenizer_config.json").is_file():
            tokenizer = AutoTokenizer.from_pretrained(ckpt)
        return model.merge_and_unload(), tokenizer, True
    model, tokenizer, _ = load_checkpoint(ckpt)
    if hasattr(model, "merge_and_unload"):  # a peft model that loaded as one
        return model.merge_and_unload(), tokenizer, True
    return model, tokenizer, False


def run_export(cfg: Any) -> dict[str, Any]:
    """``ftcli export``: write the exported model into ``cfg.output`` (or the run dir)."""
    from ftcli.config.validate import validate
    from ftcli.training.checkpoint import RUN_CONFIG, resolve_checkpoint, run_config, task_of

    validate(cfg)
    ckpt = resolve_checkpoint(cfg.checkpoint)
    out = Path(cfg.output).expanduser() if cfg.output else Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model, processor, merged = merged_model(ckpt)
    model.eval()
    if cfg.format == "safetensors":
        # save_pretrained writes config, weights and (for ftcli's pooled head) modeling_ftcli.py
        model.save_pretrained(out, safe_serialization=True)
        processor.save_pretrained(out)
        console.print(f"transformers folder{' (LoRA merged)' if merged else ''} → {out}")
        return {"output": str(out), "merged": merged}

    try:
        import onnxscript  # noqa: F401  (torch's dynamo exporter needs it)
    except ImportError as e:
        raise FtcliError("format=onnx: install onnx, onnxscript and onnxruntime (pip install 'ftcli[export]')") from e
    run_cfg = run_config(ckpt)
    task = task_of(run_cfg)
    path = out / "model.onnx"
    names = export_onnx(task, model, processor, path, cfg.opset)
    processor.save_pretrained(out)
    model.config.save_pretrained(out)  # id2label for whoever reads the logits
    result: dict[str, Any] = {"output": str(path), "inputs": names}
    if cfg.verify and run_cfg is not None:
        batches = validation_batches(task, run_cfg, processor, cfg.verify_samples)
        worst, rows = verify_onnx(task, model, path, names, batches)
        result.update(max_abs_diff=worst, verified_on=rows)
        (out / "onnx_check.json").write_text(json.dumps(result, indent=2))
        if worst > cfg.atol:
            raise FtcliError(f"atol={cfg.atol}: ONNX logits differ from PyTorch's by up to {worst:.2e}; not trusted")
        console.print(f"onnxruntime vs PyTorch on {rows} validation examples: max |Δlogit| {worst:.2e}")
    if cfg.verify and run_cfg is None:
        console.print(f"[yellow]not verified: {ckpt} has no {RUN_CONFIG} naming its validation data")
    console.print(f"ONNX model ({', '.join(names)} → logits) → {path}")
    return result
