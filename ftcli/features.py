"""Frozen-backbone features: computed once per example, cached on disk, reused by every epoch and run."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from ftcli.data import collator, sorted_batches


def feature_key(model: Any, tokenizer_fp: str, max_length: int, data_fp: str, seed: int) -> str:
    """Everything the features depend on: backbone identity, tokenizer, length, data (not the pooling:
    one pass stores every pooling, so a sweep over poolings runs the backbone once)."""
    cfg = model.config
    identity = {
        "backbone": cfg.backbone,
        "source": getattr(model.backbone.config, "_name_or_path", ""),
        "commit": getattr(model.backbone.config, "_commit_hash", None),
        "tokenizer": tokenizer_fp,
        "max_length": max_length,
        "data": data_fp,
        # a randomly initialised backbone is only reproducible through its seed
        "seed": seed if not getattr(model.backbone.config, "_name_or_path", "") else None,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:20]


@torch.inference_mode()
def compute_features(
    model: Any, ds: Any, lengths: np.ndarray, tokenizer: Any, batch_size: int, device: Any
) -> dict[str, torch.Tensor]:
    """Every pooling of the backbone's token states, [N, H] each, in dataset order.

    Batches are sorted by length (little padding) and are the ones ``ftcli eval`` forms, so a
    checkpoint's evaluation reproduces the numbers computed from these features.
    """
    from ftcli.modeling_ftcli import POOLINGS, pool
    from ftcli.progress import Progress

    collate = collator(tokenizer)
    has_pooler = getattr(model.backbone, "pooler", None) is not None
    names = [p for p in POOLINGS if p != "pooler" or has_pooler]
    out = {p: torch.empty(len(ds), model.config.hidden_size, dtype=torch.float32) for p in names}
    model.eval()
    batches = sorted_batches(lengths, batch_size)
    progress = Progress(len(batches), label="features")
    done, t0 = 0, time.perf_counter()
    for step, idx in enumerate(batches, 1):
        batch = collate([ds[i] for i in idx])
        batch = {k: v.to(device) for k, v in batch.items() if k != "labels"}
        states = model.backbone(**batch)
        for p in names:
            pooled = pool(states.last_hidden_state, batch["attention_mask"], p, getattr(states, "pooler_output", None))
            out[p][idx] = pooled.float().cpu()
        done += len(idx)
        info = (
            f"{done / (time.perf_counter() - t0):.0f} sentences/s" if step % 50 == 0 or step == len(batches) else None
        )
        progress.update(step, info=info)
    progress.close()
    return out


def cached_features(
    model: Any, ds: Any, lengths: np.ndarray, tokenizer: Any, batch_size: int, device: Any, path: Path
) -> tuple[torch.Tensor, bool]:
    """The model's pooling of ``ds``, from ``path`` or computed and stored atomically. Returns (features, hit)."""
    from safetensors.torch import load_file, save_file

    pooling = model.config.pooling
    if path.is_file():
        try:
            return load_file(str(path))[pooling], True
        except Exception:  # a truncated cache entry is recomputed, not trusted
            path.unlink(missing_ok=True)
    feats = compute_features(model, ds, lengths, tokenizer, batch_size, device)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    save_file({k: v.contiguous() for k, v in feats.items()}, str(tmp))
    os.replace(tmp, path)
    return feats[pooling], False


class FeatureDataset(torch.utils.data.Dataset):
    """Rows of cached features with their labels and original index."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        self.features, self.labels = features, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"features": self.features[i], "labels": self.labels[i], "idx": i}


class HeadModel(nn.Module):
    """The classifier head alone, fed with cached features; shares its weights with the full model."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> SequenceClassifierOutput:
        logits = self.head(features)
        loss = nn.functional.cross_entropy(logits.float(), labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)
