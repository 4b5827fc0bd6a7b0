"""One image: a path, bytes or PIL image → an upright RGB image, as transformers' ``load_image`` does it."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps


def open_image(source: Any) -> Any:
    """A path, ``{"bytes", "path"}`` dict or PIL image → an upright RGB image (EXIF orientation applied;
    grayscale, palette, RGBA (alpha dropped) and CMYK converted as transformers' ``load_image`` does;
    16-bit grayscale scaled to 8 bits, which ``load_image`` clips), fully decoded. Raises what PIL raises."""

    if isinstance(source, dict):
        data = source.get("bytes")
        source = io.BytesIO(data) if data is not None else source.get("path")
    image = source if isinstance(source, Image.Image) else Image.open(source)
    image.load()  # a truncated or corrupt file fails here, not somewhere in a batch
    image = ImageOps.exif_transpose(image) or image
    if image.mode.startswith("I"):  # 16-bit (or 32-bit int) grayscale: scaled to 8 bits, not clipped at 255
        pixels = np.asarray(image, dtype=np.float64)
        scale = 257.0 if image.mode.startswith("I;16") or pixels.max() <= 65535 else 16843009.0  # → 0…255
        image = Image.fromarray(np.clip(np.round(pixels / scale), 0, 255).astype(np.uint8), mode="L")
    return image.convert("RGB")


def describe(source: Any) -> str:
    """A source as a person finds it: its path, or the path its bytes came from."""
    if isinstance(source, dict):
        return str(source.get("path") or "embedded image")
    return str(source) if isinstance(source, (str, Path)) else "embedded image"
