"""kill -9 at random points: checkpoints stay whole, and `resume` reaches the uninterrupted run's weights.

Slow (several real training processes). The resume test needs `resume=<run dir>` and
`trainer.save_every_steps` (issue 5) and is skipped until those config keys exist.
`FTCLI_KILL_SEED` picks the kill points; `-s` prints each attempt.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import pytest
import torch
from helpers.runs import FP32, ROOT

from ftcli.config.schemas import TrainConfig, TrainerConfig
from ftcli.runtime.files import verify_manifest
from ftcli.training.checkpoint import load_checkpoint
from ftcli.training.state import state_folders

pytestmark = pytest.mark.slow

RUN = [
    "model=tiny",
    "hardware=cpu",
    "strategy=full",
    "dataset.max_train_samples=512",
    "dataset.max_eval_samples=64",
    "trainer.batch_size=16",
    "trainer.max_steps=30",
    FP32,
]
SEED = int(os.environ.get("FTCLI_KILL_SEED", "0"))


def _has_resume() -> bool:
    return "resume" in {f.name for f in fields(TrainConfig)} and "save_every_steps" in {
        f.name for f in fields(TrainerConfig)
    }


def _start(args: list[str], cache_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "FTCLI_CACHE_DIR": str(cache_dir)}
    return subprocess.Popen(
        [sys.executable, "-m", "ftcli.cli", "train", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _timed_run(args: list[str], cache_dir: Path) -> float:
    t0 = time.perf_counter()
    p = _start(args, cache_dir)
    out, _ = p.communicate(timeout=900)
    assert p.returncode == 0, out[-3000:]
    return time.perf_counter() - t0


def _kill_after(p: subprocess.Popen, delay: float) -> bool:
    """SIGKILL ``p`` after ``delay`` seconds; False when it had already finished."""
    try:
        p.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        return True


def _kill_once_saved(p: subprocess.Popen, run: Path, extra: float) -> bool:
    """SIGKILL ``p`` ``extra`` seconds after its run dir holds a complete state; False if it finished first."""
    while not state_folders(run):
        if p.poll() is not None:
            return False
        time.sleep(0.05)
    return _kill_after(p, extra)


def _checkpoints(run: Path) -> list[Path]:
    return sorted(p for p in (run / "checkpoints").glob("*") if p.is_dir() and not p.name.startswith("."))


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_kill_9_during_training_leaves_only_whole_checkpoints(tmp_path: Path, cache_dir: Path) -> None:
    """Evaluate (and save a new best) every step, kill at random moments: what is on disk always loads."""
    args = [*RUN, "trainer.eval_every_steps=1", "trainer.metric=loss", f"hydra.run.dir={tmp_path / 'run'}"]
    full = _timed_run([*args[:-1], f"hydra.run.dir={tmp_path / 'ref'}"], cache_dir)
    rng = random.Random(SEED)
    killed_with_checkpoints = 0
    for attempt in range(5):
        delay = rng.uniform(0.3, 1.0) * full
        killed = _kill_after(_start(args, cache_dir), delay)
        found = _checkpoints(tmp_path / "run")
        for folder in found:
            assert verify_manifest(folder), folder  # whole, with a manifest that matches
            load_checkpoint(folder)
        killed_with_checkpoints += killed and bool(found)
        debris = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob(".*"))  # a save cut short
        print(
            f"attempt {attempt}: kill at {delay:.1f}s of {full:.1f}s, killed={killed}, "
            f"whole checkpoints: {[p.name for p in found]}, half-written copies: {debris}"
        )
    assert killed_with_checkpoints >= 1  # at least one kill landed while checkpoints were being written


@pytest.mark.skipif(not _has_resume(), reason="needs resume=<run dir> and trainer.save_every_steps (issue 5)")
def test_kill_9_then_resume_reaches_the_uninterrupted_weights(tmp_path: Path, cache_dir: Path) -> None:
    # long enough after start-up (~240 tiny steps take a few seconds) that kills land mid-training
    args = [*RUN, "trainer.max_steps=240", "trainer.save_every_steps=20", "trainer.eval_every_steps=80"]
    ref, run = tmp_path / "ref", tmp_path / "killed"
    full = _timed_run([*args, f"hydra.run.dir={ref}"], cache_dir)
    rng = random.Random(SEED)
    kills, attempts, resumed = 0, 0, 0
    while not (run / "metrics.json").is_file():
        attempts += 1
        assert attempts <= 20, "the run never finished"
        resumable = bool(state_folders(run))  # a complete state/step_N: resume, else start afresh
        resumed += resumable
        cmd = [f"resume={run}", f"hydra.run.dir={run}"] if resumable else [*args, f"hydra.run.dir={run}"]
        p = _start(cmd, cache_dir)
        delay = rng.uniform(0.2, 0.9) * full
        # a fresh start is killed once it has saved a state (the next start resumes), a resumed one anywhere
        if kills < 4 and (_kill_after(p, delay) if resumable else _kill_once_saved(p, run, rng.uniform(0.0, 1.5))):
            kills += 1
            print(f"start {attempts} ({'resume' if resumable else 'fresh'}): kill -9 after {delay:.1f}s")
            continue
        out, _ = p.communicate(timeout=900)
        assert p.returncode == 0, out[-3000:]
    assert kills >= 1
    assert resumed >= 1, "no start found a saved state: nothing was resumed"
    a, b = _weights(ref / "checkpoints" / "last"), _weights(run / "checkpoints" / "last")
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    print(f"{kills} kills, {attempts} starts; tensors compared: {len(a)}, different: {len(different)}")
    assert not different, different[:5]
