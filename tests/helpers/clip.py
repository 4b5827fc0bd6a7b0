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
