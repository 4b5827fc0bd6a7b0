"""Text regression through the Task seam: a known target learned, metrics as scipy computes them,
eval/predict/export and plain transformers agreeing, every strategy, bad targets named."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.data import score_rows
from helpers.runs import FP32, ftcli, train_once

from ftcli.config.errors import FtcliError
from ftcli.metrics.regression import regression_metrics


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("reg")
    for name, n, seed in (("train", 1500, 0), ("val", 300, 1)):
        with (root / f"{name}.csv").open("w", newline="") as f:
            csv.writer(f).writerows([("text", "score"), *score_rows(n, seed)])
    return root


def _overrides(data: Path) -> list[str]:
    return [
        "model=tiny",
        "task=text_regression",
        "dataset=files",
        f"dataset.train_file={data}/train.csv",
        f"dataset.validation_file={data}/val.csv",
        "dataset.label_column=score",
        "hardware=cpu",
        FP32,
    ]


@pytest.fixture(scope="module")
def run(data, tmp_path_factory, cache_dir):
    out, _, result = train_once(
        tmp_path_factory, cache_dir, "reg_run", *_overrides(data), "strategy=full", "trainer.epochs=4"
    )
    return out, result


def test_a_known_target_is_learned_and_the_mean_scores_zero(run, data) -> None:
    out, result = run
    assert result["pearson"] >= 0.9, result  # the metric that picked checkpoints/best
    targets = np.array([s for _, s in score_rows(300, 1)])
    assert regression_metrics(targets, np.full_like(targets, targets.mean()))["pearson"] == 0.0
    assert "name: text_regression" in (out / "config.yaml").read_text()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_agree_with_scipy(seed: int) -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 6, 500).astype(float)  # many ties: Spearman's mean ranks matter
    p = t + rng.normal(0, 1.5, 500)
    p[:50] = np.round(p[:50])
    ours = regression_metrics(t, p)
    assert ours["pearson"] == pytest.approx(stats.pearsonr(t, p)[0], abs=1e-6)
    assert ours["spearman"] == pytest.approx(stats.spearmanr(t, p)[0], abs=1e-6)
    assert ours["mse"] == pytest.approx(((p - t) ** 2).mean(), abs=1e-6)
    assert ours["mae"] == pytest.approx(np.abs(p - t).mean(), abs=1e-6)


def test_eval_predict_and_plain_transformers_agree(run, data, compose, tmp_path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ftcli.evaluate import run_eval

    out, result = run
    best = out / "checkpoints" / "best"
    metrics = run_eval(compose(f"checkpoint={out}", "hardware=cpu", FP32, config="eval", out=tmp_path / "eval"))
    assert metrics["pearson"] == pytest.approx(result["pearson"], abs=1e-9) and metrics["metric"] == "pearson"
    lo, hi = metrics["ci95"]["pearson"]
    assert lo <= metrics["pearson"] <= hi
    config = json.loads((best / "config.json").read_text())
    assert config["problem_type"] == "regression" and config["id2label"] == {"0": "score"}
    r = ftcli(
        "predict",
        f"checkpoint={out}",
        f"input={data}/val.csv",
        f"output={tmp_path}/p.csv",
        "hardware=cpu",
        FP32,
        f"hydra.run.dir={tmp_path}/p",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert list(rows[0]) == ["text", "score", "predicted_score"]
    texts = [row["text"] for row in rows[:16]]
    model = AutoModelForSequenceClassification.from_pretrained(best, trust_remote_code=True).eval()
    tok = AutoTokenizer.from_pretrained(best)
    with torch.inference_mode():
        plain = model(**tok(texts, padding=True, return_tensors="pt")).logits[:, 0].numpy()
    np.testing.assert_allclose(plain, [float(row["predicted_score"]) for row in rows[:16]], atol=1e-4)


@pytest.mark.parametrize(
    "strategy", ["feature_extract", "lora", "partial", "lp_ft", "bitfit", "gradual_unfreeze", "full"]
)
def test_every_strategy_trains_a_regressor(data, compose, strategy: str) -> None:
    from ftcli.train import train

    overrides = [*_overrides(data), f"strategy={strategy}", "trainer.max_steps=4", "trainer.save_checkpoints=false"]
    if strategy in ("lp_ft", "gradual_unfreeze"):  # a short epoch, so that their schedules act within 4 steps
        overrides += ["dataset.max_train_samples=96", "trainer.batch_size=16"]
    result = train(compose(*overrides, "strategy.layer_lr_decay=0.8", "strategy.regularization=l2sp"))
    assert np.isfinite(result["mse"]) and "pearson" in result


@pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("onnxruntime", "onnxscript", "onnx")),
    reason="onnx/onnxscript/onnxruntime not installed (pip install 'ftcli[export]')",
)
@pytest.mark.slow  # make test keeps the generic export test (test_eval_predict_export.py)
def test_onnx_export_of_a_regressor_is_verified(run, tmp_path) -> None:
    from helpers.runs import compose_cmd

    from ftcli.export import run_export

    out, _ = run
    res = run_export(compose_cmd("export", f"checkpoint={out}", f"output={tmp_path}/onnx", out=tmp_path))
    assert res["max_abs_diff"] < 1e-4 and res["verified_on"] == 300
    assert json.loads((tmp_path / "onnx" / "config.json").read_text())["problem_type"] == "regression"


def test_the_shipped_pair_set_picks_its_task_and_the_command_line_wins(compose) -> None:
    from ftcli.tasks.registry import build_task

    assert compose("dataset=sts_pairs").task.name == "text_regression"
    assert type(build_task(compose("dataset=sts_pairs").task).objective).__name__ == "Regression"
    assert compose("dataset=sts_pairs", "task=text_classification").task.name == "text_classification"
    assert compose().task.name == "text_classification"


def test_a_target_that_is_not_a_number_names_its_row(data, compose, tmp_path) -> None:
    from helpers.runs import load_data

    bad = tmp_path / "bad.csv"
    bad.write_text("text,score\nalpha beta,1.5\ngamma,lots\n")
    cfg = compose(*_overrides(data), f"dataset.validation_file={bad}")
    with pytest.raises(FtcliError, match=r"label 'lots' is not a number in row 2 of bad.csv \(column 'score'\)"):
        load_data(cfg.dataset, 0, task="text_regression")
