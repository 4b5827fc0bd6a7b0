"""The model's image processor split in two: its resize/crop (cached as uint8) and the per-channel affine map
that follows (rescale, normalise), checked against the processor's own output."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from ftcli.config.errors import FtcliError


class Resizer:
    """A transformers image processor as (resize/crop: RGB images → uint8 [n, 3, H, W]) followed by a
    per-channel affine map ``pixel_values = uint8 · scale + shift`` (its rescale and normalise).

    Works for transformers' own processors (their rescale and normalise switched off) and for timm's
    (through the timm wrapper: its eval transforms up to ToTensor). The split is checked once against
    the processor's own output, so a cached image evaluates exactly as plain transformers would."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor
        transforms = getattr(processor, "val_transforms", None)  # timm's processor
        self.prefix: Callable[[Any], Any] | None = None
        if transforms is not None:
            steps = list(transforms.transforms)
            cut = next(i for i, t in enumerate(steps) if "ToTensor" in type(t).__name__)
            from torchvision.transforms import Compose

            self.prefix = Compose(steps[:cut])
        self.scale, self.shift = self._affine()
        self.size = tuple(self.resize([_probe_image()]).shape[-2:])
        self._check()

    def resize(self, images: list[Any]) -> np.ndarray:
        """RGB PIL images → uint8 [n, 3, H, W] at the model's input size (the processor's resize and crop)."""
        if self.prefix is not None:
            return np.stack([np.asarray(self.prefix(im), dtype=np.uint8).transpose(2, 0, 1) for im in images])
        off = {"do_rescale": False, "do_normalize": False}
        if hasattr(self.processor, "include_top"):  # EfficientNet's second normalisation
            off["include_top"] = False
        out = self.processor(images, return_tensors="np", **off)["pixel_values"]
        return np.asarray(out).round().clip(0, 255).astype(np.uint8)

    def canvas_side(self) -> int:
        """The square a whole training image is kept in: its longer side at 1.15 × the input side, and at
        least the processor's own resize before its centre crop (input side / crop_pct), so a square photo
        keeps the detail the exact cache had before its crop. The training cache grows by (side / input)²."""
        config = getattr(self.processor, "data_config", None) or {}  # timm's
        crop = getattr(self.processor, "crop_pct", None) or config.get("crop_pct") or 1.0
        side = max(self.size)
        return max(math.ceil(1.15 * side), math.ceil(side / float(crop)))

    def whole(self, images: list[Any], side: int) -> tuple[np.ndarray, np.ndarray]:
        """RGB PIL images → uint8 [n, 3, side, side], each whole: aspect kept, longer side brought to ``side``
        with the processor's resample filter, at the top left, its last column and row repeated into the rest
        (a crop's bilinear samples at its edge then see no dark seam); and each one's (height, width) there."""
        out = np.empty((len(images), 3, side, side), dtype=np.uint8)
        sizes = np.empty((len(images), 2), dtype=np.int64)
        for i, im in enumerate(images):
            w, h = im.size
            f = side / max(w, h)
            w, h = min(side, max(1, round(w * f))), min(side, max(1, round(h * f)))
            pixels = np.asarray(im.resize((w, h), resample=self._resample()), dtype=np.uint8).transpose(2, 0, 1)
            out[i, :, :h, :w] = pixels
            out[i, :, :h, w:] = pixels[:, :, -1:]
            out[i, :, h:, :] = out[i, :, h - 1 : h, :]
            sizes[i] = h, w
        return out, sizes

    def _resample(self) -> Any:
        """The processor's resample filter, as PIL's (timm names it in its data config)."""

        named = (getattr(self.processor, "data_config", None) or {}).get("interpolation")
        if isinstance(named, str) and named.upper() in Image.Resampling.__members__:
            return Image.Resampling[named.upper()]
        resample = getattr(self.processor, "resample", None)
        return Image.Resampling(int(resample)) if resample is not None else Image.Resampling.BICUBIC

    def full(self, images: list[Any]) -> np.ndarray:
        """The processor's own pixel_values (what plain transformers feeds the model)."""
        out = self.processor(images, return_tensors="pt")["pixel_values"]
        return np.asarray(out.float().numpy() if hasattr(out, "numpy") else out, dtype=np.float32)

    def _affine(self) -> tuple[np.ndarray, np.ndarray]:

        black, white = (self.full([Image.new("RGB", (64, 64), (v, v, v))])[0] for v in (0, 255))
        shift = black.reshape(3, -1).mean(1)
        return ((white.reshape(3, -1).mean(1) - shift) / 255.0).astype(np.float32), shift.astype(np.float32)

    def _check(self) -> None:
        sample = [_probe_image()]
        theirs, ours = self.full(sample), self.normalise_np(self.resize(sample))
        if theirs.shape != ours.shape or np.abs(theirs - ours).max() > 1e-3:
            raise FtcliError(
                f"{type(self.processor).__name__}: does more than resize, crop, rescale and normalise; "
                "ftcli cannot cache its inputs"
            )

    def normalise_np(self, pixels: np.ndarray) -> np.ndarray:
        return pixels.astype(np.float32) * self.scale[:, None, None] + self.shift[:, None, None]

    def fingerprint(self) -> str:
        """What the cached uint8 pixels depend on: the processor's class and settings."""
        proc = self.processor
        settings = getattr(proc, "data_config", None) or proc.to_dict()
        blob = json.dumps([type(proc).__name__, settings, self.size], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _probe_image() -> Any:
    """A fixed, non-square, textured image (a constant one would hide a crop or a flip)."""

    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, size=(37, 53, 3), dtype=np.uint8))


_RESIZERS: dict[int, tuple[Any, Any]] = {}  # id(processor) → (processor, its Resizer): probed once per object


def resizer_of(processor: Any) -> Any:
    """The processor's :class:`~ftcli.data.images.resize.Resizer`, made once per processor object (not stored on the
    processor: its attributes are what it saves and what the cache key reads)."""

    known = _RESIZERS.get(id(processor))
    if known is None or known[0] is not processor:
        known = (processor, Resizer(processor))
        _RESIZERS[id(processor)] = known
    return known[1]
