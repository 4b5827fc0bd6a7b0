"""A multirun's command line: a sweep dir derived from the command (the same command finds the same sweep) and
short trial dir names. Light: the CLI imports it before any job runs."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

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
        from ftcli.reporting.progress import quiet_libraries
        from ftcli.train import run_training  # imported only when the trial really runs: skipping stays instant

        quiet_libraries()
        return run_training(cfg)[0]

    from ftcli.config.registry import train_metric
    from ftcli.training.trials import config_hash, run_trial

    overrides = list(HydraConfig.get().overrides.task)
    return run_trial(Path(cfg.output_dir), overrides, train_metric(cfg), train, config_hash(cfg))
