"""``task=image_regression``: the image inputs with the regression objective, composed from the registry table
alone. On the shipped digits the target is the digit's value as a number: a model that reads the image predicts
it far better than any constant (whose Pearson correlation is 0)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.runs import FP32

from ftcli.train import train

RUN = [
    "task=image_regression", "dataset=digits", "model=tiny_resnet", "dataset.image_size=16", "strategy=full",
    "hardware=cpu", FP32, "dataset.max_train_samples=600", "dataset.max_eval_samples=120", "trainer.epochs=4",
    "trainer.batch_size=16",
]  # fmt: skip


@pytest.fixture(autouse=True)
def image_cache(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTCLI_CACHE_DIR", str(cache_dir))


def test_a_regressor_of_images_reads_the_digit(compose) -> None:
    cfg = compose(*RUN)
    assert cfg.task.name == "image_regression"  # the command line's task wins over the dataset's choice
    result = train(cfg)
    assert result["pearson"] > 0.8 and result["mse"] < 8.25  # a constant's Pearson is 0, its MSE the variance


def test_its_checkpoint_loads_in_plain_transformers(compose) -> None:
    import torch
    from transformers import AutoModelForImageClassification

    from ftcli.training.checkpoint import load_checkpoint, task_of

    cfg = compose(*RUN, "trainer.epochs=1", "dataset.max_train_samples=64")
    train(cfg)
    best = Path(cfg.output_dir) / "checkpoints" / "best"
    plain = AutoModelForImageClassification.from_pretrained(best)
    assert plain.config.problem_type == "regression" and plain.config.num_labels == 1
    model, _, run_cfg = load_checkpoint(best)
    pixels = torch.randn(2, 3, 16, 16)
    with torch.inference_mode():
        np.testing.assert_allclose(plain(pixel_values=pixels).logits, model(pixel_values=pixels).logits, atol=1e-5)
    task = task_of(run_cfg)
    assert task.name == "image_regression" and list(task.objective.predictions(np.ones((1, 1)), ["score"])[0]) == [
        "score"
    ]
