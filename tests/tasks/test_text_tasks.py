"""What every run gets, for the text tasks beyond one label (regression, multi-label, NER, GLUE): sweeps
ranked by the task's own metric, exact resume mid-epoch, and two CPU processes matching one."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
import torch
from helpers.runs import FP32, cut_run, ftcli

SLOW = pytest.mark.slow  # a sweep is ~15 s on 2 cores: make test sweeps regression (pearson), make test-slow every task
TASKS = ("regression", *[pytest.param(t, marks=SLOW) for t in ("multilabel", "ner", "glue")])
METRIC = {"regression": "pearson", "multilabel": "f1_micro", "ner": "f1", "glue": "score"}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, list[str]]:
    """Each task's data as overrides (tiny model, CPU, fp32)."""
    from helpers.data import TOPICS, conll_text, make_glue, ner_sentence, score_rows, topic_rows

    root = tmp_path_factory.mktemp("text_tasks")
    rng = random.Random(0)
    (root / "ner.conll").write_text(conll_text([ner_sentence(rng) for _ in range(120)]))
    (root / "ml.jsonl").write_text("".join(json.dumps(r) + "\n" for r in topic_rows(120, 0)))
    with (root / "reg.csv").open("w", newline="") as f:
        csv.writer(f).writerows([("text", "score"), *score_rows(120, 0)])
    glue = make_glue(root / "glue")
    common = ["model=tiny", "hardware=cpu", FP32]
    return {
        "regression": [*common, "task=text_regression", "dataset=files", f"dataset.train_file={root}/reg.csv",
                       "dataset.label_column=score"],
        "multilabel": [*common, "task=text_multilabel", "dataset=files", f"dataset.train_file={root}/ml.jsonl",
                       "dataset.label_column=labels", f"dataset.label_names=[{','.join(TOPICS)}]"],
        "ner": [*common, "task=token_classification", "dataset=files", f"dataset.train_file={root}/ner.conll"],
        "glue": [*common, "dataset=glue", "dataset.task=mrpc", f"dataset.path={glue}"],
    }  # fmt: skip


@pytest.mark.parametrize("task", TASKS)
def test_a_sweep_is_ranked_by_the_tasks_metric(files, task: str, tmp_path: Path, cache_dir: Path) -> None:
    sweep = tmp_path / "sweep"
    r = ftcli(
        "train", "-m", *files[task], "strategy=full", "strategy.lr=1e-4,3e-3", "trainer.max_steps=3",
        "trainer.batch_size=16", "trainer.save_checkpoints=false", f"hydra.sweep.dir={sweep}",
        env={"FTCLI_CACHE_DIR": str(cache_dir), "COLUMNS": "200"},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    metric = METRIC[task]
    assert f"2 trials (2 completed) · by {metric}" in " ".join(r.stdout.split())
    rows = list(csv.DictReader((sweep / "leaderboard.csv").open()))
    values = [float(row[metric]) for row in rows]
    assert values == sorted(values, reverse=True) and len(values) == 2  # maximised, best first
    header = (sweep / "leaderboard.md").read_text().split("\n\n")[2].splitlines()[0]
    assert header.startswith(f"| # | strategy.lr | {metric} |")


def _weights(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run / "checkpoints" / "last" / "model.safetensors"))


@pytest.mark.parametrize("task", ["regression", "multilabel", "ner"])
def test_resume_mid_epoch_is_bit_identical(files, compose, tmp_path: Path, task: str) -> None:
    """Resume from a state saved mid-epoch 0 (copied out of a full run): the same final weights and metric."""
    from ftcli.train import train

    overrides = [
        *files[task],
        "strategy=full",
        "trainer.batch_size=16",
        "trainer.epochs=2",
        "trainer.save_every_steps=2",
    ]
    full, cut = tmp_path / "full", tmp_path / "cut"
    train(compose(*overrides, "trainer.keep_checkpoints=20", out=full))
    cut_run(full, cut, lambda state: state["batch_in_epoch"] < 6)
    train(compose(*files[task], f"resume={cut}", out=tmp_path / "ignored"))
    a, b = _weights(full), _weights(cut)
    assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)
    metric = METRIC[task]
    assert (
        json.loads((cut / "metrics.json").read_text())[metric]
        == json.loads((full / "metrics.json").read_text())[metric]
    )


@pytest.mark.slow
@pytest.mark.parametrize("task", ["regression", "multilabel", "ner"])
def test_cpu_ddp_matches_one_process(files, tmp_path: Path, cache_dir: Path, task: str) -> None:
    """2 gloo processes × batch 8 and 1 process × batch 16 take the same steps to about the same metric;
    every validation example is scored once."""
    results = {}
    for hw, batch in (("cpu", 16), ("cpu_ddp", 8)):
        run = tmp_path / hw
        r = ftcli(
            "train", *[o for o in files[task] if o != "hardware=cpu"], f"hardware={hw}",
            f"trainer.batch_size={batch}", "strategy=full",
            "trainer.epochs=2", "trainer.save_checkpoints=false", f"hydra.run.dir={run}",
            env={"FTCLI_CACHE_DIR": str(cache_dir)},
        )  # fmt: skip
        assert r.returncode == 0, r.stderr[-3000:]
        assert "global batch 16" in r.stdout
        saved = json.loads((run / "metrics.json").read_text())
        results[hw] = (saved[METRIC[task]], saved["step"], saved["examples"])
    assert results["cpu"][1:] == results["cpu_ddp"][1:]  # same steps, each example once
    assert abs(results["cpu"][0] - results["cpu_ddp"][0]) <= 0.05
