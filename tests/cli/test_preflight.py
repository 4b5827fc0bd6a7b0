"""Before Hydra starts: a resumed run's dir, what resume= ignores, a finished run left as it is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftcli.cli.preflight import resume_into_run_dir


def _run(folder: Path, finished: bool) -> Path:
    """A run dir as training leaves it: config.yaml, a resumable state at step 10, metrics.json when it finished."""
    (folder / "state" / "step_10").mkdir(parents=True)
    (folder / "config.yaml").write_text("task:\n  name: text_classification\n")
    (folder / "state" / "step_10" / "trainer_state.json").write_text(json.dumps({"step": 10}))
    if finished:
        (folder / "metrics.json").write_text(json.dumps({"accuracy": 0.5}))
    return folder


def test_resuming_a_finished_run_says_so_and_changes_nothing(tmp_path, capsys) -> None:
    run = _run(tmp_path / "run", finished=True)
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    with pytest.raises(SystemExit) as stop:
        resume_into_run_dir([f"resume={run}", "task=glue", f"hydra.run.dir={tmp_path / 'other'}"])
    assert stop.value.code == 0
    err = capsys.readouterr().err
    assert f"resume={run}: the run finished at step 10 (metrics.json); nothing to resume, nothing changed" in err
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*")} == before
    assert not (tmp_path / "other").exists()


def test_overrides_that_resume_ignores_are_named_in_one_line(tmp_path, capsys) -> None:
    run = _run(tmp_path / "run", finished=False)
    args = [f"resume={run}", "task=glue", "trainer.epochs=9", "hardware.machine_rank=1", f"hydra.run.dir={run}"]
    kept = resume_into_run_dir(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["ftcli: note: resume= trains with the run's own config; ignored: task=glue, trainer.epochs=9"]
    assert kept == ["hardware.machine_rank=1", f"resume={run}", f"hydra.run.dir={run}", "hydra.output_subdir=null"]
