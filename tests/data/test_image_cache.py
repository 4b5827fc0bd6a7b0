"""The decoded-image cache: keyed by the files' bytes (not their size and modification time), and the bad-image
policy of the run applied to what it serves (a cache filled by a ``bad_images=skip`` run)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from ftcli.data.images.cache import identity_of


def _png(path: Path, value: int) -> None:
    Image.fromarray(np.full((8, 8), value, dtype=np.uint8), mode="L").save(path)


def test_a_file_replaced_with_its_size_and_mtime_kept_gets_another_key(tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    _png(image, 10)
    stat = image.stat()
    key = identity_of([str(image)], None)
    _png(image, 200)  # the same size (a flat 8×8 PNG), other pixels
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as cp -p or rsync -t leave it
    assert image.stat().st_size == stat.st_size and image.stat().st_mtime_ns == stat.st_mtime_ns
    assert identity_of([str(image)], None) != key
