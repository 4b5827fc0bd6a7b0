"""Output read off a terminal (a log file, ``| tee``, CI, SLURM) keeps its lines whole and its tables
readable, and libraries do not chatter on ftcli's output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.runs import ROOT, TINY, ftcli

from ftcli.training.trials import write_status

HEADS = "model.config_overrides.num_attention_heads"
ERROR = "ValueError: The hidden size (64) is not a multiple of the number of attention heads (3)"


@pytest.fixture
def no_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in CI or SLURM: no terminal, and no COLUMNS to say how wide one would be. (Subprocesses get
    ``env=os.environ`` explicitly: readline, once imported, puts COLUMNS=80 in the C environment.)"""
    monkeypatch.delenv("COLUMNS", raising=False)


def test_leaderboard_in_a_log_file_has_one_line_per_trial(tmp_path: Path, no_columns: None) -> None:
    sweep = tmp_path / "multirun" / "train_a_sweep_with_a_rather_long_name_1a2b3c4d"
    for heads in (1, 2, 3, 4):
        ok = heads != 3
        write_status(
            sweep / f"{HEADS}={heads}",
            {
                "status": "completed" if ok else "failed",
                "overrides": ["model=tiny", f"{HEADS}={heads}"],
                "metric": "accuracy",
                "metrics": {"accuracy": 0.5 + heads / 100, "f1_macro": 0.4, "mcc": 0.1, "loss": 0.69} if ok else {},
                "error": None if ok else ERROR,
            },
        )
    log = tmp_path / "sweep.log"
    with log.open("w") as out:  # `ftcli leaderboard ... > sweep.log`
        r = subprocess.run(
            [sys.executable, "-m", "ftcli.cli", "leaderboard", str(sweep)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(os.environ),
            timeout=300,
        )
    text = log.read_text()
    assert r.returncode == 0, text
    lines = text.splitlines()
    rows = [line for line in lines if line.startswith("│")]
    assert len(rows) == 4, text  # one line per trial, none folded
    assert [row.split("│")[2].strip() for row in rows] == ["4", "2", "1", "3"]
    assert "completed" in rows[0] and "failed" in rows[3] and "…" in rows[3]  # the long error is cut, not folded
    assert len([line for line in lines if line.startswith("┃")]) == 1 and HEADS in text  # the header: one line
    assert any("4 trials (3 completed, 1 failed) · by accuracy" in line and str(sweep) in line for line in lines)
    assert any(line.startswith("best: ") and "checkpoint" in line for line in lines)
    assert any("leaderboard.csv" in line and "leaderboard.md" in line for line in lines)
    assert ERROR in (sweep / "leaderboard.csv").read_text()  # the full text is in the CSV


def test_run_summary_in_a_pipe_is_not_folded(cache_dir: Path, no_columns: None) -> None:
    r = ftcli("train", *TINY, "trainer.dry_run=true", env={"FTCLI_CACHE_DIR": str(cache_dir)})
    assert r.returncode == 0, r.stderr[-2000:]
    summary = [line for line in r.stdout.splitlines() if "strategy=feature_extract" in line]
    assert len(summary) == 1 and "validation 128" in summary[0], r.stdout


def test_the_shared_console_is_wide_and_unwrapped_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from ftcli.reporting.progress import OFF_TERMINAL_WIDTH, make_console

    monkeypatch.delenv("COLUMNS", raising=False)
    console = make_console(file=io.StringIO())
    assert console.width == OFF_TERMINAL_WIDTH and console.soft_wrap
    console.print("x" * 500)
    assert console.file.getvalue() == "x" * 500 + "\n"  # type: ignore[attr-defined]
    monkeypatch.setenv("COLUMNS", "100")
    assert make_console(file=io.StringIO()).width == 100  # an explicit width still wins


def test_matplotlib_does_not_announce_its_font_cache(tmp_path: Path) -> None:
    """Hydra's job logging puts the root logger at INFO; a fresh MPLCONFIGDIR makes matplotlib build its cache."""
    code = (
        "import logging; logging.basicConfig(level=logging.INFO); "
        "from ftcli.reporting.plots import _pyplot; assert _pyplot() is not None"
    )
    env = {**os.environ, "MPLCONFIGDIR": str(tmp_path / "mpl")}
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "fontManager" not in r.stdout + r.stderr and "matplotlib" not in r.stderr, r.stderr
