"""``ftcli export``: a checkpoint as ONNX (verified with onnxruntime) or as a clean transformers folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ftcli.config import FtcliError
from ftcli.progress import console

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _logits_only(model: Any) -> Any:
    """The model with named tensor inputs and one output, the logits (what ONNX consumers want)."""
    from torch import nn

    class LogitsOnly(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
            extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
            return self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).logits

    return LogitsOnly().eval()


def export_onnx(model: Any, tokenizer: Any, path: Path, opset: int) -> list[str]:
    """Write ``path`` (dynamic batch and sequence axes); return its input names."""
    import torch

    sample = tokenizer(["a short one", "and a somewhat longer second sentence here"], padding=True, return_tensors="pt")
    names = [k for k in MODEL_INPUTS if k in sample]
    model = model.float().eval()
    big = sum(p.numel() * 4 for p in model.parameters()) > 1.8e9  # protobuf's 2 GB limit
    if names[:2] != ["input_ids", "attention_mask"]:
        raise FtcliError(f"format=onnx: the tokenizer gives {names}; input_ids and attention_mask are needed")
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    import logging
    import warnings

    for name in ("onnx_ir", "onnxscript"):  # their per-pass INFO lines drown what matters
        logging.getLogger(name).setLevel(logging.WARNING)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*axis name.*")  # shared Dims: the names are kept anyway
        torch.onnx.export(
            _logits_only(model),
            tuple(sample[k] for k in names),
            str(path),
            input_names=names,
            output_names=["logits"],
            opset_version=opset,
            dynamo=True,
            dynamic_shapes={k: {0: batch, 1: seq} for k in names},
            external_data=big,
            verbose=False,
        )
    return names


def verify_onnx(
    model: Any,
    tokenizer: Any,
    path: Path,
    names: list[str],
    texts: list[str],
    pairs: list[str] | None,
    max_length: int,
    batch_size: int = 64,
) -> float:
    """Largest |logit difference| between onnxruntime and PyTorch over ``texts`` (length-sorted batches)."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise FtcliError("verify=true needs onnxruntime (pip install 'ftcli[export]'), or set verify=false") from e
    import torch

    from ftcli.data import text_batches

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    model = model.float().eval()
    with torch.inference_mode():
        for _, batch in text_batches(tokenizer, texts, pairs, max_length, batch_size):
            ours = model(**{k: batch[k] for k in names}).logits.numpy()
            theirs = session.run(["logits"], {k: batch[k].numpy().astype(np.int64) for k in names})[0]
            worst = max(worst, float(np.abs(ours - theirs).max()))
    return worst


def validation_texts(run_cfg: Any, samples: int | None) -> tuple[list[str], list[str] | None]:
    """The texts of the checkpoint's own validation split (the data the export is checked on)."""
    from ftcli.data import load_splits

    data = load_splits(run_cfg.dataset, run_cfg.trainer.seed)
    ds = data.splits["validation"]
    if samples and samples < len(ds):
        ds = ds.select(range(samples))
    texts = [t or "" for t in ds[data.text_columns[0]]]
    pairs = [t or "" for t in ds[data.text_columns[1]]] if len(data.text_columns) > 1 else None
    return texts, pairs


def merged_model(ckpt: Path) -> tuple[Any, Any, bool]:
    """(model, tokenizer, merged?) — a LoRA checkpoint (peft adapter) merged into its base weights."""
    from ftcli.checkpoint import load_checkpoint

    if (ckpt / "adapter_config.json").is_file():
        try:
            from peft import AutoPeftModelForSequenceClassification, PeftModel
        except ImportError as e:
            raise FtcliError(f"checkpoint={ckpt}: a LoRA adapter; install peft (pip install 'ftcli[lora]')") from e
        from transformers import AutoTokenizer

        from ftcli.models import register_pooled_classifier

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
    from omegaconf import OmegaConf

    from ftcli.checkpoint import RUN_CONFIG
    from ftcli.config import validate
    from ftcli.evaluate import resolve_checkpoint

    validate(cfg)
    ckpt = resolve_checkpoint(cfg.checkpoint)
    out = Path(cfg.output).expanduser() if cfg.output else Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model, tokenizer, merged = merged_model(ckpt)
    model.eval()
    if cfg.format == "safetensors":
        # save_pretrained writes config, weights and (for ftcli's pooled head) modeling_ftcli.py
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        console.print(f"transformers folder{' (LoRA merged)' if merged else ''} → {out}")
        return {"output": str(out), "merged": merged}

    try:
        import onnxscript  # noqa: F401  (torch's dynamo exporter needs it)
    except ImportError as e:
        raise FtcliError("format=onnx: install onnx, onnxscript and onnxruntime (pip install 'ftcli[export]')") from e
    run_cfg = OmegaConf.load(ckpt / RUN_CONFIG) if (ckpt / RUN_CONFIG).is_file() else None
    path = out / "model.onnx"
    names = export_onnx(model, tokenizer, path, cfg.opset)
    tokenizer.save_pretrained(out)
    model.config.save_pretrained(out)  # id2label for whoever reads the logits
    result: dict[str, Any] = {"output": str(path), "inputs": names}
    if cfg.verify and run_cfg is not None:
        max_length = run_cfg.model.max_length
        texts, pairs = validation_texts(run_cfg, cfg.verify_samples)
        worst = verify_onnx(model, tokenizer, path, names, texts, pairs, max_length)
        result.update(max_abs_diff=worst, verified_on=len(texts))
        (out / "onnx_check.json").write_text(json.dumps(result, indent=2))
        if worst > cfg.atol:
            raise FtcliError(f"atol={cfg.atol}: ONNX logits differ from PyTorch's by up to {worst:.2e}; not trusted")
        console.print(f"onnxruntime vs PyTorch on {len(texts)} validation texts: max |Δlogit| {worst:.2e}")
    if cfg.verify and run_cfg is None:
        console.print(f"[yellow]not verified: {ckpt} has no {RUN_CONFIG} naming its validation data")
    console.print(f"ONNX model ({', '.join(names)} → logits) → {path}")
    return result
