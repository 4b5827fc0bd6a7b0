"""What the CLIP and SigLIP tests share: their CPU settings, digits as PNG files, predict and a classification run
from the contrastive checkpoint."""

from __future__ import annotations

import json
import os
from pathlib import Path

from helpers.runs import FP32, ftcli

# 1 thread: two or more threads on a machine whose cores are busy cost up to 80× on these tiny matmuls
CPU = ["hardware=cpu", "hardware.cpu_threads=1", FP32]

SMALL = [*CPU, "model=tiny_clip", "dataset.max_eval_samples=100"]
DIGITS = 'task.templates=["a photo of the digit {}."]'


def digit_png(folder: Path, row: int = 0) -> tuple[Path, int]:
    import io

    import pandas as pd
    from PIL import Image

    from ftcli.config.registry import ASSETS_DIR

    table = pd.read_parquet(ASSETS_DIR / "digits" / "validation.parquet")
    path = folder / f"digit{row}.png"
    Image.open(io.BytesIO(table.image[row]["bytes"])).save(path)
    return path, int(table.label[row])


def predict_image(run: Path, image: Path, tmp_path: Path, *args: str) -> dict[str, float]:
    """ftcli predict's probabilities for one image (through input=<folder> → a JSON file)."""
    dest = tmp_path / "pred.json"
    r = ftcli("predict", f"checkpoint={run}", f"input={image.parent}", f"output={dest}", FP32, *args)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads(dest.read_text())
    return next(row["probabilities"] for row in rows if Path(row["image"]).name == image.name)


def classify(contrastive, tmp_path: Path, name: str, *overrides: str, model: str = "tiny_clip") -> dict:
    """Classification of the digits starting from the ``contrastive`` run's checkpoint (test_siglip's too)."""
    from hydra import compose, initialize_config_dir

    from ftcli.config.registry import config_dir, register_configs
    from ftcli.train import train

    out, _, _ = contrastive
    register_configs()
    common = [*CPU, f"model={model}", "model.init=pretrained", f"model.name_or_path={out / 'checkpoints' / 'best'}"]
    common += ["task=clip_classification", "dataset=digits", DIGITS, "dataset.max_eval_samples=100"]
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=[*common, *overrides])
    cfg.output_dir, cfg.cache_dir = str(tmp_path / name), os.environ["FTCLI_CACHE_DIR"]
    return train(cfg)


def parity_captioned(folder: Path, empty_caption_row: int | None = None) -> list[str]:
    """The shipped digits labelled ``even``/``odd`` only, each captioned "a photo of the digit k.": the captions
    carry what the labels lack (which digit). Returns the dataset overrides for ``train.parquet`` /
    ``validation.parquet`` in ``folder`` (task=clip_contrastive, caption column ``caption``)."""
    import datasets

    from ftcli.config.registry import ASSETS_DIR

    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "validation"):
        ds = datasets.load_dataset(
            "parquet", data_files={split: str(ASSETS_DIR / "digits" / f"{split}.parquet")}, split=split
        )

        def parity(b: dict, idx: list[int], split: str = split) -> dict:
            captions = [f"a photo of the digit {k}." for k in b["label"]]
            if split == "train" and empty_caption_row is not None and empty_caption_row - 1 in idx:
                captions[idx.index(empty_caption_row - 1)] = " "
            return {"caption": captions, "label": ["even" if k % 2 == 0 else "odd" for k in b["label"]]}

        ds.map(parity, batched=True, with_indices=True).to_parquet(str(folder / f"{split}.parquet"))
    return [
        "task=clip_contrastive", "dataset=image_files", f"dataset.train_file={folder / 'train.parquet'}",
        f"dataset.validation_file={folder / 'validation.parquet'}", "dataset.image_size=32", "dataset.hflip=false",
        'task.templates=["a photo of the digit {}."]',
    ]  # fmt: skip


def digit_caption_r1(best: Path, validation: Path) -> float:
    """Caption retrieval of a CLIP checkpoint: of each validation image, is its digit's caption ("a photo of the
    digit k.", the 10 distinct captions) the nearest one? (i2t R@1, through plain transformers' CLIPModel)."""
    import io

    import numpy as np
    import pandas as pd
    import torch
    from PIL import Image
    from transformers import AutoProcessor, CLIPModel

    table = pd.read_parquet(validation)
    digits = [int(c.split()[-1].rstrip(".")) for c in table.caption]
    images = [Image.open(io.BytesIO(cell["bytes"])).convert("RGB") for cell in table.image]
    processor, clip = AutoProcessor.from_pretrained(best), CLIPModel.from_pretrained(best).eval()
    inputs = processor(text=[f"a photo of the digit {k}." for k in range(10)], images=images, return_tensors="pt",
                       padding=True)  # fmt: skip
    with torch.no_grad():
        nearest = clip(**inputs).logits_per_image.argmax(-1).numpy()
    return float(np.mean(nearest == np.asarray(digits)))
