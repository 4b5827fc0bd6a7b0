"""Fixtures of the CLIP and SigLIP tests: a session-wide image cache, one thread per process, and one contrastive
run of the tiny CLIP that most tests read."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers.clip import SMALL
from helpers.runs import train_once


@pytest.fixture(autouse=True)
def image_cache(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FTCLI_CACHE_DIR", str(cache_dir))
    return cache_dir


@pytest.fixture(autouse=True)
def own_threads():
    """Runs in this process set torch's thread count (hardware.cpu_threads=1): later tests get theirs back
    (bit-exact comparisons elsewhere assume the same count in and out of process)."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def contrastive(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path):
    """A short contrastive run of the tiny CLIP on digit images captioned "a photo of the digit k."."""
    threads = torch.get_num_threads()
    try:
        return train_once(
            tmp_path_factory, cache_dir, "clip_contrastive", *SMALL, "dataset=digits_captions", "strategy=full",
            "trainer.epochs=4",
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
