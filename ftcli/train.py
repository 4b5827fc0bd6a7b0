"""``ftcli train``: one run (or one sweep trial), in this process or on the workers its hardware needs.

:func:`train` is the whole fine-tuning run, top to bottom, in named phases (``training/phases.py``); what the
data, model, loss and metrics *are* is the task's (``ftcli/tasks``), what trains is the strategy's. A
multi-process ``hardware`` option resolves the config once, writes ``<run>/launch.yaml`` and starts
``python -m ftcli.train <that file>`` per process (:func:`main`).
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ftcli.config.errors import FtcliError
from ftcli.config.registry import register_configs, typed_train_config
from ftcli.reporting.progress import quiet_libraries
from ftcli.runtime.accelerator import leave_process_group
from ftcli.runtime.files import write_json
from ftcli.runtime.launch import STATUS, launch, needs_launch
from ftcli.training.checkpoint import Keeper
from ftcli.training.loop import Loop
from ftcli.training.phases import build, finish, load_data, make_batches, make_optimisation, restore, start
from ftcli.training.state import resume_config


def train(cfg: DictConfig) -> dict[str, float]:
    """Fine-tune ``cfg.model`` on ``cfg.dataset`` for ``cfg.task`` with ``cfg.strategy``; return the best
    validation metrics (or, for trainer.dry_run, the trainable parameter counts)."""
    run = start(cfg)
    data, encoded, processor = load_data(run)
    built = build(run, data, processor, encoded["validation"])
    if run.cfg.trainer.dry_run:
        return dict(built.summary)
    batches = make_batches(run, built, data, encoded)
    opt = make_optimisation(run, built, batches)
    state = restore(run, opt)
    saves = run.cfg.trainer.save_checkpoints  # every process: a sharded model is gathered by all of them
    keeper = Keeper(
        run.cfg, run.out_dir, opt.weights, processor, built.strategy, batches.head, saves, built.summary, run.main
    )
    outcome = Loop(run, built, batches, opt, keeper, state).fit()
    return finish(run, built, keeper, outcome)


def run_training(cfg: Any) -> tuple[dict[str, Any], Any]:
    """``ftcli train`` for one job (a run or a sweep trial): the run's own config when it resumes, the
    workers its hardware needs, or training in this process. Returns (metrics, the config it ran)."""
    cfg = resume_config(cfg)  # a resumed run keeps its own hardware, batch and everything else
    metrics = launch(cfg, __name__, __file__) if needs_launch(cfg.hardware) else train(cfg)
    leave_process_group()  # under accelerate launch / torchrun
    return metrics, cfg


def worker(config_file: str) -> None:
    """One worker: read the resolved config, train, report how it ended (main process only)."""
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # kill -USR1 <pid>: where a stuck worker is
    register_configs()
    quiet_libraries()
    cfg = typed_train_config(OmegaConf.load(config_file))
    assert isinstance(cfg, DictConfig)
    main = int(os.environ.get("RANK", "0")) == 0
    try:
        result = train(cfg)
    except FtcliError as e:
        if main:
            write_json(Path(cfg.output_dir) / STATUS, {"status": "error", "message": str(e)})
        print(f"ftcli: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        leave_process_group()
    if main:
        interrupted = result.get("interrupted_by_signal")
        status = {"status": "interrupted", **result} if interrupted else {"status": "done", "result": result}
        write_json(Path(cfg.output_dir) / STATUS, status)


def main() -> None:
    """``python -m ftcli.train <run>/launch.yaml`` (and the function the XLA launcher spawns)."""
    worker(sys.argv[1])


if __name__ == "__main__":
    main()
