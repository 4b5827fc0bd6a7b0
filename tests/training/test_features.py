"""The frozen-feature cache: an entry is keyed by what its features were computed from (the backbone's weights,
not where they were loaded from), so a backbone retrained into the same folder never gets the old features."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch
from helpers.runs import FP32

from ftcli.train import train

# the shipped digits at 16×16, a slice: a tiny ResNet trains in seconds
DIGITS = [
    "model=tiny_resnet",
    "dataset=digits",
    "dataset.image_size=16",
    "dataset.max_train_samples=300",
    "dataset.max_eval_samples=200",
    "hardware=cpu",
    "hardware.cpu_threads=1",
    FP32,
    "trainer.batch_size=16",
]


@pytest.fixture(autouse=True)
def own_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _into(run: Path, folder: Path) -> None:
    """A run's best checkpoint copied over ``folder``: the same path, other weights (the README's workflow)."""
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(run / "checkpoints" / "best", folder)


def test_a_backbone_retrained_into_the_same_folder_gets_new_features(compose, tmp_path, capsys) -> None:
    backbone = tmp_path / "backbone"
    extract = [*DIGITS, "model.init=pretrained", f"model.name_or_path={backbone}", "strategy=feature_extract"]
    extract += ["trainer.epochs=3", "trainer.save_checkpoints=false"]
    cache = tmp_path / "cache"

    train(compose(*DIGITS, "strategy=full", "trainer.max_steps=1", out=tmp_path / "barely"))
    _into(tmp_path / "barely", backbone)
    first = compose(*extract, out=tmp_path / "extract1")
    first.cache_dir = str(cache)
    train(first)  # fills the cache from the barely trained backbone

    train(compose(*DIGITS, "strategy=full", "trainer.epochs=4", out=tmp_path / "trained"))
    _into(tmp_path / "trained", backbone)  # the same path, well-trained weights
    capsys.readouterr()
    again = compose(*extract, out=tmp_path / "extract2")
    again.cache_dir = str(cache)
    reused = train(again)
    assert re.findall(r"features \w+: .* \((cache hit|computed)\)", capsys.readouterr().out) == ["computed"] * 2
    fresh = compose(*extract, out=tmp_path / "extract3")
    fresh.cache_dir = str(tmp_path / "fresh-cache")
    assert reused["accuracy"] == train(fresh)["accuracy"]  # the same as with no cache at all


def test_a_changed_weight_changes_the_key_and_the_head_does_not(compose) -> None:
    from ftcli.models.loading import model_identity
    from ftcli.models.vision import build_model

    cfg = compose(*DIGITS)
    model, _ = build_model(cfg.model, [str(i) for i in range(10)], None, 0, "", Path(cfg.cache_dir), 16)
    key = model_identity(model)
    with torch.no_grad():
        model.classifier[-1].weight.add_(1.0)  # the head: what the cached features feed, not what they come from
    assert model_identity(model) == key
    with torch.no_grad():
        next(model.resnet.parameters()).view(-1)[0] += 1e-3
    assert model_identity(model) != key
