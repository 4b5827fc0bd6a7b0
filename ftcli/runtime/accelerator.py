"""The Accelerator for a ``hardware`` option: its precision, threads, sharding plugin and process group.

Every command that runs a model (train, eval, predict, export) starts here; nothing here knows what the model is for."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import broadcast_object_list
from omegaconf import OmegaConf

from ftcli.config.errors import FtcliError
from ftcli.config.registry import typed_train_config
from ftcli.config.schemas import HardwareConfig
from ftcli.runtime.installed import check_runtime
from ftcli.runtime.sharding import deepspeed_on_cpu, forget_cpu_sharding, fsdp_plugin, shard_on_cpu


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo); empty where they cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return next((set(line.split(":", 1)[1].split()) for line in text.splitlines() if line.startswith("flags")), set())


def resolve_precision(hw: HardwareConfig) -> tuple[str, str]:
    """``hardware.mixed_precision=auto`` → bf16 autocast where the device computes bf16 natively (CPUs with
    AMX or AVX512-BF16, GPUs from Ampere on, TPUs), fp32 ("no") elsewhere. Returns (precision, why)."""
    if hw.mixed_precision != "auto":
        return str(hw.mixed_precision), "as configured"
    if hw.accelerator == "tpu":
        return "bf16", "TPUs compute in bf16"

    if hw.accelerator == "gpu" or (hw.accelerator == "auto" and torch.cuda.is_available()):
        name = torch.cuda.get_device_name() if torch.cuda.is_available() else "this GPU"
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False):
            return "bf16", f"{name} computes bf16 natively"
        return "no", f"{name} has no native bf16"
    native = sorted({"amx_bf16", "avx512_bf16"} & cpu_flags())
    if native:
        return "bf16", f"this CPU computes bf16 natively ({', '.join(native)})"
    return "no", "this CPU has no native bf16 (AMX or AVX512-BF16)"


def make_accelerator(hw: HardwareConfig, grad_accum: int = 1, log_with: str = "none", project_dir: Any = None) -> Any:
    """An Accelerator for the chosen hardware (precision resolved); a clear error when that hardware is absent."""

    check_runtime(hw)
    cpu = hw.accelerator == "cpu" or (hw.accelerator == "auto" and not torch.cuda.is_available())
    precision = resolve_precision(hw)[0]
    if cpu and precision == "fp16":
        raise FtcliError("hardware.mixed_precision=fp16: not supported on CPU; use bf16 or no")
    if cpu and hw.cpu_threads:
        torch.set_num_threads(hw.cpu_threads)
    trackers = None if log_with == "none" else log_with  # metrics.jsonl stays the source of truth
    if trackers and importlib.util.find_spec(trackers) is None:  # Accelerate would drop it silently
        raise FtcliError(f"trainer.log_with={trackers}: {trackers} is not installed (pip install {trackers})")
    # ftcli's pooled head leaves the backbone's own pooler unused, and strategies may skip layers:
    # DDP must not wait for gradients that never come.
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    fresh_state()
    plugin = None
    if hw.distributed == "fsdp":  # weights, gradients and optimizer state sharded (ftcli/sharding.py)
        plugin = fsdp_plugin(hw)
    accelerator = Accelerator(
        cpu=cpu,
        mixed_precision=precision,
        gradient_accumulation_steps=grad_accum,
        kwargs_handlers=[ddp],
        log_with=trackers,
        project_dir=project_dir,
        fsdp_plugin=None if cpu else plugin,
    )
    if cpu and plugin is not None:
        shard_on_cpu(accelerator, plugin)
    if cpu and hw.distributed == "deepspeed":
        deepspeed_on_cpu(accelerator, hw, grad_accum)
    return accelerator


def fresh_state() -> None:
    """Forget the previous job's precision and gradient-accumulation settings (not the process group).

    Accelerate keeps them in process-wide singletons and refuses an Accelerator that differs; jobs that
    share a process (a sweep's trials under Hydra's basic launcher, tests) may each choose their own.
    There is no public reset: this uses the one Accelerate's own tests use."""

    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    forget_cpu_sharding()


def inference_batch_size(size: int | None, device: Any) -> int:
    """An explicit size, else one that suits the device: on CPUs a batch's activations should stay in
    cache (README, Performance: how the batch size was chosen); GPUs want more rows."""

    return size or (32 if torch.device(device).type == "cpu" else 128)


def share_config(accelerator: Any, cfg: Any) -> Any:
    """Rank 0's resolved config on every rank (ranks composed apart may disagree on the run dir)."""
    if accelerator.num_processes == 1:
        return cfg

    text = [OmegaConf.to_yaml(cfg, resolve=True) if accelerator.is_main_process else None]
    broadcast_object_list(text, from_process=0)
    return typed_train_config(OmegaConf.create(text[0]))


def end(accelerator: Any) -> None:
    """Wait for every process and finish trackers. The process group is left by the caller once the
    DDP model is freed (:func:`leave_process_group`): destroying it first hangs a gloo worker."""
    accelerator.wait_for_everyone()
    for tracker in accelerator.trackers:
        tracker.finish()


def leave_process_group() -> None:
    """After a run returned (its DDP model freed): leave the group, or the worker aborts at exit."""

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
