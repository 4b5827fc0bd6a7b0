"""Shared fixtures: the real config tree composed with small overrides, outputs under tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.runs import TINY, train_once

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a hub
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the session: the tiny vocab and features are built once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def tiny_full(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path):
    """One short full fine-tuning run of the tiny model (pooled head, 2 epochs), shared by every test that
    only reads a finished run: (run dir, cfg, result)."""
    return train_once(tmp_path_factory, cache_dir, "tiny_full", *TINY, "strategy=full", "trainer.epochs=2")


@pytest.fixture
def compose(cache_dir: Path, tmp_path: Path):
    """compose(*overrides, config="train") → a composed config whose outputs go to tmp_path."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from ftcli.config.registry import config_dir, register_configs

    register_configs()

    def _compose(*overrides: str, config: str = "train", out: Path | None = None):
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3", job_name="test"):
            cfg = hydra_compose(config_name=config, overrides=list(overrides))
        cfg.output_dir = str(out or tmp_path / "run")
        cfg.cache_dir = str(cache_dir)
        return cfg

    return _compose
