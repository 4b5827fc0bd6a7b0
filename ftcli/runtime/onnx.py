"""A model as ONNX: named tensor inputs → ``logits`` with dynamic axes, exported by torch's dynamo exporter and
checked against PyTorch with onnxruntime. What the inputs are is the task's (its ``onnx_spec``)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ftcli.config.errors import FtcliError
from ftcli.runtime.inference import infer


class LogitsOnly(nn.Module):
    """The model with positional tensor inputs (in ``names`` order) and one output, the logits: what ONNX
    consumers want, for any task's inputs (token ids and masks, pixels …)."""

    def __init__(self, model: nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, tuple(names)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, tensors, strict=True))).logits


def export_onnx(model: nn.Module, spec: Any, path: Path, opset: int) -> list[str]:
    """Write ``path`` from ``spec`` (input names, a sample of each, the axes that may vary; one output ``logits``);
    return its input names."""
    model = model.float().eval()
    big = sum(p.numel() * 4 for p in model.parameters()) > 1.8e9  # protobuf's 2 GB limit
    for name in ("onnx_ir", "onnxscript"):  # their per-pass INFO lines drown what matters
        logging.getLogger(name).setLevel(logging.WARNING)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*axis name.*")  # shared Dims: the names are kept anyway
        torch.onnx.export(
            LogitsOnly(model, spec.names).eval(),
            spec.sample,
            str(path),
            input_names=spec.names,
            output_names=["logits"],
            opset_version=opset,
            dynamo=True,
            dynamic_shapes={"tensors": tuple(spec.dynamic.get(n, {}) for n in spec.names)},
            external_data=big,
            verbose=False,
        )
    return list(spec.names)


def verify_onnx(model: nn.Module, path: Path, names: list[str], batches: Any) -> tuple[float, int]:
    """Largest |logit difference| between onnxruntime and PyTorch over ``batches``, and the rows compared."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise FtcliError("verify=true needs onnxruntime (pip install 'ftcli[export]'), or set verify=false") from e
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    dtypes = {i.name: np.int64 if "int" in i.type else np.float32 for i in session.get_inputs()}
    model = model.float().eval()

    def worst(batch: dict[str, Any]) -> dict[str, Any]:
        ours = model(**{k: batch[k] for k in names}).logits
        theirs = session.run(["logits"], {k: batch[k].numpy().astype(dtypes[k]) for k in names})[0]
        return {"diff": (ours - torch.from_numpy(theirs)).abs().flatten(1).amax(1)}

    diffs = infer(worst, batches)["diff"]
    return float(diffs.max()), len(diffs)
