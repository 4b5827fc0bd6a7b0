"""Image inputs for any objective: an image column (paths, embedded bytes, an image folder), decoded and
resized once by the model's own image processor (cached), batches augmented as tensors, and an image
classifier (ResNet, ConvNeXt, ViT, EfficientNet, timm's VGG …) whose head is new."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import DatasetConfig, ModelConfig
from ftcli.tasks.base import Loaded, OnnxSpec, Task, TaskData

IMAGE = "image"  # the column an image folder's rows and predict's rows hold their image in
STRINGS = ("string", "large_string")  # a column of paths, as datasets types it


class ImageTask(Task):
    """Inputs: the dataset's ``image_column`` (an image folder: its files), through the model's image
    processor; the model is transformers' ``AutoModelForImageClassification``."""

    pipeline_tag = "image-classification"
    auto_model = "AutoModelForImageClassification"
    inputs = "image"
    processor_class = "AutoImageProcessor"
    example_call = 'run("cat.jpg")'
    predict_example = "image=cat.jpg"

    def __init__(self, cfg: Any) -> None:
        from ftcli.data.images.cache import default_cache_dir

        super().__init__(cfg)
        self.cache_dir = default_cache_dir()  # a training run sets its own (load_processor)
        self.dataset: Any = None  # the dataset config: augmentation, bad-image policy (set by raw)
        self.seed = 0  # the run's seed: the training batches' crops and flips (set by train_batches)
        self.base_dir = Path(".")  # predict: relative image paths in an input file are relative to it

    # ---- rows ---------------------------------------------------------------------------------
    def input_columns(self, dataset: DatasetConfig) -> list[tuple[str, str | None]]:
        return [("image_column", dataset.image_column or IMAGE)]

    def raw(self, dataset: DatasetConfig) -> Any:
        """An image folder's files, or a table's / hub split's image column: paths made absolute (relative
        to the file that lists them), embedded images kept as bytes (decoded once, when cached)."""
        from ftcli.data.tables import load_raw

        self.dataset = dataset
        if dataset.source == "imagefolder":
            return self._folder(dataset)
        raw = load_raw(dataset)
        column = dataset.image_column or IMAGE
        for split, ds in raw.splits.items():
            if column not in ds.column_names:
                continue  # require_columns names it
            base = Path(getattr(dataset, f"{split}_file") or ".").expanduser().resolve().parent
            raw.splits[split] = _absolute(_undecoded(ds, column), column, base)
        return raw

    def _folder(self, dataset: DatasetConfig) -> Any:
        import datasets

        from ftcli.data.images.folder import scan_folder
        from ftcli.data.tables import Raw
        from ftcli.reporting.progress import console

        if not dataset.data_dir:
            raise FtcliError(f"dataset.data_dir is required for dataset={dataset.name} (an image folder)")
        folder = scan_folder(dataset.data_dir)
        column, label = dataset.image_column or IMAGE, dataset.label_column
        splits = {s: datasets.Dataset.from_dict({column: p, label: y}) for s, (p, y) in folder.splits.items()}
        if folder.ignored:
            shown = ", ".join(Path(p).name for p in folder.ignored[:3])
            console.print(f"{dataset.data_dir}: {len(folder.ignored)} files that are not images left out ({shown} …)")
        return Raw(splits, folder.where)

    # ---- model inputs: decoded and resized once, cached ----------------------------------------
    def load_processor(self, model: ModelConfig, cache_dir: Path, data: TaskData) -> Any:
        from ftcli.models.vision import load_processor

        self.cache_dir = Path(cache_dir)
        size = (self.dataset.image_size if self.dataset is not None else None) or _own_size(model)
        return load_processor(model, self.cache_dir, size)

    def encode(self, ds: Any, columns: list[str], processor: Any, model: ModelConfig) -> Any:
        """The split's images at the model's input size, from the cache (or decoded now and cached)."""
        import time

        from ftcli.data.images.batches import ImageSet
        from ftcli.data.images.cache import decode_all, identity_of
        from ftcli.reporting.progress import console

        column = columns[0]
        resizer = resizer_of(processor)
        sources, embedded = _sources(ds, column)
        skip = self.dataset is not None and self.dataset.bad_images == "skip"
        if not embedded:
            _check_paths(sources, skip)
        content = identity_of([] if embedded else sources, f"{ds._fingerprint}:{column}" if embedded else None)
        start = time.perf_counter()
        decoded = decode_all(sources, lambda i: _where(sources, i), resizer, self.cache_dir, content, skip)
        labels = np.asarray(ds["labels"])[decoded.kept]
        how = "cache hit" if decoded.hit else f"decoded in {time.perf_counter() - start:.1f} s"
        console.print(f"images: {len(labels):,} × {resizer.size[0]}×{resizer.size[1]} ({how})", highlight=False)
        if decoded.skipped:
            console.print(
                f"[yellow]skipped {len(decoded.skipped)} unreadable images[/] (dataset.bad_images=skip): "
                + "; ".join(decoded.skipped[:3])
                + (" …" if len(decoded.skipped) > 3 else "")
            )
        images = ImageSet(decoded.pixels, decoded.kept, labels, resizer.scale, resizer.shift, decoded.key)
        images.whole = lambda: _whole_images(sources, resizer, self.cache_dir, content, skip)  # if augmented
        return images

    def train_batches(self, ds: Any, batch_size: int, seed: int, max_tokens: int | None) -> Any:
        from ftcli.data.batching import LengthGroupedBatches

        if max_tokens:
            raise FtcliError(f"trainer.max_tokens={max_tokens}: a token budget is for text; images batch by batch_size")
        self.seed = seed
        return LengthGroupedBatches(np.ones(len(ds)), batch_size, seed, group=False)

    def loader(self, ds: Any, batch_sampler: Any, processor: Any) -> Any:
        from ftcli.data.images.augment import Augment
        from ftcli.data.images.batches import train_loader

        d = self.dataset
        aug = Augment(tuple(d.crop_scale), tuple(d.crop_ratio), bool(d.hflip)) if d is not None and d.augment else None
        return train_loader(ds, batch_sampler, aug, self.seed)

    def eval_loader(self, ds: Any, processor: Any, batch_size: int) -> Any:
        from ftcli.data.images.batches import eval_loader

        return eval_loader(ds, batch_size)

    def labels_of(self, ds: Any) -> np.ndarray:
        return np.asarray(ds.labels)

    # ---- the model ----------------------------------------------------------------------------
    def pooling(self, requested: str) -> tuple[str, str | None]:
        """The architecture's own pooling, whatever was asked: global average (CNNs), [CLS] (ViT)."""
        return "native", None

    def uses_remote_code(self, pooling: str | None) -> bool:
        return False

    def build_model(self, model: ModelConfig, pooling: str, data: TaskData, processor: Any, seed: int) -> Any:
        from ftcli.models.vision import build_model

        side = resizer_of(processor).size
        built, note = build_model(model, data.label_names, processor, seed, self.problem_type, self.cache_dir, side[0])
        self.notes.append(note)
        channels_last(built)
        float_depthwise_backward(built)
        if self.dataset is not None and self.dataset.image_size:
            _check_size(built, side, model.name)  # a pretrained ViT reads its own size; VGG needs 32 or more
        return built

    def missing_processor(self, folder: Path) -> str | None:
        import json

        if (folder / "preprocessor_config.json").is_file():
            return None
        config = folder / "config.json"
        if config.is_file() and "pretrained_cfg" in json.loads(config.read_text()):  # timm: kept in config.json
            return None
        return "no image processor (preprocessor_config.json)"

    def load_pretrained(self, folder: Path, trust_remote_code: bool, allow_pickle: bool) -> tuple[Any, Any]:
        import transformers
        from transformers import AutoImageProcessor

        auto = getattr(transformers, self.auto_model)
        safetensors_only = None if allow_pickle else True
        model = auto.from_pretrained(folder, trust_remote_code=trust_remote_code, use_safetensors=safetensors_only)
        processor = AutoImageProcessor.from_pretrained(folder, trust_remote_code=trust_remote_code)
        if type(processor).__name__ == "TimmWrapperImageProcessor":  # keep its settings for a later save
            processor.pretrained_cfg = dict(model.config.pretrained_cfg)
        channels_last(model)
        return model, processor

    # ---- a frozen backbone: the classifier's input, computed once ------------------------------
    def caches_features(self, model: Any) -> bool:
        from ftcli.models.architectures import classifier_of

        return classifier_of(model) is not None

    def feature_identity(self, model: Any, processor: Any, ds: Any, seed: int) -> dict[str, Any]:
        from ftcli.models.vision import model_identity

        return {**model_identity(model, seed), "pixels": ds.key, "affine": [ds.scale.tolist(), ds.shift.tolist()]}

    def frozen_features(self, model: Any, ds: Any, processor: Any, batch_size: int, accelerator: Any) -> dict[str, Any]:
        """What the classifier reads (the backbone's pooled features) for every image, through the whole
        model in eval mode (BatchNorm uses its running statistics) under the run's autocast."""
        import torch

        from ftcli.models.architectures import classifier_of
        from ftcli.reporting.progress import Progress
        from ftcli.runtime.inference import infer

        found = classifier_of(model)
        if found is None:
            raise FtcliError(f"{type(model).__name__}: no classifier layer found to train on cached features")
        captured: dict[str, Any] = {}
        handle = found[1].register_forward_pre_hook(lambda m, args: captured.__setitem__("x", args[0]))
        batches = self.eval_loader(ds, processor, batch_size)
        progress, done = Progress(len(batches), label="features"), [0]

        def pooled(batch: dict[str, Any]) -> dict[str, Any]:
            with accelerator.autocast():
                model(pixel_values=batch["pixel_values"].to(accelerator.device))
            return {"pooled": captured.pop("x").flatten(1).float()}

        def tick(rows: int) -> None:
            done[0] += 1
            progress.update(done[0])

        model.eval()
        try:
            out = infer(pooled, batches, on_batch=tick)
        finally:
            handle.remove()
            progress.close()
        return {"pooled": torch.from_numpy(out["pooled"])}

    def feature_name(self, model: Any) -> str:
        return "pooled"

    def head(self, model: Any) -> Any:
        from ftcli.models.architectures import classifier_of

        found = classifier_of(model)
        return found[1] if found else None

    # ---- predict: raw images --------------------------------------------------------------------
    def single_input(self, cfg: Any) -> tuple[dict[str, Any], list[str]]:
        image = cfg.get("image")
        if image is None:
            raise FtcliError("this checkpoint classifies images: give image=<file> (or input=<folder or file list>)")
        return {IMAGE: str(image)}, [IMAGE]

    def input_rows(self, src: Path) -> list[dict[str, Any]] | None:
        """A folder (every image in it) or a .txt list of paths, as rows; None for a table (CSV, JSON …),
        whose relative paths are then relative to its folder."""
        from ftcli.data.images.folder import IMAGE_EXTENSIONS

        if src.is_dir():
            files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not files:
                raise FtcliError(f"input={src}: no images in this folder ({', '.join(IMAGE_EXTENSIONS)})")
            return [{IMAGE: str(p)} for p in files]
        self.base_dir = src.expanduser().resolve().parent
        if src.suffix.lower() == ".txt" and src.is_file():
            lines = [line.strip() for line in src.read_text(encoding="utf-8").splitlines()]
            return [{IMAGE: line} for line in lines if line and not line.startswith("#")]
        return None

    def input_columns_of(self, cfg: Any, dataset: Any, rows: list[dict[str, Any]], where: str) -> list[str]:
        trained = dataset.get("image_column") if dataset is not None else None
        column = cfg.get("image_column") or (IMAGE if IMAGE in rows[0] else trained) or IMAGE
        if column not in rows[0]:
            raise FtcliError(f"image_column={column}: no such column in {where}; it has {', '.join(rows[0])}")
        return [column]

    def predict_outputs(self, loaded: Loaded, rows: list[dict[str, Any]], columns: list[str], batch_size: int) -> Any:
        from ftcli.data.images.batches import pixel_batches
        from ftcli.runtime.inference import infer

        model, accelerator = loaded.model, loaded.accelerator
        sources = [str(self.base_dir / os.path.expanduser(str(r.get(columns[0]) or ""))) for r in rows]
        device = accelerator.device
        model.eval()

        def forward(batch: dict[str, Any]) -> dict[str, Any]:
            with accelerator.autocast():
                return {"outputs": model(pixel_values=batch["pixel_values"].to(device)).logits.float()}

        batches = pixel_batches(sources, resizer_of(loaded.processor), batch_size, lambda i: sources[i])
        return infer(forward, batches)["outputs"]

    def onnx_spec(self, model: Any, processor: Any) -> OnnxSpec:
        """pixel_values [batch, 3, H, W] at the processor's size; the batch may vary."""
        import torch

        h, w = resizer_of(processor).size
        batch = torch.export.Dim("batch")
        return OnnxSpec(pixels_only(model), ["pixel_values"], (torch.randn(2, 3, h, w),), {"pixel_values": {0: batch}})


_RESIZERS: dict[int, tuple[Any, Any]] = {}  # id(processor) → (processor, its Resizer): probed once per object


def resizer_of(processor: Any) -> Any:
    """The processor's :class:`~ftcli.data.images.resize.Resizer`, made once per processor object (not stored on the
    processor: its attributes are what it saves and what the cache key reads)."""
    from ftcli.data.images.resize import Resizer

    known = _RESIZERS.get(id(processor))
    if known is None or known[0] is not processor:
        known = (processor, Resizer(processor))
        _RESIZERS[id(processor)] = known
    return known[1]


def channels_last(model: Any) -> None:
    """A CNN's weights in channels-last layout: its convolutions (oneDNN on CPUs, cuDNN with tensor cores)
    run up to twice as fast, in bf16 above all, and a conv given NCHW input follows its weights. A
    transformer whose only convolution makes its patches is left as it is."""
    import torch
    from torch import nn

    if sum(isinstance(m, nn.Conv2d) for m in model.modules()) > 1:
        model.to(memory_format=torch.channels_last)


def float_depthwise_backward(model: Any) -> int:
    """Depthwise convolutions (EfficientNet, MobileNet, ConvNeXt) compute in fp32 while they train under CPU bf16
    autocast: oneDNN's bf16 depthwise backward is ~2.7× slower than its fp32 one (EfficientNet-Lite0, 64×64,
    AMX CPU: 206 vs 126 training images/s; ConvNeXt-T 44 vs 36), while their bf16 forward is the faster one,
    so inference (no grad) keeps bf16. GPUs and fp32 runs are untouched. Returns how many convolutions."""
    from torch import nn

    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and 1 < m.groups == m.in_channels]
    for conv in convs:
        conv.__class__ = _float_backward_class(type(conv))
    return len(convs)


_FLOAT_BACKWARD: dict[Any, type] = {}


def _float_backward_class(base: Any) -> type:
    """``base`` (nn.Conv2d or a subclass, e.g. timm's Conv2dSame) with the fp32 training path in front."""
    import torch

    if getattr(base, "float_backward", False):
        return base
    if base not in _FLOAT_BACKWARD:

        def forward(self: Any, x: Any) -> Any:
            if x.device.type == "cpu" and torch.is_grad_enabled() and torch.is_autocast_enabled("cpu"):
                with torch.autocast("cpu", enabled=False):
                    return base.forward(self, x.float())
            return base.forward(self, x)

        _FLOAT_BACKWARD[base] = type(base.__name__, (base,), {"forward": forward, "float_backward": True})
    return _FLOAT_BACKWARD[base]


def _own_size(model: ModelConfig) -> int | None:
    """A random-init model type that says its image size (ViT: its position embeddings) reads that size."""
    size = dict(model.config_overrides).get("image_size") if model.init == "random" else None
    return int(size) if isinstance(size, int) else None


def _undecoded(ds: Any, column: str) -> Any:
    """An Image feature as {bytes, path} (decoded once, by the cache, not on every access)."""
    import datasets

    feature = ds.features.get(column)
    return ds.cast_column(column, datasets.Image(decode=False)) if isinstance(feature, datasets.Image) else ds


def _absolute(ds: Any, column: str, base: Path) -> Any:
    """Relative image paths in a table are relative to the table's folder."""
    import hashlib

    if ds.features[column].dtype not in STRINGS:
        return ds

    def fix(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        return {column: [v if v is None else str(base / os.path.expanduser(v)) for v in batch[column]]}

    key = hashlib.sha256(f"{ds._fingerprint}-{base}-{column}".encode()).hexdigest()[:16]
    return ds.map(fix, batched=True, new_fingerprint=key, desc="image paths")


def _sources(ds: Any, column: str) -> tuple[Any, bool]:
    """The column's images (paths; or, embedded, a lazy sequence of {bytes, path}) and which it is."""
    if ds.features[column].dtype in STRINGS:
        return [v if v is not None else "" for v in ds[column]], False
    return _Rows(ds, column), True


class _Rows:
    """One column of a dataset, read a row at a time (embedded images: not all in memory at once)."""

    def __init__(self, ds: Any, column: str) -> None:
        self.ds = ds.select_columns([column])
        self.column = column

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> Any:
        return self.ds[int(i)][self.column]


def _whole_images(sources: Any, resizer: Any, cache_dir: Path, content: str, skip: bool) -> tuple[Any, Any]:
    """The training split's images whole (aspect kept, in a canvas) and where each lies in it: what its
    random resized crops are cut from, so that they see a photo's sides, as transformers' crops of the
    file do. Decoded once (the main process first, the others read its cache), then cached like the rest."""
    import time

    from accelerate import PartialState

    from ftcli.data.images.cache import crop_boxes, decode_all
    from ftcli.reporting.progress import console

    side = resizer.canvas_side()
    start = time.perf_counter()
    with PartialState().main_process_first():
        decoded = decode_all(sources, lambda i: _where(sources, i), resizer, cache_dir, content, skip, side)
    how = "cache hit" if decoded.hit else f"decoded in {time.perf_counter() - start:.1f} s"
    console.print(f"training crops: {len(decoded.kept):,} whole images in {side}×{side} ({how})", highlight=False)
    assert decoded.sizes is not None
    return decoded.pixels, crop_boxes(decoded.sizes, side)


def _where(sources: Any, i: int) -> str:
    from ftcli.data.images.decode import describe

    source = sources[i]
    name = describe(source)
    return name if name != "embedded image" else f"image {i + 1} of the split"


def _check_paths(paths: list[str], skip: bool) -> None:
    """Every listed image file exists (one stat each, before any decoding): the first missing one is named."""
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing and not skip:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise FtcliError(
            f"{missing[0] or '(empty path)'}: no such image file{more}; paths in a file are relative to its folder "
            "(or set dataset.bad_images=skip to leave missing images out)"
        )


def _check_size(model: Any, size: tuple[int, int], name: str) -> None:
    """A model that reads one input size only (ViT's position embeddings) fails here in one line, not in a batch."""
    import torch

    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(pixel_values=torch.zeros(1, 3, *size))
    except Exception as e:
        from ftcli.config.errors import first_line

        raise FtcliError(
            f"dataset.image_size={size[0]}: model {name} cannot read {size[0]}×{size[1]} images ({first_line(e)}); "
            "leave dataset.image_size unset for the model's own size"
        ) from e
    finally:
        model.train(was)


def pixels_only(model: Any) -> Any:
    """The model with one tensor input, pixel_values, and one output, the logits (what ONNX consumers want)."""
    from torch import nn

    class LogitsOnly(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, pixel_values: Any) -> Any:
            return self.model(pixel_values=pixel_values).logits

    return LogitsOnly().eval()
