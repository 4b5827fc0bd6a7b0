"""Sweep bookkeeping: a sweep dir derived from the command, a status.json per trial, resume by skipping.

A Hydra multirun is the engine (any sweeper, any launcher); this module makes it survive and resume:

* ``ftcli train -m ...`` sweeps into ``multirun/<command>[_<hparams_search>]_<hash of the overrides>``, so
  the same command finds the same sweep again (an explicit ``hydra.sweep.dir=`` wins).
* Each trial's dir is named by the overrides it varies (``hydra.job.override_dirname``, with the
  overrides every trial shares left out), so a trial lands in the same dir on every re-run.
* :func:`run_trial` writes ``status.json`` when a trial starts (running) and ends (completed / failed).
  A completed trial with the same overrides returns its stored metric without training; a failed or
  interrupted one runs again. A failure is recorded, never raised: the sweep goes on.

Light module: the CLI imports it before any job runs (no torch here).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ftcli.files import write_json

STATUS_FILE = "status.json"
MULTIRUN_FLAGS = {"-m", "--multirun"}


def is_multirun(args: list[str]) -> bool:
    return bool(MULTIRUN_FLAGS & set(args))


def sweep_dir(command: str, overrides: list[str]) -> str:
    """``multirun/<command>[_<hparams_search>]_<hash>``: the same overrides give the same dir.

    Launcher settings (``hydra/...``, ``hydra.*``) are not part of a sweep's identity: a sweep started
    sequentially can be resumed in parallel or on SLURM.
    """
    key = sorted(o for o in overrides if not o.lstrip("+~").startswith(("hydra.", "hydra/")))
    digest = hashlib.sha256(json.dumps([command, key]).encode()).hexdigest()[:8]
    search = [o.split("=", 1)[1] for o in key if o.lstrip("+").startswith("hparams_search=")]
    name = "_".join([command, *[re.sub(r"[^\w.-]", "_", s) for s in search], digest])
    return f"multirun/{name}"


def shared_keys(overrides: list[str]) -> list[str]:
    """Keys of the command-line overrides that are not swept: the same in every trial."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    return sorted({o.key_or_group for o in parsed if not o.is_sweep_override()})


def multirun_args(command: str, args: list[str], overrides: list[str]) -> list[str]:
    """Hydra overrides ftcli adds to a multirun: the resumable sweep dir and short trial dir names."""
    extra = []
    if not any(a.startswith("hydra.sweep.dir=") for a in args):
        extra.append(f"hydra.sweep.dir={sweep_dir(command, overrides)}")
    keys = shared_keys(overrides)
    if keys and not any(a.startswith("hydra.job.config.override_dirname.exclude_keys=") for a in args):
        extra.append("hydra.job.config.override_dirname.exclude_keys=[" + ",".join(f"'{k}'" for k in keys) + "]")
    return extra


def multirun_job() -> bool:
    """Whether Hydra is running this job as one trial of a multirun."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def run_sweep_job(cfg: Any) -> Any:
    """``ftcli train`` as one trial of a sweep: skipped when done, recorded either way."""
    from hydra.core.hydra_config import HydraConfig

    def train() -> dict[str, float]:
        from ftcli.launch import run_training  # imported only when the trial really runs: skipping stays instant
        from ftcli.progress import quiet_libraries

        quiet_libraries()
        return run_training(cfg)[0]

    from ftcli.config import train_metric

    overrides = list(HydraConfig.get().overrides.task)
    return run_trial(Path(cfg.output_dir), overrides, train_metric(cfg), train, config_hash(cfg))


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
    from ftcli.progress import console

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
