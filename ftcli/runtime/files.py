"""Folders that appear whole or not at all, and say when they were changed after.

A folder is built in a hidden temporary folder beside its destination, every file is fsynced, a
``manifest.json`` records each file's size and sha256, and only then is it renamed into place. A
crash, ``kill -9`` or a full disk during a save therefore leaves the previous folder whole; a reader
checks the manifest, so a truncated or altered file is named instead of half-loaded. Pickle files,
which can run code when loaded, are refused here too. Checkpoints and caches build on this module.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ftcli.config.errors import FtcliError

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


def with_file(folder: Path, name: str, text: str) -> None:
    """Rewrite checkpoint ``folder`` whole, atomically, with file ``name`` holding ``text`` (added or replaced): its
    other files are hard-linked (no weights copied, and a linked last/ keeps its own), the manifest is new."""
    folder = Path(folder)
    with atomic_folder(folder) as tmp:
        for f in _files(folder):
            if f.relative_to(folder).as_posix() != name:
                target = tmp / f.relative_to(folder)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(f, target)
        (tmp / name).write_text(text)


def io_failure(e: BaseException) -> str | None:
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


def write_json(path: Path, data: Any) -> None:
    """A JSON file replaced atomically: a reader (the leaderboard, a waiting launcher) never sees half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)
