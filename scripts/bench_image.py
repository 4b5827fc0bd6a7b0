#!/usr/bin/env python
"""The image peers of scripts/bench.py, one job per process: ``python scripts/bench_image.py JOB 'JSON spec'``.

Each job reads the image folder scripts/bench_data.py wrote (``train/<label>/``, ``validation/<label>/``) and
the Lite0 weights, without ftcli or Hydra, and prints one JSON line (accuracy of the final epoch's weights,
its loop's samples/s, its precision, and whether ftcli or Hydra got imported). Every job uses the recipe the
spec gives, which is ftcli's: random resized crop (the spec's scale and ratio, bilinear) + horizontal flip for
training; for evaluation the model's own transform (resize to ``size / crop_pct``, bicubic, centre crop —
0.875 for Lite0, as ftcli's processor and timm do); AdamW with weight decay off biases and norms, linear decay
per step, gradient clipping at 1.0; a new head N(0, 0.02) with zero bias.

- ``example``: transformers' image-classification example (run_image_classification.py) as it sets itself
  up: ``load_dataset("imagefolder")``, torchvision transforms per example in ``set_transform``, a stacking
  collator, ``Trainer`` — at its default precision (fp32) or ``bf16=True``.
- ``loop``: a plain PyTorch loop that decodes every image once (kept whole, aspect kept, as uint8 in memory),
  then crops and flips per example and trains the timm model channels-last: the cache's value without ftcli.
- ``probe``: the standard linear probe: the backbone in eval mode, pooled features of every training and
  validation image once (inference_mode), scikit-learn ``LogisticRegression`` on them.

timm's own ``train.py`` is the fourth peer; scripts/bench.py runs it directly (it is not in timm's wheel).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

ARCH = "tf_efficientnet_lite0"


def listing(folder: str, split: str) -> tuple[list[str], list[int], list[str]]:
    """(paths, labels, class names) of ``folder/split/<class>/*``, classes in sorted order."""
    root = Path(folder) / split
    names = sorted(p.name for p in root.iterdir() if p.is_dir())
    paths, labels = [], []
    for i, name in enumerate(names):
        for p in sorted((root / name).iterdir()):
            paths.append(str(p))
            labels.append(i)
    return paths, labels, names


def eval_transform(size: int, crop_pct: float, mean: Any, std: Any) -> Any:
    from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

    scale = math.floor(size / crop_pct)  # timm's resolve: the shorter side before the centre crop
    return Compose([Resize(scale, InterpolationMode.BICUBIC), CenterCrop(size), ToTensor(), Normalize(mean, std)])


def timm_model(weights: str, num_classes: int, seed: int) -> Any:
    """Lite0 from the timm-named weights, its 1000-class head replaced by a new N(0, 0.02) one."""
    import timm
    import torch
    from safetensors.torch import load_file

    model = timm.create_model(ARCH, pretrained=False, num_classes=num_classes)
    state = {k: v for k, v in load_file(weights).items() if not k.startswith("classifier.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("classifier.") for k in missing):
        raise SystemExit(f"bench_image: weights do not fit {ARCH}: {missing} {unexpected}")
    if num_classes:
        torch.manual_seed(seed)
        torch.nn.init.normal_(model.classifier.weight, 0.0, 0.02)
        torch.nn.init.zeros_(model.classifier.bias)
    return model


def decay_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]


def autocast(precision: str) -> Any:
    import contextlib

    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()


# ---------------------------------------------------------------------------------------------------
# transformers' example


def example_job(spec: dict[str, Any]) -> dict[str, Any]:
    """run_image_classification.py's setup: imagefolder, per-example transforms, Trainer."""
    import datasets
    import numpy as np
    import torch
    import transformers
    from torchvision.transforms import Compose, Normalize, RandomHorizontalFlip, RandomResizedCrop, ToTensor
    from transformers import AutoModelForImageClassification, Trainer

    transformers.utils.logging.set_verbosity_error()
    loaded = datasets.load_dataset("imagefolder", data_dir=spec["images"])
    names = loaded["train"].features["label"].names
    transformers.set_seed(spec["seed"])  # as the example does, before the new head is made
    model = AutoModelForImageClassification.from_pretrained(
        spec["model"],
        num_labels=len(names),
        id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
        ignore_mismatched_sizes=True,
    )
    cfg = model.config.pretrained_cfg  # timm's data config: the example reads mean/std off the processor
    size, normalize = spec["size"], Normalize(mean=cfg["mean"], std=cfg["std"])
    crop = RandomResizedCrop(size, scale=tuple(spec["crop_scale"]), ratio=tuple(spec["crop_ratio"]))
    train_tf = Compose([crop, RandomHorizontalFlip(), ToTensor(), normalize])
    val_tf = eval_transform(size, cfg["crop_pct"], cfg["mean"], cfg["std"])

    def with_transform(tf: Any) -> Any:
        def apply(batch: dict[str, Any]) -> dict[str, Any]:
            batch["pixel_values"] = [tf(im.convert("RGB")) for im in batch["image"]]
            return batch

        return apply

    train_ds, val_ds = loaded["train"], loaded["validation"]
    train_ds.set_transform(with_transform(train_tf))
    val_ds.set_transform(with_transform(val_tf))

    def collate(examples: list[dict[str, Any]]) -> dict[str, Any]:
        pixels = torch.stack([e["pixel_values"] for e in examples])
        return {"pixel_values": pixels, "labels": torch.tensor([e["label"] for e in examples])}

    trainer = Trainer(
        model=model,
        args=example_args(spec),
        train_dataset=train_ds,
        eval_dataset=val_ds,
        compute_metrics=lambda p: {"accuracy": float((np.argmax(p.predictions, -1) == p.label_ids).mean())},
        data_collator=collate,
    )
    out = trainer.train().metrics
    ev = trainer.evaluate()
    return {
        "accuracy": ev["eval_accuracy"],
        "samples_per_s": out["train_samples_per_second"],
        "precision": trainer.accelerator.mixed_precision,
    }


def example_args(spec: dict[str, Any]) -> Any:
    import tempfile

    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=tempfile.mkdtemp(),
        per_device_train_batch_size=spec["batch_size"],
        per_device_eval_batch_size=spec["batch_size"],
        learning_rate=spec["lr"],
        weight_decay=spec["weight_decay"],
        warmup_steps=spec["warmup_ratio"],
        lr_scheduler_type="linear",
        optim="adamw_torch_fused",
        max_grad_norm=spec["max_grad_norm"],
        num_train_epochs=spec["epochs"],
        seed=spec["seed"],
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=spec["precision"] == "bf16",
        disable_tqdm=True,
        dataloader_num_workers=spec.get("workers", 0),
        remove_unused_columns=False,  # the example's setting: set_transform needs the image column
    )


# ---------------------------------------------------------------------------------------------------
# a plain loop that decodes once


def decode_whole(paths: list[str], side: int) -> list[Any]:
    """Every image decoded once, shorter side resized to ``side`` (aspect kept), as uint8 [3, H, W]."""
    import numpy as np
    import torch
    from PIL import Image

    out = []
    for p in paths:
        with Image.open(p) as im:
            im = im.convert("RGB")
            w, h = im.size
            s = side / min(w, h)
            im = im.resize((max(side, round(w * s)), max(side, round(h * s))), Image.BILINEAR)
            out.append(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1))
    return out


def decode_eval(paths: list[str], tf: Any) -> Any:
    import torch
    from PIL import Image

    def one(p: str) -> Any:
        with Image.open(p) as im:
            return tf(im.convert("RGB"))

    return torch.stack([one(p) for p in paths])


def loop_job(spec: dict[str, Any]) -> dict[str, Any]:
    """Decode once; random resized crop + flip per example on the decoded uint8 images; timm channels-last."""
    import torch
    from torchvision.transforms import v2

    paths, labels, names = listing(spec["images"], "train")
    val_paths, val_labels, _ = listing(spec["images"], "validation")
    size, crop_pct = spec["size"], spec["crop_pct"]
    images = decode_whole(paths, math.ceil(size / crop_pct))
    mean, std = torch.tensor(spec["mean"]).view(1, 3, 1, 1), torch.tensor(spec["std"]).view(1, 3, 1, 1)
    val_x = decode_eval(val_paths, eval_transform(size, crop_pct, spec["mean"], spec["std"]))
    torch.manual_seed(spec["seed"])
    model = timm_model(spec["weights"], len(names), spec["seed"]).to(memory_format=torch.channels_last)
    crop = v2.Compose(
        [
            v2.RandomResizedCrop(
                size, scale=tuple(spec["crop_scale"]), ratio=tuple(spec["crop_ratio"]), antialias=True
            ),
            v2.RandomHorizontalFlip(),
        ]
    )
    opt = torch.optim.AdamW(decay_groups(model, spec["weight_decay"]), lr=spec["lr"], fused=True)
    per_epoch = math.ceil(len(images) / spec["batch_size"])
    total = spec["epochs"] * per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, (total - s) / total))
    y = torch.tensor(labels)
    start, seen = time.perf_counter(), 0
    for _ in range(spec["epochs"]):
        model.train()
        for rows in torch.randperm(len(images)).split(spec["batch_size"]):
            x = torch.stack([crop(images[r]) for r in rows.tolist()]).float().div_(255)
            x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
            with autocast(spec["precision"]):
                loss = torch.nn.functional.cross_entropy(model(x).float(), y[rows])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), spec["max_grad_norm"])
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            seen += len(rows)
    rate = seen / (time.perf_counter() - start)
    preds = predict(model, val_x, spec["batch_size"], spec["precision"])
    return {
        "accuracy": float((preds == torch.tensor(val_labels)).float().mean()),
        "samples_per_s": rate,
        "precision": spec["precision"],
    }


def predict(model: Any, x: Any, batch: int, precision: str) -> Any:
    import torch

    model.eval()
    with torch.inference_mode(), autocast(precision):
        out = [model(b.contiguous(memory_format=torch.channels_last)).argmax(-1) for b in x.split(batch)]
    return torch.cat(out)


# ---------------------------------------------------------------------------------------------------
# the linear probe


def probe_job(spec: dict[str, Any]) -> dict[str, Any]:
    """Backbone in eval mode, pooled features once (inference_mode), LogisticRegression on them."""
    import torch
    from sklearn.linear_model import LogisticRegression

    paths, labels, _ = listing(spec["images"], "train")
    val_paths, val_labels, _ = listing(spec["images"], "validation")
    model = timm_model(spec["weights"], 0, spec["seed"]).eval().to(memory_format=torch.channels_last)
    tf = eval_transform(spec["size"], spec["crop_pct"], spec["mean"], spec["std"])
    start = time.perf_counter()
    feats = {}
    for split, ps in (("train", paths), ("validation", val_paths)):
        chunks = []
        for i in range(0, len(ps), spec["batch_size"]):
            x = decode_eval(ps[i : i + spec["batch_size"]], tf).contiguous(memory_format=torch.channels_last)
            with torch.inference_mode(), autocast(spec["precision"]):
                chunks.append(model(x).float())
        feats[split] = torch.cat(chunks).numpy()
    rate = (len(paths) + len(val_paths)) / (time.perf_counter() - start)
    clf = LogisticRegression(C=spec["C"], max_iter=2000, random_state=spec["seed"]).fit(feats["train"], labels)
    acc = float((clf.predict(feats["validation"]) == val_labels).mean())
    return {"accuracy": acc, "samples_per_s": rate, "precision": spec["precision"]}


JOBS = {"example": example_job, "loop": loop_job, "probe": probe_job}


def main() -> None:
    job, spec = sys.argv[1], json.loads(sys.argv[2])
    if spec.get("threads"):
        import torch

        torch.set_num_threads(spec["threads"])
    result = JOBS[job](spec)
    result["imported"] = sorted(m for m in ("ftcli", "hydra", "omegaconf") if m in sys.modules)
    print(json.dumps(result))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
