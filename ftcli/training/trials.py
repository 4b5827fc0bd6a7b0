"""Sweep trials: a status.json per trial, written when it starts and ends; a completed trial with the same
overrides and config is skipped on a re-run, a failed one recorded (never raised) so the sweep goes on.
Light: the leaderboard reads the status files."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ftcli.runtime.files import write_json

STATUS_FILE = "status.json"


def config_hash(cfg: Any) -> str:
    """What the trial trains, resolved: an edited YAML between two runs re-runs the trial, not skips it."""
    from omegaconf import OmegaConf

    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)
    for where in ("output_dir", "cache_dir"):  # where results go, not what they are
        resolved.pop(where, None)
    return hashlib.sha256(json.dumps(resolved, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_status(job_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(job_dir) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None


def write_status(job_dir: Path, status: dict[str, Any]) -> None:
    write_json(Path(job_dir) / STATUS_FILE, status)


def run_trial(
    job_dir: Path,
    overrides: list[str],
    metric: str,
    train: Callable[[], dict[str, float]],
    config: str | None = None,
) -> Any:
    """Run one sweep trial with bookkeeping; return its metric, or None when it failed.

    A trial counts as done when its status.json says completed for the same overrides and the same
    ``config`` hash (see :func:`config_hash`).

    None is what sweepers accept for a failed trial: the basic sweeper ignores return values and
    Optuna marks a non-numeric return as a failed trial (with ``max_failure_rate`` letting it go on).
    """
    from ftcli.reporting.progress import console

    overrides = sorted(overrides)
    done = read_status(job_dir)
    same = done is not None and done.get("overrides") == overrides and done.get("config") == config
    if done and done.get("status") == "completed" and same:
        console.print(f"[dim]skip {job_dir.name or job_dir}: completed earlier, {metric} {done.get('value')}[/]")
        return done.get("value")
    if done and done.get("status") == "completed" and not same:
        console.print(f"[yellow]{job_dir.name or job_dir}: completed with another config; training again[/]")
    base = {
        "overrides": overrides,
        "config": config,
        "metric": metric,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    for stale in ("metrics.json",):  # a re-run trial must not show the numbers of an earlier attempt
        (job_dir / stale).unlink(missing_ok=True)
    write_status(job_dir, {**base, "status": "running"})
    t0 = time.perf_counter()
    try:
        metrics = train()
    except KeyboardInterrupt:  # Ctrl-C outside the training steps: not done, and the sweep stops
        write_status(job_dir, {**base, "status": "interrupted", "seconds": time.perf_counter() - t0})
        raise
    except Exception as e:  # bad hyperparameters, NaN loss, OOM, a bug: this trial fails, the sweep goes on
        _free_accelerator_memory()
        message = " ".join(str(e).split())[:500] or type(e).__name__  # some errors list every option
        write_status(
            job_dir,
            {
                **base,
                "status": "failed",
                "error": f"{type(e).__name__}: {message}",
                "traceback": traceback.format_exc(limit=-8),
                "seconds": time.perf_counter() - t0,
            },
        )
        console.print(f"[red]trial failed[/] ({' '.join(overrides)}): {message}")
        return None
    signum = int(metrics.get("interrupted_by_signal", 0))
    if signum:  # stopped by SIGTERM/SIGINT: not done (the same sweep runs it again), and the sweep stops
        write_status(job_dir, {**base, "status": "interrupted", "seconds": time.perf_counter() - t0})
        raise SystemExit(128 + signum)
    value = metrics.get(metric)
    write_status(
        job_dir,
        {
            **base,
            "status": "completed",
            "value": value,
            "metrics": metrics,
            "seconds": time.perf_counter() - t0,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )
    return value


def _free_accelerator_memory() -> None:
    """After an OOM the next trial needs the memory back (only when torch is already loaded)."""
    import gc
    import sys

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
