"""Where a split's images are and how they become model inputs: an image folder's files, or a table's image column
of paths (made absolute, relative to the table that lists them) or of embedded bytes; every image decoded and
resized once into the pixel cache (``cache.py``), the bad-image policy applied; the training split's whole images
(for random resized crops) cached the same way when augmented batches are asked for."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import datasets
import numpy as np
from accelerate import PartialState

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import DatasetConfig
from ftcli.data.images.batches import ImageSet
from ftcli.data.images.cache import crop_boxes, decode_all, identity_of
from ftcli.data.images.decode import describe
from ftcli.data.images.folder import IMAGE_EXTENSIONS
from ftcli.data.images.resize import Resizer
from ftcli.data.media import file_splits, is_paths
from ftcli.data.tables import Raw
from ftcli.reporting.progress import console

IMAGE = "image"  # the column an image folder's rows and predict's rows hold their image in


def image_splits(dataset: DatasetConfig) -> Raw:
    """An image folder's files, or a table's / hub split's image column: paths made absolute (relative to the file
    that lists them), embedded images kept as bytes (decoded once, when cached)."""
    return file_splits(dataset, dataset.image_column or IMAGE, datasets.Image, IMAGE_EXTENSIONS, "image")


def encode_images(ds: Any, column: str, resizer: Resizer, cache_dir: Path, skip: bool) -> ImageSet:
    """A split's images at the model's input size, from the cache (or decoded now and cached); ``skip``: unreadable
    or missing images are left out and counted (``dataset.bad_images=skip``), else the first one stops the run."""
    sources, embedded = _sources(ds, column)
    if not embedded:
        _check_paths(sources, skip)
    content = identity_of([] if embedded else sources, f"{ds._fingerprint}:{column}" if embedded else None)
    start = time.perf_counter()
    decoded = decode_all(sources, lambda i: _where(sources, i), resizer, cache_dir, content, skip)
    labels = np.asarray(ds["labels"])[decoded.kept]
    how = "cache hit" if decoded.hit else f"decoded in {time.perf_counter() - start:.1f} s"
    console.print(f"images: {len(labels):,} × {resizer.size[0]}×{resizer.size[1]} ({how})", highlight=False)
    if decoded.skipped:
        shown = "; ".join(decoded.skipped[:3]) + (" …" if len(decoded.skipped) > 3 else "")
        n = len(decoded.skipped)
        console.print(f"[yellow]skipped {n} unreadable image{'s' * (n != 1)}[/] (dataset.bad_images=skip): {shown}")

    def whole() -> tuple[Any, Any]:  # only when augmented training batches are asked for
        return _whole_images(sources, resizer, cache_dir, content, skip)

    return ImageSet(decoded.pixels, decoded.kept, labels, resizer.scale, resizer.shift, decoded.key, whole)


def _sources(ds: Any, column: str) -> tuple[Any, bool]:
    """The column's images (paths; or, embedded, a lazy sequence of {bytes, path}) and which it is."""
    if is_paths(ds, column):
        return [v if v is not None else "" for v in ds[column]], False
    return _Rows(ds, column), True


class _Rows:
    """One column of a dataset, read a row at a time (embedded images: not all in memory at once)."""

    def __init__(self, ds: Any, column: str) -> None:
        self.ds = ds.select_columns([column])
        self.column = column

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> Any:
        return self.ds[int(i)][self.column]


def _whole_images(sources: Any, resizer: Resizer, cache_dir: Path, content: str, skip: bool) -> tuple[Any, Any]:
    """The training split's images whole (aspect kept, in a canvas) and where each lies in it: what its random
    resized crops are cut from, so that they see a photo's sides, as transformers' crops of the file do. Decoded
    once (the main process first, the others read its cache), then cached like the rest."""
    side = resizer.canvas_side()
    start = time.perf_counter()
    with PartialState().main_process_first():
        decoded = decode_all(sources, lambda i: _where(sources, i), resizer, cache_dir, content, skip, side)
    how = "cache hit" if decoded.hit else f"decoded in {time.perf_counter() - start:.1f} s"
    console.print(f"training crops: {len(decoded.kept):,} whole images in {side}×{side} ({how})", highlight=False)
    assert decoded.sizes is not None
    return decoded.pixels, crop_boxes(decoded.sizes, side)


def _where(sources: Any, i: int) -> str:
    name = describe(sources[i])
    return name if name != "embedded image" else f"image {i + 1} of the split"


def _check_paths(paths: list[str], skip: bool) -> None:
    """Every listed image file exists (one stat each, before any decoding): the first missing one is named."""
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing and not skip:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise FtcliError(
            f"{missing[0] or '(empty path)'}: no such image file{more}; paths in a file are relative to its folder "
            "(or set dataset.bad_images=skip to leave missing images out)"
        )
