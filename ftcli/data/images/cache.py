"""The pixel cache: every image of a split decoded and resized once, in a memory-mapped uint8 file written
atomically, keyed by what the pixels depend on."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ftcli.config.errors import FtcliError, first_line
from ftcli.data.images.decode import open_image
from ftcli.data.images.resize import Resizer

CHUNK = 64  # images per decode task: enough to batch the processor's resize, small enough to spread over threads


def default_cache_dir() -> Path:
    """Where cached pixels go when no run names a cache dir (ftcli eval, export): the configs' default."""
    return Path(os.environ.get("FTCLI_CACHE_DIR") or Path.home() / ".cache" / "ftcli").expanduser()


@dataclass
class Decoded:
    """uint8 pixels of the readable rows and what became of the others."""

    pixels: np.ndarray  # [n, 3, H, W], memory-mapped from the cache
    kept: np.ndarray  # positions (in the split) of the rows in ``pixels``
    skipped: list[str]  # "<where>: <why>" for every row left out (bad_images=skip)
    key: str
    hit: bool
    sizes: np.ndarray | None = None  # whole images (a canvas): each row's (height, width) inside it


def identity_of(sources: list[Any], fingerprint: str | None) -> str:
    """A content key for a split's images: paths with their size and modification time, or (embedded
    images) the dataset's own fingerprint."""
    h = hashlib.sha256()
    if fingerprint is not None:
        h.update(fingerprint.encode())
    for s in sources:
        if isinstance(s, str):
            try:
                st = os.stat(s)
                h.update(f"{s}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            except OSError:
                h.update(f"{s}\0missing\n".encode())
        else:
            h.update(b"embedded\n")
    return h.hexdigest()[:20]


def decode_all(
    sources: list[Any],
    where: Callable[[int], str],
    resizer: Resizer,
    cache: Path,
    content: str,
    skip: bool,
    canvas: int = 0,
) -> Decoded:
    """Every image of a split at the model's input size (``canvas``: whole, in a canvas of that side, see
    :meth:`Resizer.whole`), from the cache or decoded now (on threads) and stored atomically. An unreadable
    or missing image stops the run with one line naming it, or (``skip``) is left out and counted."""
    whole = f"-whole{canvas}" if canvas else ""
    key = hashlib.sha256(f"{content}-{resizer.fingerprint()}{whole}".encode()).hexdigest()[:20]
    npy, meta = cache / "images" / f"{key}.npy", cache / "images" / f"{key}.json"
    if npy.is_file() and meta.is_file():
        try:
            info = json.loads(meta.read_text())
            kept, found = np.asarray(info["kept"], dtype=np.int64), info.get("sizes")
            sizes = np.asarray(found, dtype=np.int64).reshape(-1, 2) if canvas else None
            return Decoded(np.load(npy, mmap_mode="r"), kept, info["skipped"], key, True, sizes)
        except (OSError, ValueError, KeyError, TypeError):  # a damaged entry is rebuilt, not trusted
            npy.unlink(missing_ok=True)
    h, w = (canvas, canvas) if canvas else resizer.size
    npy.parent.mkdir(parents=True, exist_ok=True)
    tmp = npy.with_suffix(f".tmp{os.getpid()}.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(sources), 3, h, w))
    ok = np.ones(len(sources), dtype=bool)
    sizes = np.zeros((len(sources), 2), dtype=np.int64)
    skipped: list[str] = []

    def chunk(start: int) -> None:
        images, rows = [], []
        for i in range(start, min(start + CHUNK, len(sources))):
            try:
                images.append(open_image(sources[i]))
                rows.append(i)
            except FileNotFoundError:
                _bad(skip, ok, skipped, i, f"{where(i)}: no such image file")
            except Exception as e:  # PIL's UnidentifiedImageError, OSError (truncated), DecompressionBombError …
                _bad(skip, ok, skipped, i, f"{where(i)}: not a readable image ({first_line(e)})")
        if images and canvas:
            out[rows], sizes[rows] = resizer.whole(images, canvas)
        elif images:
            out[rows] = resizer.resize(images)

    try:
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            list(pool.map(chunk, range(0, len(sources), CHUNK)))
        out.flush()
        kept = np.flatnonzero(ok)
        meta.write_text(json.dumps({"kept": kept.tolist(), "skipped": skipped, "sizes": sizes.tolist()}))
        os.replace(tmp, npy)  # the .npy appears whole or not at all
    finally:
        tmp.unlink(missing_ok=True)
    return Decoded(np.load(npy, mmap_mode="r"), kept, skipped, key, False, sizes if canvas else None)


def crop_boxes(sizes: np.ndarray, side: int) -> np.ndarray:
    """Where each whole image lies in its canvas (top left), as :func:`augment` reads it: (width share,
    height share, centre x, centre y), in grid units ([-1, 1] across the canvas)."""
    shares = sizes[:, ::-1].astype(np.float32) / np.float32(side)  # (w, h) / side
    return np.concatenate([shares, shares - 1], axis=1).astype(np.float32)


def _bad(skip: bool, ok: np.ndarray, skipped: list[str], i: int, why: str) -> None:
    if not skip:
        raise FtcliError(f"{why}; fix or remove it, or set dataset.bad_images=skip to leave such images out")
    ok[i] = False
    skipped.append(why)
