"""The one batched-inference loop: run a function over batches, get its outputs back in dataset order.

Evaluation during training, ``ftcli eval``, ``ftcli predict``, the frozen-feature pass and the ONNX
check all go through :func:`infer`. Batches may come in any order (length-sorted, say) as long as each
carries ``idx``, the dataset positions of its rows; under several processes every output is gathered
and each position kept once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch


def model_inputs(batch: dict[str, Any]) -> dict[str, Any]:
    """What the model's forward takes from a batch: everything but the labels and the row positions."""
    return {k: v for k, v in batch.items() if k not in ("labels", "idx")}


def infer(
    fn: Callable[[dict[str, Any]], dict[str, Any]],
    batches: Iterable[dict[str, Any]],
    accelerator: Any = None,
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """``fn(batch)`` → {name: tensor with one row per example}, for every batch, in dataset order.

    A batch's ``labels`` come back as an output too. Each batch's outputs move to the CPU at once
    (memory stays flat whatever the split's size). ``on_batch(rows)`` is told each batch's size.
    """

    parts: dict[str, list[np.ndarray]] = {}
    many = accelerator is not None and accelerator.num_processes > 1
    with torch.inference_mode():
        for batch in batches:
            idx = torch.as_tensor(batch["idx"])
            out = {**fn(batch), "idx": idx}
            if "labels" in batch:
                out["labels"] = batch["labels"]
            if many:  # processes may hold batches of different sizes: pad (idx -1 marks padding), gather
                out = {k: _pad_tokens(accelerator, v) for k, v in out.items()}
                out = {k: accelerator.pad_across_processes(v, dim=0, pad_index=-1) for k, v in out.items()}
                out = accelerator.gather(out)
            real = (out["idx"] >= 0).cpu().numpy()
            for k, v in out.items():
                parts.setdefault(k, []).append(v.detach().cpu().numpy()[real])
            if on_batch is not None:
                on_batch(int(real.sum()))
    if not parts:
        return {}
    # Over several processes the last batches are padded with repeated examples (the batches come from
    # a batch sampler of unknown length, which gather_for_metrics cannot trim): keep each idx once.
    _, first = np.unique(np.concatenate(parts.pop("idx")), return_index=True)  # sorted by idx: dataset order
    return {k: _concatenate(v)[first] for k, v in parts.items()}


RAGGED_PAD = -100  # fills per-token outputs (and labels) of rows shorter than the longest: ignored, like labels


def _pad_tokens(accelerator: Any, v: Any) -> Any:
    """Per-token outputs [B, T, ...]: the same T on every process before they are gathered."""
    return accelerator.pad_across_processes(v, dim=1, pad_index=RAGGED_PAD) if v.dim() > 1 else v


def _concatenate(arrays: list[np.ndarray]) -> np.ndarray:
    """Batches one after another; per-token outputs of batches padded to different lengths are padded to the
    longest with RAGGED_PAD (token classification: a batch is padded to its own longest sentence)."""
    if arrays[0].ndim < 2 or len({a.shape[1] for a in arrays}) == 1:
        return np.concatenate(arrays)
    width = max(a.shape[1] for a in arrays)
    pad = [[(0, 0), (0, width - a.shape[1])] + [(0, 0)] * (a.ndim - 2) for a in arrays]
    return np.concatenate([np.pad(a, p, constant_values=RAGGED_PAD) for a, p in zip(arrays, pad, strict=True)])


def logits_of(model: Any, batch: dict[str, Any]) -> Any:
    """The model's logits for a batch (what training's loss and evaluation read)."""
    return model(**model_inputs(batch)).logits


def autocast_logits(model: Any, accelerator: Any, key: str = "outputs") -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A batch → {key: fp32 logits} function for :func:`infer` over raw inputs (``ftcli predict``): the batch moved
    to the accelerator's device, the forward under its autocast (bf16 where the device computes it natively)."""
    device = accelerator.device

    def forward(batch: dict[str, Any]) -> dict[str, Any]:
        inputs = {k: v.to(device) for k, v in model_inputs(batch).items()}
        with accelerator.autocast():
            return {key: model(**inputs).logits.float()}

    return forward
