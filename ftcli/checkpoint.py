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

from ftcli.config import FtcliError

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
def atomic_folder(folder: Path) -> Iterator[Path]:
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

    folder = Path(folder)
    try:
        with atomic_folder(folder) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            if run_cfg is not None:
                (tmp / RUN_CONFIG).write_text(OmegaConf.to_yaml(run_cfg, resolve=True))
            (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
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


def load_checkpoint(
    folder: Path, trust_remote_code: bool = False, allow_pickle: bool = False
) -> tuple[Any, Any, Any]:
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
        raise FtcliError(
            f"checkpoint={folder}: no tokenizer files (tokenizer.json, vocab.txt, ...); incomplete"
        )
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


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (libraries' messages run to paragraphs)."""
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__
