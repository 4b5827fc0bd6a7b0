"""An image (or audio) folder: one sub-folder per class, optionally inside train/ validation/ test/."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from ftcli.config.errors import FtcliError

# What an image file is, by extension; anything else in an image folder is ignored (and counted).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".jfif")


VALIDATION_DIRS = ("validation", "val", "valid", "dev")  # how people name an image folder's validation split


@dataclass
class Folder:
    """An image folder's splits as (paths, class names), and what was left out."""

    splits: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)  # files that are not images (README, .DS_Store …)


def _class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_in(folder: Path, ignored: list[str], suffixes: tuple[str, ...]) -> list[str]:
    found = []
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or any(part.startswith(".") for part in p.relative_to(folder).parts):
            continue
        if p.suffix.lower() in suffixes:
            found.append(str(p.resolve()))
        else:
            ignored.append(str(p))
    return found


def scan_folder(data_dir: str, suffixes: tuple[str, ...] = IMAGE_EXTENSIONS, what: str = "image") -> Folder:
    """``<data_dir>/<class>/<image>`` (one split), or ``train/``, ``validation/`` (``val``, ``valid``, ``dev``)
    and ``test/`` inside it, each holding class folders. Every class folder must hold an image, and a
    validation or test class must exist in train: both are said in one line naming the folder. ``suffixes``
    and ``what``: another kind of file (an audio folder's clips)."""
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise FtcliError(f"dataset.data_dir={data_dir}: no such folder")
    names = {p.name.lower(): p for p in _class_folders(root)}
    layout = {"train": names.get("train")}
    if layout["train"] is not None and _class_folders(layout["train"]):  # train/<class>/…, not a class named train
        layout["validation"] = next((names[n] for n in VALIDATION_DIRS if n in names), None)
        layout["test"] = names.get("test")
    else:
        layout = {"train": root}
    out = Folder()
    for split, folder in layout.items():
        if folder is None:
            continue
        loose = [p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes]
        if loose:
            raise FtcliError(
                f"dataset.data_dir={data_dir}: {folder / loose[0]} is not inside a class folder; "
                f"{what}s go in {folder}/<class>/"
            )
        classes = _class_folders(folder)
        if not classes:
            raise FtcliError(
                f"dataset.data_dir={data_dir}: {folder} has no class folders (expected {folder}/<class>/<{what}>)"
            )
        paths, labels = [], []
        for c in classes:
            found = _images_in(c, out.ignored, suffixes)
            if not found:
                raise FtcliError(f"dataset.data_dir={data_dir}: class folder {c} has no {what}s; add some or remove it")
            paths += found
            labels += [unicodedata.normalize("NFC", c.name)] * len(found)  # é typed or é composed: one class
        out.splits[split], out.where[split] = (paths, labels), str(folder)
    train_classes = set(out.splits["train"][1])
    for split in ("validation", "test"):
        extra = sorted(set(out.splits.get(split, ([], []))[1]) - train_classes)
        if extra:
            raise FtcliError(
                f"dataset.data_dir={data_dir}: {out.where[split]}/{extra[0]} is a class that "
                f"{out.where['train']} does not have; add training {what}s for it or remove the folder"
            )
    return out
