"""Save and load checkpoints: plain transformers folders, written atomically and verified on load.

A checkpoint is built in a hidden folder beside its destination, every file is fsynced, a
``manifest.json`` records each file's size and sha256, and only then is the folder renamed into
place. A crash, ``kill -9`` or a full disk during a save therefore leaves the previous checkpoint
whole; loading checks the manifest, so a truncated or altered file is named instead of half-loaded.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ftcli.config import FtcliError, first_line

RUN_CONFIG = "ftcli.yaml"  # the resolved training config, inside every checkpoint
MANIFEST = "manifest.json"  # {"files": {relative path: {"bytes": n, "sha256": hex}}}
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")  # torch.save/pickle formats: code can run on load


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def _fsync(path: Path) -> None:
    """Flush a file or a directory entry to disk (directories: so a rename survives a power cut)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_manifest(folder: Path) -> dict[str, Any]:
    """Record size and sha256 of every file under ``folder`` (fsyncing each) in ``manifest.json``."""
    files = {}
    for p in _files(folder):
        _fsync(p)
        files[p.relative_to(folder).as_posix()] = {"bytes": p.stat().st_size, "sha256": sha256_of(p)}
    manifest = {"format": 1, "files": files}
    with open(folder / MANIFEST, "w") as f:
        json.dump(manifest, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    return manifest


def verify_manifest(folder: Path, label: str = "checkpoint") -> bool:
    """Check every file against ``manifest.json``; False when the folder has none (not written by ftcli).

    Raises FtcliError naming the first missing, truncated or altered file.
    """
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        return False
    try:
        files = json.loads(path.read_text())["files"]
    except (ValueError, KeyError, TypeError) as e:
        raise FtcliError(f"{label}={folder}: {MANIFEST} is unreadable; the checkpoint is damaged") from e
    for name, want in files.items():
        p = folder / name
        if not p.is_file():
            raise FtcliError(f"{label}={folder}: {name} is missing (listed in {MANIFEST}); use another")
        size = p.stat().st_size
        if size != want["bytes"]:
            raise FtcliError(
                f"{label}={folder}: {name} is truncated or changed ({size} bytes, {want['bytes']} saved); "
                "use another checkpoint (e.g. checkpoints/last) or train again"
            )
        if sha256_of(p) != want["sha256"]:
            raise FtcliError(
                f"{label}={folder}: {name} does not match its sha256 in {MANIFEST} (changed after saving); "
                "use another checkpoint or train again"
            )
    return True


def recover(folder: Path) -> None:
    """Finish a swap that a crash interrupted: the folder is gone but its previous copy is beside it."""
    folder = Path(folder)
    if folder.exists() or not folder.parent.is_dir():
        return
    for old in sorted(folder.parent.glob(f".{folder.name}.old*")):
        if (old / MANIFEST).is_file():
            os.replace(old, folder)
            return


@contextlib.contextmanager
def atomic_folder(folder: Path, manifest: bool = True) -> Iterator[Path]:
    """Yield a hidden temporary folder to fill; on success it gets a manifest and replaces ``folder``.

    On any error the temporary folder is removed (a full disk gets its space back) and ``folder``
    is left as it was. Use it for anything that must appear whole or not at all.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    recover(folder)
    for debris in folder.parent.glob(f".{folder.name}.tmp*"):  # left by a crashed save
        shutil.rmtree(debris, ignore_errors=True)
    tmp = folder.with_name(f".{folder.name}.tmp{os.getpid()}")
    tmp.mkdir()
    try:
        yield tmp
        if manifest:
            write_manifest(tmp)
        _fsync(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # Two renames: the window between them is covered by recover() on the next save or load.
    old = folder.with_name(f".{folder.name}.old{os.getpid()}")
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    _fsync(folder.parent)
    shutil.rmtree(old, ignore_errors=True)


def link_checkpoint(src: Path, dst: Path) -> None:
    """Make ``dst`` a second name for checkpoint ``src``'s files (hard links: no bytes written), atomically.

    Used when the last evaluation was also the best: the two checkpoints hold the same weights.
    """
    src = Path(src)
    with atomic_folder(dst, manifest=False) as tmp:  # src's manifest describes the linked files exactly
        for f in [*_files(src), src / MANIFEST]:
            target = tmp / f.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(f, target)


def save_checkpoint(
    model: Any,
    tokenizer: Any,
    folder: Path,
    run_cfg: Any,
    metrics: dict[str, Any],
    extra: Callable[[Path], None] | None = None,
) -> None:
    """Write a checkpoint folder that ``AutoModelForSequenceClassification.from_pretrained`` loads.

    ``extra(tmp)`` may add files (e.g. training state) before the manifest is written. A failed
    save (full disk, permissions) raises FtcliError and leaves the previous checkpoint intact.
    """
    from omegaconf import OmegaConf

    from ftcli.card import write_card

    folder = Path(folder)
    try:
        with atomic_folder(folder) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            if run_cfg is not None:
                (tmp / RUN_CONFIG).write_text(OmegaConf.to_yaml(run_cfg, resolve=True))
                _record_max_length(tmp, OmegaConf.select(run_cfg, "model.max_length"))
            (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
            write_card(tmp, run_cfg, metrics, model)  # README.md: the Hub model card, in the manifest too
            if extra is not None:
                extra(tmp)
    except Exception as e:
        why = _io_failure(e)
        if why is None:
            raise
        raise FtcliError(
            f"cannot save checkpoint {folder} ({why}); the previous checkpoint there is intact. "
            "Free space or choose another hydra.run.dir"
        ) from e


def _record_max_length(folder: Path, max_length: int | None) -> None:
    """Store the length ftcli truncated to as the tokenizer's ``model_max_length``, so plain transformers
    (``tokenizer(..., truncation=True)``, ``pipeline(..., truncation=True)``) cuts inputs where ftcli did."""
    path = folder / "tokenizer_config.json"
    if not max_length or not path.is_file():
        return
    config = json.loads(path.read_text())
    config["model_max_length"] = int(max_length)
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def _io_failure(e: BaseException) -> str | None:
    """Why a write failed, when it did (safetensors reports the OS error in its own exception type)."""
    full = (errno.ENOSPC, errno.EDQUOT)
    if isinstance(e, OSError):
        return "the disk is full" if e.errno in full else (e.strerror or str(e))
    text = str(e)
    if type(e).__name__ == "SafetensorError" and "I/O error" in text:
        if any(f"os error {n})" in text for n in full):
            return "the disk is full"
        return text.split("I/O error: ", 1)[-1]
    return None


def refuse_pickle(folder: Path, label: str, opt_in: str) -> None:
    """A folder whose only weights are pickle files: refuse (unpickling can run arbitrary code)."""
    if any(folder.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise FtcliError(
            f"{label}={folder}: weights are only in pickle format ({', '.join(pickles)}), which can run code "
            f"when loaded; convert them to safetensors, or set {opt_in}=true if you trust their source"
        )


def load_checkpoint(folder: Path, trust_remote_code: bool = False, allow_pickle: bool = False) -> tuple[Any, Any, Any]:
    """(model, tokenizer, the run's resolved config or None) from a checkpoint folder.

    The manifest is verified first; weights load from safetensors only unless ``allow_pickle``.
    """
    from omegaconf import OmegaConf
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ftcli.models import has_tokenizer_files, register_pooled_classifier

    register_pooled_classifier()  # ftcli's own head loads without trust_remote_code
    folder = Path(folder)
    recover(folder)
    if not folder.is_dir():
        raise FtcliError(f"checkpoint={folder}: no such folder")
    verify_manifest(folder)
    if not allow_pickle:
        refuse_pickle(folder, "checkpoint", "eval.allow_pickle")
    if not has_tokenizer_files(folder):
        raise FtcliError(f"checkpoint={folder}: no tokenizer files (tokenizer.json, vocab.txt, ...); incomplete")
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            folder, trust_remote_code=trust_remote_code, use_safetensors=None if allow_pickle else True
        )
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except Exception as e:  # transformers/safetensors raise many types for a damaged folder
        raise FtcliError(
            f"checkpoint={folder}: cannot load ({first_line(e)}); a file may be truncated, use another"
        ) from e
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

    from ftcli.config import typed_train_config

    if not cfg.get("resume"):
        return cfg
    run = find_run(cfg.resume)
    own = typed_train_config(OmegaConf.load(run / "config.yaml"))
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
