"""Image inputs: find, decode, resize once (cached), then batches of tensors, augmented on the fly.

What ``tokens.py`` is for text. An image is decoded and brought to the model's input size by the
model's own image processor exactly once per (images, processor) — :class:`Resizer` splits every
processor into that resize/crop step and the per-channel affine map that follows it (rescale,
normalise) — and kept as uint8 in a memory-mapped file under the cache dir. Training batches are
cut from that file and augmented as whole tensors (random resized crop and flip through one
``grid_sample``); evaluation batches only get the affine map, so they equal the processor's output.
Augmented training batches are cut from a second file instead, which keeps each image whole (aspect
kept, no centre crop): their crops see a photo's sides, as a random resized crop of the file would.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ftcli.config import FtcliError, first_line

# What an image file is, by extension; anything else in an image folder is ignored (and counted).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".jfif")
VALIDATION_DIRS = ("validation", "val", "valid", "dev")  # how people name an image folder's validation split
CHUNK = 64  # images per decode task: enough to batch the processor's resize, small enough to spread over threads


def default_cache_dir() -> Path:
    """Where cached pixels go when no run names a cache dir (ftcli eval, export): the configs' default."""
    return Path(os.environ.get("FTCLI_CACHE_DIR") or Path.home() / ".cache" / "ftcli").expanduser()


# ----------------------------------------------------------------------------------------------
# an image folder: one sub-folder per class, optionally inside train/ validation/ test/


@dataclass
class Folder:
    """An image folder's splits as (paths, class names), and what was left out."""

    splits: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)  # files that are not images (README, .DS_Store …)


def _class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_in(folder: Path, ignored: list[str]) -> list[str]:
    found = []
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or any(part.startswith(".") for part in p.relative_to(folder).parts):
            continue
        if p.suffix.lower() in IMAGE_EXTENSIONS:
            found.append(str(p.resolve()))
        else:
            ignored.append(str(p))
    return found


def scan_folder(data_dir: str) -> Folder:
    """``<data_dir>/<class>/<image>`` (one split), or ``train/``, ``validation/`` (``val``, ``valid``, ``dev``)
    and ``test/`` inside it, each holding class folders. Every class folder must hold an image, and a
    validation or test class must exist in train: both are said in one line naming the folder."""
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise FtcliError(f"dataset.data_dir={data_dir}: no such folder")
    names = {p.name.lower(): p for p in _class_folders(root)}
    layout = {"train": names.get("train")}
    if layout["train"] is not None:
        layout["validation"] = next((names[n] for n in VALIDATION_DIRS if n in names), None)
        layout["test"] = names.get("test")
    else:
        layout = {"train": root}
    out = Folder()
    for split, folder in layout.items():
        if folder is None:
            continue
        loose = [p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
        if loose:
            raise FtcliError(
                f"dataset.data_dir={data_dir}: {folder / loose[0]} is not inside a class folder; "
                f"images go in {folder}/<class>/"
            )
        classes = _class_folders(folder)
        if not classes:
            raise FtcliError(
                f"dataset.data_dir={data_dir}: {folder} has no class folders (expected {folder}/<class>/<image>)"
            )
        paths, labels = [], []
        for c in classes:
            found = _images_in(c, out.ignored)
            if not found:
                raise FtcliError(f"dataset.data_dir={data_dir}: class folder {c} has no images; add some or remove it")
            paths += found
            labels += [c.name] * len(found)
        out.splits[split], out.where[split] = (paths, labels), str(folder)
    train_classes = set(out.splits["train"][1])
    for split in ("validation", "test"):
        extra = sorted(set(out.splits.get(split, ([], []))[1]) - train_classes)
        if extra:
            raise FtcliError(
                f"dataset.data_dir={data_dir}: {out.where[split]}/{extra[0]} is a class that "
                f"{out.where['train']} does not have; add training images for it or remove the folder"
            )
    return out


# ----------------------------------------------------------------------------------------------
# one image: a path (or bytes) → an RGB PIL image, as transformers' load_image does it


def open_image(source: Any) -> Any:
    """A path, ``{"bytes", "path"}`` dict or PIL image → an upright RGB image (EXIF orientation applied;
    grayscale, palette, RGBA (alpha dropped) and CMYK converted as transformers' ``load_image`` does;
    16-bit grayscale scaled to 8 bits, which ``load_image`` clips), fully decoded. Raises what PIL raises."""
    import io

    from PIL import Image, ImageOps

    if isinstance(source, dict):
        data = source.get("bytes")
        source = io.BytesIO(data) if data is not None else source.get("path")
    image = source if isinstance(source, Image.Image) else Image.open(source)
    image.load()  # a truncated or corrupt file fails here, not somewhere in a batch
    image = ImageOps.exif_transpose(image) or image
    if image.mode.startswith("I"):  # 16-bit (or 32-bit int) grayscale: scaled to 8 bits, not clipped at 255
        pixels = np.asarray(image, dtype=np.float64)
        scale = 257.0 if image.mode.startswith("I;16") or pixels.max() <= 65535 else 16843009.0  # → 0…255
        image = Image.fromarray(np.clip(np.round(pixels / scale), 0, 255).astype(np.uint8), mode="L")
    return image.convert("RGB")


def describe(source: Any) -> str:
    """A source as a person finds it: its path, or the path its bytes came from."""
    if isinstance(source, dict):
        return str(source.get("path") or "embedded image")
    return str(source) if isinstance(source, (str, Path)) else "embedded image"


# ----------------------------------------------------------------------------------------------
# the model's image processor, split in two


class Resizer:
    """A transformers image processor as (resize/crop: RGB images → uint8 [n, 3, H, W]) followed by a
    per-channel affine map ``pixel_values = uint8 · scale + shift`` (its rescale and normalise).

    Works for transformers' own processors (their rescale and normalise switched off) and for timm's
    (through the timm wrapper: its eval transforms up to ToTensor). The split is checked once against
    the processor's own output, so a cached image evaluates exactly as plain transformers would."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor
        transforms = getattr(processor, "val_transforms", None)  # timm's processor
        self.prefix: Callable[[Any], Any] | None = None
        if transforms is not None:
            steps = list(transforms.transforms)
            cut = next(i for i, t in enumerate(steps) if "ToTensor" in type(t).__name__)
            from torchvision.transforms import Compose

            self.prefix = Compose(steps[:cut])
        self.scale, self.shift = self._affine()
        self.size = tuple(self.resize([_probe_image()]).shape[-2:])
        self._check()

    def resize(self, images: list[Any]) -> np.ndarray:
        """RGB PIL images → uint8 [n, 3, H, W] at the model's input size (the processor's resize and crop)."""
        if self.prefix is not None:
            return np.stack([np.asarray(self.prefix(im), dtype=np.uint8).transpose(2, 0, 1) for im in images])
        off = {"do_rescale": False, "do_normalize": False}
        if hasattr(self.processor, "include_top"):  # EfficientNet's second normalisation
            off["include_top"] = False
        out = self.processor(images, return_tensors="np", **off)["pixel_values"]
        return np.asarray(out).round().clip(0, 255).astype(np.uint8)

    def canvas_side(self) -> int:
        """The square a whole training image is kept in: its longer side at 1.15 × the input side, and at
        least the processor's own resize before its centre crop (input side / crop_pct), so a square photo
        keeps the detail the exact cache had before its crop. The training cache grows by (side / input)²."""
        config = getattr(self.processor, "data_config", None) or {}  # timm's
        crop = getattr(self.processor, "crop_pct", None) or config.get("crop_pct") or 1.0
        side = max(self.size)
        return max(math.ceil(1.15 * side), math.ceil(side / float(crop)))

    def whole(self, images: list[Any], side: int) -> tuple[np.ndarray, np.ndarray]:
        """RGB PIL images → uint8 [n, 3, side, side], each whole: aspect kept, longer side brought to ``side``
        with the processor's resample filter, at the top left, its last column and row repeated into the rest
        (a crop's bilinear samples at its edge then see no dark seam); and each one's (height, width) there."""
        out = np.empty((len(images), 3, side, side), dtype=np.uint8)
        sizes = np.empty((len(images), 2), dtype=np.int64)
        for i, im in enumerate(images):
            w, h = im.size
            f = side / max(w, h)
            w, h = min(side, max(1, round(w * f))), min(side, max(1, round(h * f)))
            pixels = np.asarray(im.resize((w, h), resample=self._resample()), dtype=np.uint8).transpose(2, 0, 1)
            out[i, :, :h, :w] = pixels
            out[i, :, :h, w:] = pixels[:, :, -1:]
            out[i, :, h:, :] = out[i, :, h - 1 : h, :]
            sizes[i] = h, w
        return out, sizes

    def _resample(self) -> Any:
        """The processor's resample filter, as PIL's (timm names it in its data config)."""
        from PIL import Image

        named = (getattr(self.processor, "data_config", None) or {}).get("interpolation")
        if isinstance(named, str) and named.upper() in Image.Resampling.__members__:
            return Image.Resampling[named.upper()]
        resample = getattr(self.processor, "resample", None)
        return Image.Resampling(int(resample)) if resample is not None else Image.Resampling.BICUBIC

    def full(self, images: list[Any]) -> np.ndarray:
        """The processor's own pixel_values (what plain transformers feeds the model)."""
        out = self.processor(images, return_tensors="pt")["pixel_values"]
        return np.asarray(out.float().numpy() if hasattr(out, "numpy") else out, dtype=np.float32)

    def _affine(self) -> tuple[np.ndarray, np.ndarray]:
        from PIL import Image

        black, white = (self.full([Image.new("RGB", (64, 64), (v, v, v))])[0] for v in (0, 255))
        shift = black.reshape(3, -1).mean(1)
        return ((white.reshape(3, -1).mean(1) - shift) / 255.0).astype(np.float32), shift.astype(np.float32)

    def _check(self) -> None:
        sample = [_probe_image()]
        theirs, ours = self.full(sample), self.normalise_np(self.resize(sample))
        if theirs.shape != ours.shape or np.abs(theirs - ours).max() > 1e-3:
            raise FtcliError(
                f"{type(self.processor).__name__}: does more than resize, crop, rescale and normalise; "
                "ftcli cannot cache its inputs"
            )

    def normalise_np(self, pixels: np.ndarray) -> np.ndarray:
        return pixels.astype(np.float32) * self.scale[:, None, None] + self.shift[:, None, None]

    def fingerprint(self) -> str:
        """What the cached uint8 pixels depend on: the processor's class and settings."""
        proc = self.processor
        settings = getattr(proc, "data_config", None) or proc.to_dict()
        blob = json.dumps([type(proc).__name__, settings, self.size], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _probe_image() -> Any:
    """A fixed, non-square, textured image (a constant one would hide a crop or a flip)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, size=(37, 53, 3), dtype=np.uint8))


# ----------------------------------------------------------------------------------------------
# the cache: every image of a split, decoded and resized once


@dataclass
class Decoded:
    """uint8 pixels of the readable rows and what became of the others."""

    pixels: np.ndarray  # [n, 3, H, W], memory-mapped from the cache
    kept: np.ndarray  # positions (in the split) of the rows in ``pixels``
    skipped: list[str]  # "<where>: <why>" for every row left out (bad_images=skip)
    key: str
    hit: bool
    sizes: np.ndarray | None = None  # whole images (a canvas): each row's (height, width) inside it


def identity_of(sources: list[Any], fingerprint: str | None) -> str:
    """A content key for a split's images: paths with their size and modification time, or (embedded
    images) the dataset's own fingerprint."""
    h = hashlib.sha256()
    if fingerprint is not None:
        h.update(fingerprint.encode())
    for s in sources:
        if isinstance(s, str):
            try:
                st = os.stat(s)
                h.update(f"{s}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            except OSError:
                h.update(f"{s}\0missing\n".encode())
        else:
            h.update(b"embedded\n")
    return h.hexdigest()[:20]


def decode_all(
    sources: list[Any],
    where: Callable[[int], str],
    resizer: Resizer,
    cache: Path,
    content: str,
    skip: bool,
    canvas: int = 0,
) -> Decoded:
    """Every image of a split at the model's input size (``canvas``: whole, in a canvas of that side, see
    :meth:`Resizer.whole`), from the cache or decoded now (on threads) and stored atomically. An unreadable
    or missing image stops the run with one line naming it, or (``skip``) is left out and counted."""
    whole = f"-whole{canvas}" if canvas else ""
    key = hashlib.sha256(f"{content}-{resizer.fingerprint()}{whole}".encode()).hexdigest()[:20]
    npy, meta = cache / "images" / f"{key}.npy", cache / "images" / f"{key}.json"
    if npy.is_file() and meta.is_file():
        try:
            info = json.loads(meta.read_text())
            kept, found = np.asarray(info["kept"], dtype=np.int64), info.get("sizes")
            sizes = np.asarray(found, dtype=np.int64).reshape(-1, 2) if canvas else None
            return Decoded(np.load(npy, mmap_mode="r"), kept, info["skipped"], key, True, sizes)
        except (OSError, ValueError, KeyError, TypeError):  # a damaged entry is rebuilt, not trusted
            npy.unlink(missing_ok=True)
    h, w = (canvas, canvas) if canvas else resizer.size
    npy.parent.mkdir(parents=True, exist_ok=True)
    tmp = npy.with_suffix(f".tmp{os.getpid()}.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(sources), 3, h, w))
    ok = np.ones(len(sources), dtype=bool)
    sizes = np.zeros((len(sources), 2), dtype=np.int64)
    skipped: list[str] = []

    def chunk(start: int) -> None:
        images, rows = [], []
        for i in range(start, min(start + CHUNK, len(sources))):
            try:
                images.append(open_image(sources[i]))
                rows.append(i)
            except FileNotFoundError:
                _bad(skip, ok, skipped, i, f"{where(i)}: no such image file")
            except Exception as e:  # PIL's UnidentifiedImageError, OSError (truncated), DecompressionBombError …
                _bad(skip, ok, skipped, i, f"{where(i)}: not a readable image ({first_line(e)})")
        if images and canvas:
            out[rows], sizes[rows] = resizer.whole(images, canvas)
        elif images:
            out[rows] = resizer.resize(images)

    try:
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            list(pool.map(chunk, range(0, len(sources), CHUNK)))
        out.flush()
        kept = np.flatnonzero(ok)
        meta.write_text(json.dumps({"kept": kept.tolist(), "skipped": skipped, "sizes": sizes.tolist()}))
        os.replace(tmp, npy)  # the .npy appears whole or not at all
    finally:
        tmp.unlink(missing_ok=True)
    return Decoded(np.load(npy, mmap_mode="r"), kept, skipped, key, False, sizes if canvas else None)


def crop_boxes(sizes: np.ndarray, side: int) -> np.ndarray:
    """Where each whole image lies in its canvas (top left), as :func:`augment` reads it: (width share,
    height share, centre x, centre y), in grid units ([-1, 1] across the canvas)."""
    shares = sizes[:, ::-1].astype(np.float32) / np.float32(side)  # (w, h) / side
    return np.concatenate([shares, shares - 1], axis=1).astype(np.float32)


def _bad(skip: bool, ok: np.ndarray, skipped: list[str], i: int, why: str) -> None:
    if not skip:
        raise FtcliError(f"{why}; fix or remove it, or set dataset.bad_images=skip to leave such images out")
    ok[i] = False
    skipped.append(why)


# ----------------------------------------------------------------------------------------------
# batches: uint8 rows → normalised (and, for training, augmented) float tensors


@dataclass
class Augment:
    """Random resized crop (area share ``scale``, aspect ``ratio``) and horizontal flip, per image."""

    scale: tuple[float, float]
    ratio: tuple[float, float]
    hflip: bool


class ImageSet:
    """A split as model inputs: the cached uint8 pixels (row ``kept[i]`` is example i: unreadable images
    skipped), the labels, and the affine map to the model's pixel_values. Indexing by a list of rows gives
    a whole batch (``__getitems__``)."""

    def __init__(
        self, pixels: np.ndarray, kept: np.ndarray, labels: np.ndarray, scale: np.ndarray, shift: np.ndarray, key: str
    ) -> None:
        self.pixels, self.kept, self.labels, self.key = pixels, kept, labels, key
        self.scale, self.shift = scale, shift
        self.size = tuple(pixels.shape[-2:])  # the model's input (H, W)
        self.augment: Augment | None = None
        self.seed = 0
        self.with_idx = False
        self.boxes: np.ndarray | None = None  # whole images: each row's place in its canvas (crop_boxes)
        # the training split: its whole images and their boxes, decoded (or read) when augmented batches are asked for
        self.whole: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def view(self, augment: Augment | None, seed: int, with_idx: bool) -> ImageSet:
        """The same rows for a loader: training (augmented, seeded; cropped from the whole images where
        the split has them) or inference (carrying ``idx``; the processor's exact pixels)."""
        other = ImageSet(self.pixels, self.kept, self.labels, self.scale, self.shift, self.key)
        other.augment, other.seed, other.with_idx = augment, seed, with_idx
        if augment is not None and self.whole is not None:
            other.pixels, other.boxes = self.whole()
        return other

    def __getitems__(self, rows: list[int]) -> dict[str, Any]:
        import torch

        order = np.asarray(rows, dtype=np.int64)
        pixels = torch.from_numpy(np.ascontiguousarray(self.pixels[self.kept[order]])).float()
        if self.augment is not None:
            box = None if self.boxes is None else torch.from_numpy(self.boxes[self.kept[order]])
            pixels = augment(pixels, self.augment, batch_generator(self.seed, order), box, self.size)
        scale = torch.from_numpy(self.scale).view(1, 3, 1, 1)
        shift = torch.from_numpy(self.shift).view(1, 3, 1, 1)
        batch = {"pixel_values": pixels * scale + shift, "labels": torch.from_numpy(self.labels[order])}
        if self.with_idx:
            batch["idx"] = torch.from_numpy(order)
        return batch

    def __getitem__(self, row: int) -> dict[str, Any]:  # a DataLoader without batches; not used by ftcli
        return {k: v[0] for k, v in self.__getitems__([row]).items()}


def batch_generator(seed: int, rows: np.ndarray) -> Any:
    """A generator seeded by the run's seed and the batch's rows: the same batch gets the same crops
    again (in a resumed run, in a loader worker), and batches differ every epoch because their rows do."""
    import torch

    digest = hashlib.blake2b(rows.tobytes(), digest_size=8, key=str(seed).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)


def augment(pixels: Any, aug: Augment, gen: Any, box: Any = None, size: tuple[int, ...] | None = None) -> Any:
    """Random resized crops (one per image, to ``size``: the model's input, by default the stored size) and
    flips of a [B, 3, H, W] batch, as one affine ``grid_sample`` (bilinear): the whole batch at once, no
    per-image Python. ``box`` [B, 4] (:func:`crop_boxes`) is where each image lies in what is stored: its
    crop takes an area share of that box and its centre lies inside it; None: the whole stored image."""
    import math

    import torch
    import torch.nn.functional as F

    b = pixels.shape[0]
    bw, bh, bx, by = (torch.ones(b), torch.ones(b), torch.zeros(b), torch.zeros(b)) if box is None else box.unbind(1)
    lo, hi = math.log(aug.ratio[0]), math.log(aug.ratio[1])
    area = torch.empty(b).uniform_(aug.scale[0], aug.scale[1], generator=gen) * (bw * bh)  # a share of the canvas
    ratio = torch.exp(torch.empty(b).uniform_(lo, hi, generator=gen))
    w, h = torch.minimum((area * ratio).sqrt(), bw), torch.minimum((area / ratio).sqrt(), bh)  # canvas shares
    cx = bx + (torch.rand(b, generator=gen) * 2 - 1) * (bw - w)  # crop centre, in grid coordinates [-1, 1]
    cy = by + (torch.rand(b, generator=gen) * 2 - 1) * (bh - h)
    flip = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0) if aug.hflip else torch.ones(b)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w * flip, cx, h, cy
    grid = F.affine_grid(theta, [b, pixels.shape[1], *(size or pixels.shape[-2:])], align_corners=False)
    return F.grid_sample(pixels, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _as_is(batch: Any) -> Any:
    """The DataLoader's collate step: ``__getitems__`` already made the batch."""
    return batch


def workers() -> int:
    """Loader workers: they pay beside a GPU (the CPU is free to cut and augment batches); on a CPU they
    would take cores from the model itself."""
    import torch

    return min(4, (os.cpu_count() or 2) // 2) if torch.cuda.is_available() else 0


def train_loader(ds: ImageSet, batch_sampler: Any, augment_cfg: Augment | None, seed: int) -> Any:
    from torch.utils.data import DataLoader

    from ftcli.data import seed_source

    n = workers()
    view: Any = ds.view(augment_cfg, seed, with_idx=False)  # a map-style dataset: __len__ and __getitems__
    return DataLoader(
        view,
        batch_sampler=batch_sampler,
        collate_fn=_as_is,
        generator=seed_source(),
        num_workers=n,
        persistent_workers=n > 0,
    )


def eval_loader(ds: ImageSet, batch_size: int) -> Any:
    """Inference batches in dataset order, each carrying ``idx``."""
    from torch.utils.data import DataLoader

    rows = [list(range(i, min(i + batch_size, len(ds)))) for i in range(0, len(ds), batch_size)]
    view: Any = ds.view(None, 0, with_idx=True)  # a map-style dataset: __len__ and __getitems__
    return DataLoader(view, batch_sampler=rows, collate_fn=_as_is)


def pixel_batches(sources: list[Any], resizer: Resizer, batch_size: int, where: Callable[[int], str]) -> Iterator[dict]:
    """Model inputs for raw images (``ftcli predict``), decoded batch by batch, each with ``idx``."""
    import torch

    for start in range(0, len(sources), batch_size):
        rows = list(range(start, min(start + batch_size, len(sources))))
        images = []
        for i in rows:
            try:
                images.append(open_image(sources[i]))
            except FileNotFoundError as e:
                raise FtcliError(f"{where(i)}: no such image file") from e
            except Exception as e:
                raise FtcliError(f"{where(i)}: not a readable image ({first_line(e)})") from e
        pixels = torch.from_numpy(resizer.normalise_np(resizer.resize(images)))
        yield {"pixel_values": pixels, "idx": torch.tensor(rows)}
