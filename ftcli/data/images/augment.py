"""Training augmentation as whole-batch tensor operations: random resized crops and flips through one affine
``grid_sample``, seeded per batch."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class Augment:
    """Random resized crop (area share ``scale``, aspect ``ratio``) and horizontal flip, per image."""

    scale: tuple[float, float]
    ratio: tuple[float, float]
    hflip: bool


def batch_generator(seed: int, rows: np.ndarray) -> Any:
    """A generator seeded by the run's seed and the batch's rows: the same batch gets the same crops
    again (in a resumed run, in a loader worker), and batches differ every epoch because their rows do."""

    digest = hashlib.blake2b(rows.tobytes(), digest_size=8, key=str(seed).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)


def augment(pixels: Any, aug: Augment, gen: Any, box: Any = None, size: tuple[int, ...] | None = None) -> Any:
    """Random resized crops (one per image, to ``size``: the model's input, by default the stored size) and
    flips of a [B, 3, H, W] batch, as one affine ``grid_sample`` (bilinear): the whole batch at once, no
    per-image Python. ``box`` [B, 4] (:func:`crop_boxes`) is where each image lies in what is stored: its
    crop takes an area share of that box and its centre lies inside it; None: the whole stored image."""

    b = pixels.shape[0]
    bw, bh, bx, by = (torch.ones(b), torch.ones(b), torch.zeros(b), torch.zeros(b)) if box is None else box.unbind(1)
    lo, hi = math.log(aug.ratio[0]), math.log(aug.ratio[1])
    area = torch.empty(b).uniform_(aug.scale[0], aug.scale[1], generator=gen) * (bw * bh)  # a share of the canvas
    ratio = torch.exp(torch.empty(b).uniform_(lo, hi, generator=gen))
    w, h = torch.minimum((area * ratio).sqrt(), bw), torch.minimum((area / ratio).sqrt(), bh)  # canvas shares
    cx = bx + (torch.rand(b, generator=gen) * 2 - 1) * (bw - w)  # crop centre, in grid coordinates [-1, 1]
    cy = by + (torch.rand(b, generator=gen) * 2 - 1) * (bh - h)
    flip = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0) if aug.hflip else torch.ones(b)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w * flip, cx, h, cy
    grid = F.affine_grid(theta, [b, pixels.shape[1], *(size or pixels.shape[-2:])], align_corners=False)
    return F.grid_sample(pixels, grid, mode="bilinear", padding_mode="border", align_corners=False)
