"""Sweeps that survive and resume: status files, skipping, the leaderboard, the shipped sweep configs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from helpers.runs import ROOT, TINY, ftcli

from ftcli.cli.sweep import multirun_args, sweep_dir
from ftcli.leaderboard import find_trials, rank, seed_groups, varying_keys
from ftcli.training.trials import read_status, run_trial, write_status

# ---- bookkeeping, without training ---------------------------------------------------------------


def test_sweep_dir_is_the_same_for_the_same_command_and_ignores_launcher_settings() -> None:
    a = sweep_dir("train", ["model=tiny", "strategy.lr=1e-3,1e-2"])
    assert a == sweep_dir(
        "train", ["strategy.lr=1e-3,1e-2", "model=tiny", "hydra/launcher=parallel", "hydra.launcher.n_jobs=4"]
    )
    assert a != sweep_dir("train", ["model=tiny", "strategy.lr=1e-3,3e-2"])
    assert sweep_dir("train", ["hparams_search=sst2_optuna"]).startswith("multirun/train_sst2_optuna_")


def test_trial_dirs_leave_out_the_overrides_every_trial_shares() -> None:
    args = ["-m", "model=tiny", "strategy.lr=1e-3,1e-2", "hydra.sweep.dir=x"]
    extra = multirun_args("train", args, ["model=tiny", "strategy.lr=1e-3,1e-2"])
    assert extra == ["hydra.job.config.override_dirname.exclude_keys=['model']"]  # the user's sweep dir stays


def test_failed_trial_is_recorded_and_rerun_completed_one_is_skipped(tmp_path: Path) -> None:
    calls = []

    def boom() -> dict[str, float]:
        calls.append("boom")
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def ok() -> dict[str, float]:
        calls.append("ok")
        return {"accuracy": 0.75, "train_seconds": 1.0}

    job = tmp_path / "strategy.lr=0.1"
    assert run_trial(job, ["strategy.lr=0.1"], "accuracy", boom) is None  # what sweepers accept as failed
    status = read_status(job)
    assert status["status"] == "failed" and "out of memory" in status["error"]
    assert run_trial(job, ["strategy.lr=0.1"], "accuracy", ok) == 0.75  # failed → runs again
    assert run_trial(job, ["strategy.lr=0.1"], "accuracy", boom) == 0.75  # completed → skipped
    assert calls == ["boom", "ok"]
    assert read_status(job)["status"] == "completed"
    # the same dir reached by different overrides (a reused hydra.sweep.dir) is trained again
    assert run_trial(job, ["strategy.lr=0.2"], "accuracy", ok) == 0.75 and calls == ["boom", "ok", "ok"]
    # and so is a trial whose config changed since (an edited YAML: same overrides, another config hash)
    assert run_trial(job, ["strategy.lr=0.2"], "accuracy", ok, config="other") == 0.75 and len(calls) == 4
    assert run_trial(job, ["strategy.lr=0.2"], "accuracy", boom, config="other") == 0.75 and len(calls) == 4


def test_an_interrupted_trial_runs_again(tmp_path: Path) -> None:
    job = tmp_path / "t"
    write_status(job, {"status": "running", "overrides": ["a=1"]})  # killed mid-training
    assert run_trial(job, ["a=1"], "accuracy", lambda: {"accuracy": 0.5}) == 0.5


def test_a_trial_stopped_by_a_signal_is_not_recorded_as_completed(tmp_path: Path) -> None:
    job = tmp_path / "t"
    with pytest.raises(SystemExit) as stopped:  # the sweep stops as a killed process would
        run_trial(job, ["a=1"], "accuracy", lambda: {"interrupted_by_signal": 15.0, "step": 3.0})
    assert stopped.value.code == 128 + 15
    assert read_status(job)["status"] == "interrupted"
    assert run_trial(job, ["a=1"], "accuracy", lambda: {"accuracy": 0.5}) == 0.5  # the same sweep runs it again


def _fake_trial(root: Path, name: str, overrides: list[str], status: str, **metrics: float) -> None:
    done = status == "completed"
    write_status(
        root / name,
        {
            "status": status,
            "overrides": overrides,
            "metric": "accuracy",
            "metrics": {**metrics, "train_seconds": 2.0} if done else {},
            "error": None if done else "FtcliError: loss is nan",
        },
    )


def test_leaderboard_ranks_completed_trials_and_averages_over_seeds(tmp_path: Path) -> None:
    for lr, seed, acc, loss in [
        ("1e-3", 1, 0.80, 0.5),
        ("1e-3", 2, 0.84, 0.4),
        ("1e-2", 1, 0.70, 0.6),
        ("1e-2", 2, 0.74, 0.3),
    ]:
        overrides = ["model=tiny", f"strategy.lr={lr}", f"trainer.seed={seed}"]
        _fake_trial(tmp_path, f"lr={lr},seed={seed}", overrides, "completed", accuracy=acc, loss=loss)
    _fake_trial(tmp_path, "lr=1,seed=1", ["model=tiny", "strategy.lr=1", "trainer.seed=1"], "failed")
    trials = find_trials(tmp_path)
    keys = varying_keys(trials)
    assert keys == ["strategy.lr", "trainer.seed"]  # model=tiny is shared: not a column
    assert [t.metrics.get("accuracy") for t in rank(trials, "accuracy")] == [0.84, 0.80, 0.74, 0.70, None]
    assert [t.metrics.get("loss") for t in rank(trials, "loss")][:2] == [0.3, 0.4]  # loss: lower is better
    groups = seed_groups(trials, keys, "accuracy")
    assert [(g["strategy.lr"], g["n"]) for g in groups] == [("1e-3", 2), ("1e-2", 2)]
    assert groups[0]["mean"] == pytest.approx(0.82) and groups[0]["std"] == pytest.approx(0.02828, abs=1e-4)

    r = ftcli("leaderboard", str(tmp_path), "--metric", "accuracy", env={"COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    assert "5 trials (4 completed, 1 failed)" in r.stdout and "0.8200 ± 0.0283" in r.stdout
    rows = list(csv.DictReader((tmp_path / "leaderboard.csv").open()))
    assert [(row["strategy.lr"], row["trainer.seed"], row["status"]) for row in rows][0] == (
        "1e-3",
        "2",
        "completed",
    )
    assert rows[-1]["status"] == "failed" and "nan" in rows[-1]["error"]
    assert "| 1 | 1e-3 | 2 | 0.8400 |" in (tmp_path / "leaderboard.md").read_text()


def test_leaderboard_of_a_missing_dir_is_one_line(tmp_path: Path) -> None:
    r = ftcli("leaderboard", str(tmp_path / "nope"))
    assert r.returncode == 2 and r.stderr.startswith("ftcli: error:") and len(r.stderr.strip().splitlines()) == 1


def test_leaderboard_does_not_import_torch(tmp_path: Path) -> None:
    import subprocess
    import sys

    _fake_trial(tmp_path, "a", ["x=1"], "completed", accuracy=0.5)
    code = (
        "import sys; from ftcli.cli.main import main; main(['leaderboard', sys.argv[1]]); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]


# ---- the shipped sweep configs -----------------------------------------------------------------------


@pytest.mark.parametrize("launcher", ["sequential", "parallel", "slurm"])
def test_launcher_configs_compose(launcher: str, tmp_path: Path) -> None:
    r = ftcli("train", f"hydra/launcher={launcher}", "--cfg", "hydra", "-p", "hydra.launcher")
    assert r.returncode == 0, r.stderr[-2000:]
    target = {"sequential": "BasicLauncher", "parallel": "JoblibLauncher", "slurm": "SlurmLauncher"}[launcher]
    assert target in r.stdout
    if launcher == "slurm":
        assert "partition:" in r.stdout and "gpus_per_node: 1" in r.stdout and "timeout_min: 120" in r.stdout


def test_optuna_search_config_composes(tmp_path: Path) -> None:
    r = ftcli("train", "hparams_search=sst2_optuna", "--cfg", "hydra", "-p", "hydra.sweeper")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "OptunaSweeper" in r.stdout and "direction: maximize" in r.stdout and "strategy.lr:" in r.stdout


# ---- the real CLI on the tiny model ----------------------------------------------------------------------

# 4 trials; 3 attention heads do not divide the tiny model's hidden size 64: a bad hyperparameter that only
# shows when the model is built, so that trial fails while the sweep goes on.
HEADS = "model.config_overrides.num_attention_heads=1,2,3,4"


@pytest.mark.slow  # an end-to-end CLI run of 20-45 s on 2 cores: make test-slow
def test_sweep_survives_a_failed_trial_and_resumes_only_that_one(tmp_path: Path, cache_dir: Path) -> None:
    sweep = tmp_path / "sweep"
    args = ["train", "-m", *TINY, "trainer.max_steps=2", HEADS, f"hydra.sweep.dir={sweep}"]
    env = {"FTCLI_CACHE_DIR": str(cache_dir), "COLUMNS": "200"}
    r = ftcli(*args, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    status = {p.parent.name: json.loads(p.read_text())["status"] for p in sweep.glob("*/status.json")}
    assert status == {
        f"model.config_overrides.num_attention_heads={h}": s
        for h, s in [(1, "completed"), (2, "completed"), (3, "failed"), (4, "completed")]
    }
    assert "4 trials (3 completed, 1 failed)" in r.stdout  # the leaderboard closes the sweep
    done = {p: p.stat().st_mtime_ns for p in sweep.glob("*/metrics.json")}
    assert len(done) == 3

    r = ftcli(*args, env=env)  # the same command again
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.count("skip ") == 3 and r.stdout.count("trial failed") == 1
    assert {p: p.stat().st_mtime_ns for p in sweep.glob("*/metrics.json")} == done  # not retrained
    rows = list(csv.DictReader((sweep / "leaderboard.csv").open()))
    assert [row["status"] for row in rows] == ["completed", "completed", "completed", "failed"]
    best = rows[0]["checkpoint"]
    assert Path(best, "config.json").is_file()


@pytest.mark.slow
def test_optuna_sweep_marks_a_failed_trial_failed_and_goes_on(tmp_path: Path, cache_dir: Path) -> None:
    sweep = tmp_path / "optuna"
    r = ftcli(
        "train",
        "-m",
        "hparams_search=sst2_optuna",
        *TINY,
        "trainer.max_steps=2",
        "hydra.sweeper.n_trials=4",
        "model.config_overrides.num_attention_heads=choice(2,3)",
        f"hydra.sweep.dir={sweep}",
        env={"FTCLI_CACHE_DIR": str(cache_dir)},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    trials = find_trials(sweep)
    assert len(trials) == 4 and {t.status for t in trials} <= {"completed", "failed"}
    failed = [t for t in trials if t.status == "failed"]
    assert failed and all(t.overrides["model.config_overrides.num_attention_heads"] == "3" for t in failed)
    assert (sweep / "optimization_results.yaml").is_file()  # the study finished


@pytest.mark.slow
def test_parallel_launcher_runs_trials_in_worker_processes(tmp_path: Path, cache_dir: Path) -> None:
    sweep = tmp_path / "parallel"
    r = ftcli(
        "train",
        "-m",
        "hydra/launcher=parallel",
        "hydra.launcher.n_jobs=2",
        *TINY,
        "trainer.max_steps=2",
        "hardware.cpu_threads=1",
        "model.config_overrides.num_attention_heads=2,3",
        f"hydra.sweep.dir={sweep}",
        env={"FTCLI_CACHE_DIR": str(cache_dir)},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Joblib.Parallel" in r.stdout + r.stderr
    trials = {t.overrides["model.config_overrides.num_attention_heads"]: t for t in find_trials(sweep)}
    assert trials["2"].status == "completed" and trials["3"].status == "failed"
