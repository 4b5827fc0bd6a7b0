"""GLUE through the hub loader, on a local folder laid out like nyu-mll/glue (README.md configs + parquet):
each task's columns and objective, its official metrics as scikit-learn and scipy compute them, MNLI's
mismatched set in ftcli eval, and scripts/glue.sh's one table."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers.data import GLUE_COLUMNS, make_glue
from helpers.runs import FP32, ROOT

from ftcli.config.schemas import GLUE_TASKS


@pytest.fixture(scope="module")
def glue(tmp_path_factory) -> Path:
    return make_glue(tmp_path_factory.mktemp("glue"))


@pytest.mark.parametrize("task", GLUE_TASKS)
def test_each_task_reads_its_columns_through_the_hub_loader(compose, glue, task: str) -> None:
    from ftcli.config.validate import validate
    from ftcli.tasks.registry import build_task

    cfg = compose("dataset=glue", f"dataset.task={task}", f"dataset.path={glue}", "model=tiny")
    validate(cfg)
    assert cfg.task.name == "glue" and cfg.task.benchmark == task
    glue_task = build_task(cfg.task)
    assert type(glue_task.objective.base).__name__ == ("Regression" if task == "stsb" else "Classification")
    data = glue_task.load_data(cfg.dataset, 0)
    columns, k = GLUE_COLUMNS[task]
    assert data.columns == columns
    assert len(data.splits["train"]) == 96 and len(data.splits["validation"]) == 48
    assert len(data.label_names) == (k or 1)
    if task == "mnli":
        assert data.label_names == ["entailment", "neutral", "contradiction"]
        assert len(data.splits["validation_mismatched"]) == 40


def test_a_task_that_glue_lacks_is_named(compose) -> None:
    from ftcli.config.errors import FtcliError
    from ftcli.config.validate import validate

    with pytest.raises(FtcliError, match=r"dataset.task=colla: must be one of cola, sst2"):
        validate(compose("dataset=glue", "dataset.task=colla"))
    from ftcli.tasks.registry import build_task

    with pytest.raises(FtcliError, match=r"task=glue: the GLUE task is None; use dataset=glue dataset.task=<cola"):
        build_task(compose("task=glue").task)


@pytest.mark.parametrize("seed", [0, 1])
def test_official_metrics_agree_with_scikit_learn_and_scipy(compose, seed: int) -> None:
    from scipy import stats
    from sklearn import metrics as sk

    from ftcli.tasks.registry import build_task

    rng = np.random.default_rng(seed)

    def task(name: str):
        return build_task(compose("dataset=glue", f"dataset.task={name}").task)

    labels = rng.integers(0, 2, 300)
    logits = rng.normal(0, 1, (300, 2)) + np.eye(2)[labels] * 0.8
    preds = logits.argmax(-1)
    cola = task("cola").metrics(logits, labels, ["unacceptable", "acceptable"])
    assert cola["mcc"] == pytest.approx(sk.matthews_corrcoef(labels, preds), abs=1e-6) and cola["score"] == cola["mcc"]
    mrpc = task("mrpc").metrics(logits, labels, ["not_equivalent", "equivalent"])
    assert mrpc["f1"] == pytest.approx(sk.f1_score(labels, preds), abs=1e-6)  # of the positive class
    assert mrpc["accuracy"] == pytest.approx(sk.accuracy_score(labels, preds), abs=1e-6)
    assert mrpc["score"] == pytest.approx((mrpc["f1"] + mrpc["accuracy"]) / 2, abs=1e-12)
    scores = rng.integers(0, 6, 300).astype(float)
    out = (scores + rng.normal(0, 1.5, 300))[:, None]
    stsb = task("stsb").metrics(out, scores, ["score"])
    assert stsb["pearson"] == pytest.approx(stats.pearsonr(scores, out[:, 0])[0], abs=1e-6)
    assert stsb["spearman"] == pytest.approx(stats.spearmanr(scores, out[:, 0])[0], abs=1e-6)
    assert stsb["score"] == pytest.approx((stsb["pearson"] + stsb["spearman"]) / 2, abs=1e-12)


@pytest.mark.parametrize("task", ["stsb", "mnli"])
def test_train_then_eval_reports_the_official_metrics(compose, glue, tmp_path, task: str) -> None:
    from ftcli.evaluate import run_eval
    from ftcli.train import train

    cfg = compose(
        "dataset=glue", f"dataset.task={task}", f"dataset.path={glue}", "model=tiny", "strategy=full",
        "hardware=cpu", FP32, "trainer.max_steps=4", "trainer.batch_size=16", out=tmp_path / "run",
    )  # fmt: skip
    result = train(cfg)
    official = ("pearson", "spearman") if task == "stsb" else ("accuracy",)
    assert all(k in result for k in official) and "score" in result
    metrics = run_eval(compose(f"checkpoint={tmp_path}/run", "hardware=cpu", FP32, config="eval", out=tmp_path / "e"))
    assert metrics["score"] == pytest.approx(result["score"], abs=1e-9) and metrics["metric"] == "score"
    if task == "mnli":  # scored on both validation sets
        assert 0.0 <= metrics["accuracy_mismatched"] <= 1.0
    card = (tmp_path / "run" / "checkpoints" / "best" / "README.md").read_text()
    assert f"GLUE {task.upper()}" in card


@pytest.mark.slow
def test_glue_sh_runs_the_suite_and_prints_one_table(glue, tmp_path, cache_dir) -> None:
    env = {**os.environ, "FTCLI_CACHE_DIR": str(cache_dir), "GLUE_PATH": str(glue), "TASKS": "cola stsb mnli"}
    env |= {"MODEL": "tiny", "OUT": str(tmp_path / "glue")}
    r = subprocess.run(
        ["bash", str(ROOT / "scripts" / "glue.sh"), "--quick", "hardware=cpu", "trainer.max_steps=3"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    table = (tmp_path / "glue" / "glue.md").read_text()
    assert table.splitlines()[0] == "| task | validation metrics (official) | score | examples |"
    assert "| COLA | mcc " in table and "| STSB | pearson " in table and "accuracy_mismatched" in table
    assert "| average | 3 of 9 tasks |" in table
    for task in ("cola", "stsb", "mnli"):
        assert json.loads((tmp_path / "glue" / task / "eval" / "eval.json").read_text())["task"] == "glue"
