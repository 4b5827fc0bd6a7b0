"""Clips to a model batch as tensors: zero padding with lengths, the attention mask, and the per-clip
zero-mean/unit-variance normalisation wav2vec2-style feature extractors apply, done after augmentation."""

from __future__ import annotations

from typing import Any

import numpy as np


def pad(clips: list[np.ndarray]) -> tuple[Any, Any]:
    """Float32 clips → ``waves`` [B, T] (zeros past each clip, T the longest) and ``lengths`` [B] int64."""
    import torch

    lengths = torch.tensor([len(c) for c in clips], dtype=torch.int64)
    waves = torch.zeros(len(clips), int(lengths.max()) if len(clips) else 0)
    for i, c in enumerate(clips):
        waves[i, : len(c)] = torch.from_numpy(np.asarray(c, dtype=np.float32))
    return waves, lengths


def attention_mask(lengths: Any, width: int) -> Any:
    """[B, width] int32: 1 over each clip's samples, 0 over its padding (the feature extractors' mask)."""
    import torch

    return (torch.arange(width)[None, :] < lengths[:, None]).to(torch.int32)


def normalise(waves: Any, lengths: Any, padding_value: float = 0.0) -> Any:
    """Each clip to zero mean and unit variance over its own samples, padding set to ``padding_value``: what
    ``Wav2Vec2FeatureExtractor(do_normalize=True)`` gives a padded batch with an attention mask, and what a
    pipeline gives each clip alone (without a mask, the extractor would count the padding in, so a clip's
    values would depend on its batch)."""
    import torch

    inside = torch.arange(waves.shape[1])[None, :] < lengths[:, None]
    n = lengths.clamp(min=1).to(torch.float64)[:, None]
    x = waves.double()
    mean = (x * inside).sum(1, keepdim=True) / n
    var = (((x - mean) * inside) ** 2).sum(1, keepdim=True) / n
    out = ((x - mean) / torch.sqrt(var + 1e-7)).to(waves.dtype)
    return torch.where(inside, out, torch.as_tensor(padding_value, dtype=waves.dtype))
