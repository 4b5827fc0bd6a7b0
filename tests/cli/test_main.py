"""The real CLI: train → eval from the command line, and a Hydra multirun."""

from __future__ import annotations

import json

from helpers.runs import TINY, ftcli


def test_train_then_eval_from_the_command_line(tmp_path, cache_dir) -> None:
    env = {"FTCLI_CACHE_DIR": str(cache_dir)}
    run = tmp_path / "run"
    r = ftcli("train", *TINY, "strategy=full", "trainer.max_steps=6", f"hydra.run.dir={run}", env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "best validation accuracy" in r.stdout
    r = ftcli("eval", f"checkpoint={run}/checkpoints/best", f"hydra.run.dir={tmp_path}/eval", env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    trained = json.loads((run / "metrics.json").read_text())["accuracy"]
    assert json.loads((tmp_path / "eval" / "eval.json").read_text())["accuracy"] == trained
    assert f"accuracy {trained:.4f}" in r.stdout


def test_multirun_gives_one_run_dir_per_job(tmp_path, cache_dir) -> None:
    r = ftcli(
        "train",
        "-m",
        *TINY,
        "trainer.max_steps=2",
        "strategy=full,feature_extract",
        f"hydra.sweep.dir={tmp_path}/sweep",
        env={"FTCLI_CACHE_DIR": str(cache_dir)},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    jobs = sorted(p for p in (tmp_path / "sweep").iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["strategy=feature_extract", "strategy=full"]  # named by what varies
    strategies = {
        json.loads((p / "metrics.json").read_text())
        and (p / "config.yaml").read_text().split("strategy:\n  name: ")[1].split()[0]
        for p in jobs
    }
    assert strategies == {"full", "feature_extract"}


def test_eval_of_a_missing_checkpoint_is_one_line(tmp_path) -> None:
    r = ftcli("eval", f"checkpoint={tmp_path}/nope", f"hydra.run.dir={tmp_path}/eval")
    assert r.returncode == 2
    assert r.stderr.strip() == f"ftcli: error: checkpoint={tmp_path}/nope: no such file or folder"
