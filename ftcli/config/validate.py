"""Validation of a composed config: ranges, choices and combinations, every bad key named in one line; Hydra's
composition errors turned into one line too."""

from __future__ import annotations

import re
import typing
from dataclasses import fields, is_dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from ftcli.config.errors import FtcliError, did_you_mean, first_line
from ftcli.config.registry import schema_of
from ftcli.config.schemas import (
    ChatConfig,
    EvalConfig,
    ExportConfig,
    GradualUnfreezeConfig,
    LoraConfig,
    LpFtConfig,
    PredictConfig,
    TaskConfig,
    TrainConfig,
)
from ftcli.config.tasks.causal_lm import CausalLMConfig


def _check_value(key: str, value: Any, meta: dict[str, Any]) -> str | None:
    if value is None:
        return None
    if "choices" in meta and value not in meta["choices"]:
        hint = did_you_mean(str(value), meta["choices"])
        return f"{key}={value}: must be one of {', '.join(meta['choices'])}{hint}"
    bounds = (
        ("gt", ">", lambda v, b: v > b),
        ("ge", ">=", lambda v, b: v >= b),
        ("lt", "<", lambda v, b: v < b),
        ("le", "<=", lambda v, b: v <= b),
    )
    for name, sym, ok in bounds:
        if name in meta and not ok(value, meta[name]):
            return f"{key}={value}: must be {sym} {meta[name]}"
    return None


UNRESOLVED = "\0"  # marks an interpolation that failed to resolve (said only when nothing else is wrong)


def _walk(node: Any, schema: Any, prefix: str, errors: list[str]) -> None:
    known = [f.name for f in fields(schema)]
    for extra in (k for k in node if k not in known):  # `+key=value` gets past Hydra's struct check
        hint = did_you_mean(str(extra), known)
        errors.append(f"unknown key '{prefix}{extra}'{hint}; known keys: {', '.join(known)}")
    for f in fields(schema):
        key = f"{prefix}{f.name}"
        if OmegaConf.is_missing(node, f.name):
            errors.append(f"{key} is required but not set (add {key}=...)")
            continue
        try:
            value = node[f.name]
        except InterpolationResolutionError as e:  # e.g. ${.tasks.${.task}...} of a task that does not exist
            errors.append(f"{UNRESOLVED}{key}: {first_line(e)}")
            continue
        sub = OmegaConf.get_type(node, f.name) if isinstance(value, DictConfig) else None
        if isinstance(value, DictConfig) and sub is not None and is_dataclass(sub):
            _walk(value, sub, key + ".", errors)
            continue
        message = _check_value(key, value, dict(f.metadata))
        if message:
            errors.append(message)


def validate(cfg: DictConfig) -> None:
    """Check ranges and choices of a composed config; raise one FtcliError naming every bad key."""
    errors: list[str] = []
    schema = OmegaConf.get_type(cfg)
    if schema is None or not is_dataclass(schema):
        raise FtcliError("internal: config has no schema")
    _walk(cfg, schema, "", errors)
    if hasattr(cfg, "trainer") and cfg.trainer.max_steps == 0:
        errors.append("trainer.max_steps=0: use -1 (epochs decide) or a positive number of steps")
    if hasattr(cfg, "trainer") and hasattr(cfg, "task") and cfg.trainer.metric is not None:
        allowed = schema_of("task", cfg.task).metrics
        if cfg.trainer.metric not in allowed:
            hint = did_you_mean(str(cfg.trainer.metric), allowed)
            errors.append(
                f"trainer.metric={cfg.trainer.metric}: task {cfg.task.name} reports {', '.join(allowed)}{hint}"
            )
    if hasattr(cfg, "strategy"):
        errors += _strategy_errors(cfg.strategy)
    if hasattr(cfg, "dataset"):
        errors += _dataset_errors(cfg.dataset)
    if hasattr(cfg, "dataset") and cfg.get("task") is not None:  # eval: null unless a dataset picks one
        errors += _inputs_errors(cfg.dataset, schema_of("task", cfg.task))
    if hasattr(cfg, "hardware"):
        errors += _hardware_errors(cfg.hardware)
    if hasattr(cfg, "strategy") and hasattr(cfg, "hardware"):
        errors += _strategy_on_hardware_errors(cfg.strategy, cfg.hardware)
    if hasattr(cfg, "model") and cfg.model.get("quantization", "none") != "none":
        errors += _quantization_errors(cfg)
    resolved = [e for e in errors if not e.startswith(UNRESOLVED)]  # a bad value explains its interpolations
    errors = resolved or [e.removeprefix(UNRESOLVED) for e in errors]
    if errors:
        raise FtcliError("; ".join(errors))


def _strategy_errors(st: DictConfig) -> list[str]:
    """Keys that only mean something for another choice: said, not silently ignored."""
    if st.optimizer == "sgd":
        return ["strategy.nesterov=true needs strategy.momentum > 0"] if st.nesterov and st.momentum == 0 else []
    return ["strategy.nesterov=true: only strategy.optimizer=sgd has Nesterov momentum"] if st.nesterov else []


def _dataset_errors(ds: DictConfig) -> list[str]:
    """The augmentation ranges: two numbers, low to high, in their domain."""
    errors = []
    for key, top in (("crop_scale", 1.0), ("crop_ratio", None), ("speed", None)):
        pair = list(ds.get(key) or [])
        if len(pair) != 2 or not all(isinstance(v, (int, float)) for v in pair) or not 0 < pair[0] <= pair[1]:
            errors.append(f"dataset.{key}={pair}: must be [low, high] with 0 < low <= high")
        elif top is not None and pair[1] > top:
            errors.append(f"dataset.{key}={pair}: high must be <= {top}")
    for key in ("gain_db", "snr_db"):
        if ds.get(key) is None and key == "snr_db":
            continue
        pair = list(ds.get(key) or [])
        if len(pair) != 2 or not all(isinstance(v, (int, float)) for v in pair) or pair[0] > pair[1]:
            errors.append(f"dataset.{key}={pair}: must be [low, high] with low <= high (decibels)")
    return errors


def _inputs_errors(ds: DictConfig, task: type[TaskConfig]) -> list[str]:
    """Image or audio data under a task that reads something else: say which tasks (and dataset options) read them."""
    images = "task=image_classification (dataset=imagefolder, image_files or image_hub choose it)"
    audio = "task=audio_classification or speech_recognition (dataset=audiofolder, audio_files or audio_hub)"
    if task.inputs != "image":
        if ds.get("source") == "imagefolder":
            return [f"dataset.source=imagefolder: an image folder needs {images}"]
        if ds.get("image_column"):
            return [
                f"dataset.image_column={ds.image_column}: images need {images}; task={task.option} reads {task.inputs}"
            ]
    if task.inputs != "audio":
        if ds.get("source") == "audiofolder":
            return [f"dataset.source=audiofolder: an audio folder needs {audio}"]
        if ds.get("audio_column"):
            return [
                f"dataset.audio_column={ds.audio_column}: audio needs {audio}; task={task.option} reads {task.inputs}"
            ]
    return []


def _strategy_on_hardware_errors(st: DictConfig, hw: DictConfig) -> list[str]:
    """A strategy that cannot work where it would run."""
    if hw.distributed == "deepspeed" and schema_of("strategy", st) in (GradualUnfreezeConfig, LpFtConfig):
        return [  # DeepSpeed's ZeRO optimizer is built from the weights that train at the start, once
            f"strategy={st.name} with hardware.distributed=deepspeed: DeepSpeed gives optimizer state only to the "
            "weights that train at the start, so the ones unfrozen later would never move; use fsdp or ddp"
        ]
    return []


def _quantization_errors(cfg: DictConfig) -> list[str]:
    """QLoRA: quantised weights only train through LoRA adapters, on a causal LM, on a CUDA GPU."""
    key = f"model.quantization={cfg.model.quantization}"
    if cfg.hardware.accelerator in ("cpu", "tpu"):
        return [
            f"{key}: bitsandbytes quantisation (QLoRA) needs a CUDA GPU, "
            f"not hardware.accelerator={cfg.hardware.accelerator}"
        ]
    if schema_of("strategy", cfg.strategy) is not LoraConfig:
        return [f"{key}: quantised weights cannot train themselves; use strategy=lora (QLoRA)"]
    if schema_of("task", cfg.task) is not CausalLMConfig:
        return [f"{key}: only task=causal_lm loads quantised weights"]
    return []


def _hardware_errors(hw: DictConfig) -> list[str]:
    """Combinations of hardware keys that cannot run (each key is fine on its own)."""
    errors = []
    if hw.machine_rank >= hw.num_machines:
        errors.append(f"hardware.machine_rank={hw.machine_rank}: must be < num_machines ({hw.num_machines})")
    if hw.accelerator == "cpu" and hw.distributed not in ("no", "ddp", "fsdp", "deepspeed"):
        errors.append(f"hardware.distributed={hw.distributed}: runs on TPUs (hardware=tpu); on CPU: ddp/fsdp/deepspeed")
    if hw.distributed == "deepspeed" and hw.zero_stage == 3:  # weights partitioned from the model's construction on
        errors.append(
            "hardware.zero_stage=3: ftcli builds models outside DeepSpeed's zero.Init and cannot gather ZeRO-3's "
            "partitioned weights into checkpoints; for sharded weights use hardware=fsdp (cpu_fsdp), else zero_stage<=2"
        )
    if hw.num_processes == 0 and hw.accelerator == "cpu":
        errors.append("hardware.num_processes=0 means one per GPU; on CPU give a number")
    return errors


def explain(exc: BaseException, config_name: str = "train") -> str:
    """Turn Hydra/OmegaConf composition errors into one line: key, bad value, what is allowed."""
    from hydra.errors import MissingConfigException, OverrideParseException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in chain:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    for err in chain:
        if isinstance(err, OverrideParseException):  # Hydra's grammar: ASCII letters, digits and $%*+-./:?@\\_| only
            key, _, value = err.override.partition("=")
            quoted = value.replace("'", "\\'")
            return f"{err.override}: Hydra cannot read this value unquoted; quote it: \"{key}='{quoted}'\""
        if isinstance(err, MissingConfigException) and err.options is not None:
            group = (err.missing_cfg_file or "").rsplit("/", 1)
            name = group[-1]
            options = [o for o in err.options if not o.endswith("schema")]
            hint = did_you_mean(name, options)
            where = group[0] if len(group) == 2 else "config"
            return f"{where}={name}: no such option; choose one of {', '.join(options)}{hint}"
    for err in chain:
        if isinstance(err, ConfigKeyError | ConfigAttributeError | ValidationError):
            key = err.full_key or ""
            if isinstance(err, ConfigKeyError | ConfigAttributeError):
                allowed = _keys_beside(key, config_name)
                node_type = getattr(err, "object_type", None)  # the node's own schema (a strategy subclass)
                if isinstance(node_type, type) and is_dataclass(node_type):
                    allowed = [f.name for f in fields(node_type)]
                leaf = key.rsplit(".", 1)[-1]
                hint = did_you_mean(leaf, allowed)
                listing = f"; known keys: {', '.join(allowed)}" if allowed else ""
                return f"unknown key '{key}'{hint}{listing}"
            msg = str(err.msg).splitlines()[0]
            return f"{key}: {msg}" if key else msg
    text = " ".join(str(exc).split())
    text = re.sub(r"\s*Config search path:.*", "", text)
    return text


def _keys_beside(full_key: str, config_name: str = "train") -> list[str]:
    """The keys a schema allows next to ``full_key`` (for 'did you mean')."""
    roots = {"eval": EvalConfig, "predict": PredictConfig, "export": ExportConfig, "chat": ChatConfig}
    node: Any = roots.get(config_name, TrainConfig)
    for part in full_key.split(".")[:-1]:
        hints = typing.get_type_hints(node) if is_dataclass(node) else {}
        if part not in hints:
            return []
        node = hints[part]
    return [f.name for f in fields(node)] if is_dataclass(node) else []
