"""Save and load checkpoints: plain transformers folders, written atomically."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ftcli.config import FtcliError

RUN_CONFIG = "ftcli.yaml"  # the resolved training config, inside every checkpoint


def save_checkpoint(model: Any, tokenizer: Any, folder: Path, run_cfg: Any, metrics: dict[str, Any]) -> None:
    """Write a checkpoint folder that ``AutoModelForSequenceClassification.from_pretrained`` loads.

    The folder is built beside its destination and renamed into place, so a crash mid-save leaves
    the previous checkpoint whole.
    """
    from omegaconf import OmegaConf

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    if run_cfg is not None:
        (tmp / RUN_CONFIG).write_text(OmegaConf.to_yaml(run_cfg, resolve=True))
    (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
    old = folder.with_name(f".{folder.name}.old{os.getpid()}")
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(folder: Path, trust_remote_code: bool = False) -> tuple[Any, Any, Any]:
    """(model, tokenizer, the run's resolved config or None) from a checkpoint folder."""
    from omegaconf import OmegaConf
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ftcli.models import register_pooled_classifier

    register_pooled_classifier()  # ftcli's own head loads without trust_remote_code
    folder = Path(folder)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FtcliError(f"checkpoint={folder}: cannot load ({first})") from e
    run_cfg = OmegaConf.load(folder / RUN_CONFIG) if (folder / RUN_CONFIG).is_file() else None
    return model, tokenizer, run_cfg


# ----------------------------------------------------------------------------------------------
# resumable training state: state/step_XXXXXXXX folders written with Accelerate's save_state

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
    from omegaconf import OmegaConf

    from ftcli.config import TrainConfig

    if not cfg.get("resume"):
        return cfg
    run = find_run(cfg.resume)
    saved = OmegaConf.load(run / "config.yaml")
    own = OmegaConf.merge(OmegaConf.structured(TrainConfig), saved)
    own.output_dir, own.resume = str(run), str(run)
    for key in PLACEMENT:  # where this process runs (a requeued job may land on other nodes), not what trains
        own.hardware[key] = cfg.hardware[key]
    return own


def save_state(accelerator: Any, run_dir: Path, step: int, trainer_state: dict[str, Any], keep: int) -> Path:
    """Every process writes its share of the state (model, optimizer, registered objects, RNG)
    into a temporary folder; the main process adds ``trainer_state.json`` and renames it into place,
    then deletes all but the newest ``keep`` states. Call it on every process.
    """
    root = Path(run_dir) / STATE_DIR
    folder, tmp = root / f"step_{step:08d}", root / f".step_{step:08d}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / TRAINER_STATE).write_text(json.dumps({"step": step, **trainer_state}, indent=2))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
        for old in state_folders(run_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return folder


def load_state(accelerator: Any, run_dir: Path) -> dict[str, Any]:
    """Restore the newest complete state of ``run_dir`` into the prepared objects; its trainer state."""
    folder = state_folders(run_dir)[-1]
    accelerator.load_state(str(folder))
    return json.loads((folder / TRAINER_STATE).read_text())


def trim_log(path: Path, step: int) -> None:
    """Drop metrics.jsonl records after ``step``: they are replayed by the resumed run."""
    if path.is_file():
        lines = [line for line in path.read_text().splitlines() if line]
        keep = [line for line in lines if json.loads(line).get("step", 0) <= step]
        path.write_text("".join(line + "\n" for line in keep))


class StopSignals:
    """SIGTERM/SIGINT ask the loop to stop at the next optimizer step (to save a resumable state)
    instead of killing it mid-write. A third signal kills as usual.
    """

    def __init__(self) -> None:
        self.signum, self.count = 0, 0
        self._previous: dict[int, Any] = {}

    def install(self) -> StopSignals:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():  # Python handles signals there only
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        import signal

        self.count += 1
        if self.count >= 3:  # asked three times: stop now (a launcher may pass a terminal's Ctrl-C on: twice)
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            os.kill(os.getpid(), signum)
        self.signum = self.signum or signum

    def restore(self) -> None:
        import signal

        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def requested(self, accelerator: Any) -> int:
        """The signal any process received (0: none). Every process must call this at the same step."""
        if accelerator.num_processes == 1:
            return self.signum
        import torch

        flag = torch.tensor([self.signum], device=accelerator.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)  # one process got it: all stop
        return int(flag.item())
