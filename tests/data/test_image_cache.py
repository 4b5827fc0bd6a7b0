"""The decoded-image cache: keyed by the files' bytes (not their size and modification time), and the bad-image
policy of the run applied to what it serves (a cache filled by a ``bad_images=skip`` run)."""

from __future__ import annotations

import os
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image
from transformers import ViTImageProcessor

from ftcli.config.errors import FtcliError
from ftcli.data.images.cache import identity_of
from ftcli.data.images.resize import Resizer
from ftcli.data.images.sources import encode_images


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


def test_a_cache_filled_by_a_skip_run_still_refuses_bad_images_by_default(tmp_path: Path) -> None:
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.png")
        _png(paths[-1], 40 * i)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    paths.append(tmp_path / "bad.png")
    ds = datasets.Dataset.from_dict({"image": [str(p) for p in paths], "labels": [0, 1, 0, 1]})
    resizer = Resizer(ViTImageProcessor(size={"height": 8, "width": 8}))
    cache = tmp_path / "cache"

    kept = encode_images(ds, "image", resizer, cache, skip=True)  # fills the cache without the bad file
    assert len(kept.labels) == 3
    with pytest.raises(FtcliError, match=r"bad\.png.*dataset\.bad_images=skip"):
        encode_images(ds, "image", resizer, cache, skip=False)  # served from the cache: the policy still holds
    assert len(encode_images(ds, "image", resizer, cache, skip=True).labels) == 3
