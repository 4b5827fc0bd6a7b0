#!/usr/bin/env python
"""Build ftcli's shipped image set (ftcli/assets/digits) from scikit-learn's copy of the UCI optical
handwritten digits: 1,797 real 8×8 grayscale scans of digits written by 43 people, 10 classes.

    python scripts/make_digits.py            # rewrites train.parquet and validation.parquet (deterministic)

Each image is stored as it is (an 8×8 PNG, 16 gray levels stretched to 0–255) with its label; the
model's image processor upsamples it (configs/dataset/digits.yaml sets image_size 32). A seeded 80/20
split: 1,437 training and 360 validation images. The rows are datasets' Image feature in Parquet, so
`dataset=digits` reads them like any hub image set, offline.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "ftcli" / "assets" / "digits"


def png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.round(pixels * 255 / 16).astype(np.uint8), mode="L").save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def main() -> None:
    import datasets
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))
    cut = int(0.8 * len(order))
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
    OUT.mkdir(parents=True, exist_ok=True)
    for split, rows in (("train", order[:cut]), ("validation", order[cut:])):
        images = [{"bytes": png(digits.images[i]), "path": f"digit_{i:04d}.png"} for i in rows]
        ds = datasets.Dataset.from_dict({"image": images, "label": digits.target[rows].tolist()}, features=features)
        ds.to_parquet(OUT / f"{split}.parquet")
        print(f"{split}: {len(rows)} images → {OUT / f'{split}.parquet'}")


if __name__ == "__main__":
    main()
