"""Resumable state: ``state/step_N`` folders written with Accelerate's ``save_state`` plus a :class:`ResumeState`
(the data position and the best so far), and the run a ``resume=`` names."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from ftcli.config.errors import FtcliError
from ftcli.config.registry import typed_train_config
from ftcli.runtime.sharding import loading_state

STATE_DIR = "state"  # inside the run dir


TRAINER_STATE = "trainer_state.json"  # written last: a state folder without it is incomplete


PLACEMENT = ("machine_rank", "main_process_ip", "main_process_port")  # taken from the resuming command


def state_folders(run_dir: Path) -> list[Path]:
    """Complete resumable states of a run, oldest first."""
    root = Path(run_dir) / STATE_DIR
    found = [p for p in root.glob("step_*") if (p / TRAINER_STATE).is_file()] if root.is_dir() else []
    return sorted(found, key=lambda p: int(p.name.split("_")[1]))


def find_run(resume: str, roots: tuple[str, ...] = ("outputs", "multirun")) -> Path:
    """The run dir that ``resume=`` names: a path, or ``latest`` (newest saved state under ``roots``)."""
    if resume != "latest":
        run = Path(resume).expanduser()
        if run.name.startswith("step_") and run.parent.name == STATE_DIR:  # a state folder: its run
            run = run.parent.parent
        if not (run / "config.yaml").is_file():
            raise FtcliError(f"resume={resume}: not a run dir (no config.yaml)")
        if not state_folders(run):
            raise FtcliError(
                f"resume={resume}: the run saved no resumable state (train with trainer.save_every_steps=N)"
            )
        return run.resolve()
    newest: tuple[float, Path] | None = None
    for root in roots:
        for state in Path(root).glob(f"**/{STATE_DIR}/step_*/{TRAINER_STATE}"):
            mtime = state.stat().st_mtime
            if newest is None or mtime > newest[0]:
                newest = (mtime, state.parents[2])
    if newest is None:
        raise FtcliError(f"resume=latest: no run with a saved state under {', '.join(roots)}/")
    return newest[1].resolve()


def resume_config(cfg: Any) -> Any:
    """The run's own resolved config, pointed at its run dir, when ``cfg.resume`` is set; else ``cfg``."""

    if not cfg.get("resume"):
        return cfg
    run = find_run(cfg.resume)
    own = typed_train_config(OmegaConf.load(run / "config.yaml"))
    own.output_dir, own.resume = str(run), str(run)
    for key in PLACEMENT:  # where this process runs (a requeued job may land on other nodes), not what trains
        own.hardware[key] = cfg.hardware[key]
    return own


@dataclass
class ResumeState:
    """Where a run is, beyond model, optimizer, schedule and RNG: the data position and the best so far."""

    step: int = 0  # optimizer steps taken
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of that epoch already trained on
    best: float | None = None  # the best value of trainer.metric
    best_metrics: dict[str, Any] = field(default_factory=dict)  # the evaluation that set it
    last_metrics: dict[str, Any] = field(default_factory=dict)  # the latest evaluation
    stale: int = 0  # evaluations since the best one (early stopping)


def save_state(accelerator: Any, run_dir: Path, state: ResumeState, keep: int) -> Path:
    """Every process writes its share of the state (model, optimizer, registered objects, RNG)
    into a temporary folder; the main process adds ``trainer_state.json`` and renames it into place,
    then deletes all but the newest ``keep`` states. Call it on every process.
    """
    root = Path(run_dir) / STATE_DIR
    step = state.step
    folder, tmp = root / f"step_{step:08d}", root / f".step_{step:08d}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / TRAINER_STATE).write_text(json.dumps(asdict(state), indent=2))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
        for old in state_folders(run_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return folder


def load_state(accelerator: Any, run_dir: Path) -> ResumeState:
    """Restore the newest complete state of ``run_dir`` into the prepared objects; where the run was."""

    folder = state_folders(run_dir)[-1]
    with loading_state(accelerator, folder):  # sharded: the optimizer state the checkpoint holds, no more, no less
        accelerator.load_state(str(folder))
    return ResumeState(**json.loads((folder / TRAINER_STATE).read_text()))
