"""Frozen-backbone features: computed once per example, cached on disk, reused by every epoch and run.

The task computes them (it knows the inputs and the poolings: its ``features`` capability); this
module keys, stores and serves them, and trains the head alone on them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput


def feature_key(identity: dict[str, Any]) -> str:
    """A short, stable name for everything the features depend on."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:20]


def cached_features(compute: Callable[[], dict[str, torch.Tensor]], name: str, path: Path) -> tuple[torch.Tensor, bool]:
    """Features ``name`` from ``path``, or ``compute()`` (every variant at once) stored atomically.

    Returns (features, cache hit)."""

    if path.is_file():
        try:
            return load_file(str(path))[name], True
        except Exception:  # a truncated cache entry is recomputed, not trusted
            path.unlink(missing_ok=True)
    feats = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    save_file({k: v.contiguous() for k, v in feats.items()}, str(tmp))
    os.replace(tmp, path)
    return feats[name], False


class FeatureDataset(torch.utils.data.Dataset):
    """Rows of cached features with their labels and original index."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        self.features, self.labels = features, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"features": self.features[i], "labels": self.labels[i], "idx": i}


class HeadModel(nn.Module):
    """The head alone, fed with cached features; shares its weights with the full model."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward(self, features: torch.Tensor) -> SequenceClassifierOutput:
        return SequenceClassifierOutput(logits=self.head(features))
