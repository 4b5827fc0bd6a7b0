"""Image classifiers: the image processor (at a chosen size), and the model with a head for the dataset's labels.

Every model loads through transformers' ``AutoModelForImageClassification`` / ``AutoImageProcessor`` (timm's models
through transformers' timm wrapper), so a checkpoint works in plain transformers and in
``pipeline("image-classification")``. ``model.init=random`` builds the architecture untrained: from a transformers
model type and ``config_overrides`` (``resnet``, ``vit``, ``convnext`` …; ``timm_wrapper`` with ``architecture`` and
timm's ``model_args``), or from a real model's own config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import nn
from transformers import (
    CONFIG_MAPPING,
    AutoConfig,
    AutoImageProcessor,
    AutoModelForImageClassification,
    TimmWrapperConfig,
    TimmWrapperImageProcessor,
)
from transformers.models.auto import image_processing_auto as auto
from transformers.utils import is_torchvision_available

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import ModelConfig
from ftcli.models.architectures import classifier_of, describe_head
from ftcli.models.loading import _load_weights, load_part
from ftcli.models.packaged import resolve

TIMM_WRAPPER = "timm_wrapper"


def is_model_type(name: str) -> bool:

    return name in CONFIG_MAPPING


def load_processor(cfg: ModelConfig, cache_dir: Path, image_size: int | None) -> Any:
    """The model's image processor (its resize, crop and normalisation), at ``image_size`` when set.
    A random-init model type gets its architecture's default processor; a timm model, timm's own
    data config (kept in the model's config.json: transformers' timm wrapper saves it there)."""

    if cfg.init == "random" and is_model_type(cfg.name_or_path):
        processor = _default_processor(cfg)
    else:
        path = resolve(cfg.name_or_path, cache_dir)
        processor = load_part(AutoImageProcessor.from_pretrained, path, cfg, "cannot load an image processor")
        if type(processor).__name__ == "TimmWrapperImageProcessor":
            processor = _timm_processor(_timm_pretrained_cfg(path), processor.architecture)
    return with_size(processor, image_size) if image_size else processor


def _default_processor(cfg: ModelConfig) -> Any:

    if cfg.name_or_path == TIMM_WRAPPER:
        arch = _timm_architecture(cfg)
        return _timm_processor(_untrained_cfg(arch), arch)
    names = auto.IMAGE_PROCESSOR_MAPPING_NAMES.get(cfg.name_or_path)
    if not names:
        raise FtcliError(f"model.name_or_path={cfg.name_or_path}: transformers has no image processor for it")
    name = names.get("torchvision") if is_torchvision_available() else None  # what AutoImageProcessor picks
    return auto.get_image_processor_class_from_name(name or names["pil"])()


def _timm_architecture(cfg: ModelConfig) -> str:
    arch = dict(cfg.config_overrides).get("architecture")
    if not arch:
        raise FtcliError("model.config_overrides.architecture: name the timm model (e.g. vgg11) for timm_wrapper")
    return str(arch)


def _untrained_cfg(arch: str) -> dict[str, Any]:
    """timm's data config for an architecture (input size, interpolation, crop, mean/std), without the
    weights' address: an untrained model must not name weights it does not have."""
    import timm

    found: Any = timm.models.get_pretrained_cfg(arch)
    cfg = dict(found.to_dict()) if found is not None else {}
    for key in ("url", "hf_hub_id", "tag", "file", "hf_hub_filename", "source"):
        cfg.pop(key, None)
    return {**cfg, "architecture": arch}


def _timm_pretrained_cfg(path: str) -> dict[str, Any]:

    return dict(getattr(AutoConfig.from_pretrained(path), "pretrained_cfg", None) or {})


def _timm_processor(pretrained_cfg: dict[str, Any], architecture: str) -> Any:

    processor: Any = TimmWrapperImageProcessor(pretrained_cfg=pretrained_cfg, architecture=architecture)
    processor.pretrained_cfg = pretrained_cfg  # goes into the model's config.json (the wrapper's processor file)
    return processor


def with_size(processor: Any, side: int) -> Any:
    """The same processor bringing images to ``side`` × ``side`` (resize and crop scaled together)."""
    if type(processor).__name__ == "TimmWrapperImageProcessor":
        cfg = {**processor.pretrained_cfg, "input_size": (3, side, side)}
        return _timm_processor(cfg, processor.architecture)
    settings = processor.to_dict()
    size, crop = dict(settings.get("size") or {}), settings.get("crop_size")
    if settings.get("do_center_crop") and crop:  # resize to a bit more, then crop: keep the ratio
        crop_side = min(v for k, v in crop.items() if k in ("height", "width"))
        resized = size.get("shortest_edge") or min(size.get("height", side), size.get("width", side))
        factor = resized / crop_side
        settings["crop_size"] = {"height": side, "width": side}
        size = {"shortest_edge": round(side * factor)} if "shortest_edge" in size else {}
        settings["size"] = size or {"height": round(side * factor), "width": round(side * factor)}
    elif "shortest_edge" in size:
        settings["size"] = {"shortest_edge": side}
    else:
        settings["size"] = {"height": side, "width": side}
    return type(processor).from_dict(settings)


def label_config(label_names: list[str], problem_type: str) -> dict[str, Any]:
    return {
        "num_labels": len(label_names),
        "id2label": dict(enumerate(label_names)),
        "label2id": {n: i for i, n in enumerate(label_names)},
        "problem_type": problem_type,
    }


def build_model(
    cfg: ModelConfig,
    label_names: list[str],
    processor: Any,
    seed: int,
    problem_type: str,
    cache_dir: Path,
    side: int | None = None,
) -> tuple[Any, str]:
    """An image classifier with ``len(label_names)`` outputs, and a line for the run summary on its head.
    ``side``: the processor's output size, which an untrained architecture is built for (ViT's positions)."""

    labels = label_config(label_names, problem_type)
    torch.manual_seed(seed)  # the new head (and random backbones) start the same every run
    if cfg.init == "random":
        config = _random_config(cfg, labels, cache_dir)
        if side and isinstance(getattr(config, "image_size", None), int):
            config.image_size = side
        model = AutoModelForImageClassification.from_config(config)
        note = f"randomly initialised {model.config.model_type}; head {describe_head(model)}"
    else:
        model, note = _pretrained(cfg, labels, cache_dir)
    if type(processor).__name__ == "TimmWrapperImageProcessor":
        model.config.pretrained_cfg = dict(processor.pretrained_cfg)  # the processor plain transformers loads
    return model, note


def plain(node: Any) -> Any:
    """A config node as plain Python (transformers' configs must serialise to JSON)."""

    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def _random_config(cfg: ModelConfig, labels: dict[str, Any], cache_dir: Path) -> Any:

    overrides = dict(plain(cfg.config_overrides) or {})
    if cfg.name_or_path == TIMM_WRAPPER:
        arch = _timm_architecture(cfg)
        config = TimmWrapperConfig(architecture=arch, model_args=dict(overrides.get("model_args") or {}), **labels)
        config.pretrained_cfg = _untrained_cfg(arch)
        return config
    if is_model_type(cfg.name_or_path):
        return AutoConfig.for_model(cfg.name_or_path, **overrides, **labels)
    config = AutoConfig.from_pretrained(resolve(cfg.name_or_path, cache_dir), trust_remote_code=cfg.trust_remote_code)
    config.update({**overrides, **labels})  # a real model's architecture, untrained
    if config.model_type == TIMM_WRAPPER:
        config.num_labels = labels["num_labels"]
    return config


def _pretrained(cfg: ModelConfig, labels: dict[str, Any], cache_dir: Path) -> tuple[Any, str]:
    """Pretrained weights with a head for these labels: a head of another size is replaced (transformers'
    ``ignore_mismatched_sizes``); one of the same size but for other labels is re-initialised too."""

    path = resolve(cfg.name_or_path, cache_dir)
    before = load_part(AutoConfig.from_pretrained, path, cfg, "not a model")
    old = dict(getattr(before, "id2label", None) or {})
    model, info = _load_weights(
        cfg,
        AutoModelForImageClassification,
        path,
        ignore_mismatched_sizes=True,
        output_loading_info=True,
        trust_remote_code=cfg.trust_remote_code,
        **labels,
    )
    head = classifier_of(model)
    name = head[0] if head else "classifier"
    replaced = [k for k in info.get("mismatched_keys", []) if str(k[0] if isinstance(k, tuple) else k).startswith(name)]
    missing = [k for k in info.get("missing_keys", []) if str(k).startswith(name)]
    same = [str(v) for _, v in sorted(old.items())] == [labels["id2label"][i] for i in range(labels["num_labels"])]
    if replaced:
        note = f"new head {describe_head(model)} replaces the pretrained {len(old)}-class head"
        note += " (ignore_mismatched_sizes)"
    elif missing:
        note = f"new head {describe_head(model)} (the checkpoint has none)"
    elif same:
        note = f"head {describe_head(model)} kept: the checkpoint's labels are this dataset's"
    else:
        if head is not None:
            head[1].reset_parameters()
        note = f"new head {describe_head(model)}: the checkpoint's {len(old)} labels are other classes"
    return model, note


def channels_last(model: Any) -> None:
    """A CNN's weights in channels-last layout: its convolutions (oneDNN on CPUs, cuDNN with tensor cores)
    run up to twice as fast, in bf16 above all, and a conv given NCHW input follows its weights. A
    transformer whose only convolution makes its patches is left as it is."""

    if sum(isinstance(m, nn.Conv2d) for m in model.modules()) > 1:
        model.to(memory_format=torch.channels_last)


def float_depthwise_backward(model: Any) -> int:
    """Depthwise convolutions (EfficientNet, MobileNet, ConvNeXt) compute in fp32 while they train under CPU bf16
    autocast: oneDNN's bf16 depthwise backward is much slower than its fp32 one (README: "Convolutions, fast"),
    while its bf16 forward is the faster one, so inference (no grad) keeps bf16. GPUs and fp32 runs are untouched.
    Returns how many convolutions.

    Each such layer's class becomes a subclass of its own (a run-time class swap, on purpose): a wrapper module
    would rename the weights (``conv_dw.weight`` → ``conv_dw.conv.weight``) that checkpoints, plain transformers
    and timm read, and hooks cannot turn autocast off around the convolution itself. The subclass keeps the
    names, the state dict and ``isinstance(·, nn.Conv2d)`` (LoRA, timm) as they were."""

    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and 1 < m.groups == m.in_channels]
    for conv in convs:
        conv.__class__ = _float_backward_class(type(conv))
    return len(convs)


_FLOAT_BACKWARD: dict[Any, type] = {}


def _float_backward_class(base: Any) -> type:
    """``base`` (nn.Conv2d or a subclass, e.g. timm's Conv2dSame) with the fp32 training path in front."""

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


def own_size(model: ModelConfig) -> int | None:
    """A random-init model type that says its image size (ViT: its position embeddings) reads that size."""
    size = dict(model.config_overrides).get("image_size") if model.init == "random" else None
    return int(size) if isinstance(size, int) else None


def check_size(model: Any, size: tuple[int, int], name: str) -> None:
    """A model that reads one input size only (ViT's position embeddings) fails here in one line, not in a batch."""

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
