"""Sharded training (PyTorch FSDP2 through Accelerate's plugin), and the weights it leaves in pieces.

Under ``hardware.distributed=fsdp`` every process holds a shard of each weight, gradient and optimizer
state; a layer's full weights exist only while it runs. What follows from that is kept here:

* the accelerator: Accelerate's FSDP plugin (FSDP2; ``FULL_SHARD`` frees gathered weights after each
  layer's forward, ``SHARD_GRAD_OP`` keeps them until backward). Accelerate runs FSDP on GPUs only; on
  CPU processes (gloo) the same plugin is put in place by :func:`shard_on_cpu`, which is how
  ``hardware=cpu_fsdp`` checks sharded training anywhere. DeepSpeed ZeRO (stages 1-2) runs on CPU
  processes the same way (:func:`deepspeed_on_cpu`); its weights stay whole on every process, so its
  checkpoints are written as with DDP;
* :func:`prepare`: each transformer layer becomes its own shard unit, the forward runs under the same
  autocast as in one process, and a strategy's L2-SP anchors follow the parameters they anchor (FSDP
  replaces them with sharded ones);
* checkpoints: :class:`Gathered` collects the full weights once, on the main process, into a plain copy
  of the model that ``save_pretrained`` writes like any other (every process must call it);
* resumable state: Accelerate's ``save_state`` writes each process's shard (torch.distributed.checkpoint);
  :func:`loading_state` makes ``load_state`` restore exactly the optimizer state that was saved.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import MethodType
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from accelerate import FullyShardedDataParallelPlugin
from accelerate.state import PartialState
from accelerate.utils import (
    DeepSpeedPlugin,
    DistributedType,
    convert_outputs_to_fp32,
    get_mixed_precision_context_manager,
)
from accelerate.utils.fsdp_utils import fsdp2_canonicalize_names
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.fsdp import MixedPrecisionPolicy
from torch.distributed.tensor import DTensor, distribute_tensor

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import HardwareConfig


def fsdp_plugin(hw: HardwareConfig) -> Any:
    """Accelerate's FSDP2 plugin for ``hardware``: full sharding unless ``fsdp_sharding`` says otherwise."""

    return FullyShardedDataParallelPlugin(
        fsdp_version=2,
        reshard_after_forward=hw.fsdp_sharding == "FULL_SHARD",
        # one shard unit per transformer layer; the classes are named in prepare(), once the model exists
        auto_wrap_policy="transformer_based_wrap",
        transformer_cls_names_to_wrap=[],
        state_dict_type="SHARDED_STATE_DICT",  # resumable state: every process writes its own shard
        # weights gathered and gradients reduced in fp32; bf16 is the same autocast as in one process (Accelerate
        # would gather bf16 copies): the numbers a sharded run reports are those its fp32 checkpoint gives
        mixed_precision_policy=MixedPrecisionPolicy(),
        cpu_ram_efficient_loading=False,  # every process builds the model; it is sharded at prepare
    )


def shard_on_cpu(accelerator: Any, plugin: Any) -> None:
    """Make a CPU accelerator (gloo processes) shard with ``plugin``.

    Accelerate 1.15 takes the FSDP plugin only when processes drive accelerators and ignores it on CPU
    (``MULTI_CPU``). FSDP2 itself runs on gloo, and every FSDP code path in Accelerate (prepare,
    gradient sync, clipping, save_state/load_state) reads only the state's ``distributed_type`` and
    ``fsdp_plugin``: setting those is all it takes. The process-wide state gets the type too, as Accelerate
    does on GPUs (each new ``AcceleratorState`` copies it); :func:`forget_cpu_sharding` undoes that."""

    state = accelerator.state
    if state.distributed_type != DistributedType.MULTI_CPU:
        raise FtcliError(
            "hardware.distributed=fsdp on CPU needs worker processes: run it with ftcli train (which starts "
            "them) or under torchrun"
        )
    state.fsdp_plugin = plugin
    state.distributed_type = DistributedType.FSDP
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP


def deepspeed_on_cpu(accelerator: Any, hw: HardwareConfig, grad_accum: int) -> None:
    """Make a CPU accelerator (gloo processes) run DeepSpeed ZeRO (stages 1-2).

    As with FSDP, Accelerate takes DeepSpeed only for accelerators; DeepSpeed itself runs on CPU (its CPU
    accelerator, over the gloo group Accelerate started) with a torch optimizer. Its own fused ops are
    compiled on first use, which takes minutes on a small machine: ftcli never asks for them."""

    state = accelerator.state
    if state.distributed_type != DistributedType.MULTI_CPU:
        raise FtcliError(
            "hardware.distributed=deepspeed on CPU needs worker processes: run it with ftcli train (which starts "
            "them) or under torchrun"
        )
    plugin = DeepSpeedPlugin(zero_stage=hw.zero_stage, gradient_accumulation_steps=grad_accum)
    plugin.set_mixed_precision(state.mixed_precision)
    plugin.select(_from_accelerator_state=True)
    state.deepspeed_plugins = plugin
    state.distributed_type = DistributedType.DEEPSPEED
    state._mixed_precision = "no"  # DeepSpeed casts the model itself (its bf16 section), as Accelerate sets up
    accelerator.deepspeed_engine_wrapped = None
    PartialState._shared_state["distributed_type"] = DistributedType.DEEPSPEED


def forget_cpu_sharding() -> None:
    """Before the next job's accelerator in this process: CPU processes are plain ``MULTI_CPU`` again."""

    shared = PartialState._shared_state
    promoted = (DistributedType.FSDP, DistributedType.DEEPSPEED)
    if shared.get("distributed_type") in promoted and shared.get("backend") == "gloo":
        shared["distributed_type"] = DistributedType.MULTI_CPU


def is_sharded(accelerator: Any) -> bool:
    return bool(getattr(accelerator, "is_fsdp2", False))


def layer_classes(model: Any) -> list[str]:
    """The classes to shard one by one: transformers' ``_no_split_modules`` of the model and its backbone
    (BertLayer …), those present, minus any that holds the input embeddings (Accelerate shards the
    embedding table on its own, and a weight may be in only one shard unit)."""
    present = {type(m).__name__: m for m in model.modules()}
    named = {n for m in model.modules() for n in (getattr(m, "_no_split_modules", None) or [])}
    embeddings = getattr(model, "get_input_embeddings", lambda: None)()
    holds = {n for n in named if n in present and any(s is embeddings for s in present[n].modules())}
    return sorted(n for n in named if n in present and n not in holds)


class Whole:
    """An unsharded model (one process, DDP): checkpoints read it as it is, on the main process."""

    collective = False

    def __init__(self, model: Any) -> None:
        self.model = model

    def gather(self) -> Any:
        return self.model


class Gathered:
    """A sharded model's full weights, gathered on the main process into a plain copy of the model.

    ``blueprint`` is that copy with its parameters on the meta device (no memory), taken before the model
    was sharded; :meth:`gather` fills it with the gathered weights. ``trained`` is what was sharded (the
    model, or the head alone on cached features), ``whole`` the full model that holds it."""

    collective = True

    def __init__(self, accelerator: Any, blueprint: Any, whole: Any, trained: Any) -> None:
        self.accelerator, self.blueprint, self.whole, self.trained = accelerator, blueprint, whole, trained

    def gather(self) -> Any:
        """Every process must call this; the main process gets the model with full weights (on the CPU), the
        others None."""

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)  # {} on every process but rank 0
        full = get_model_state_dict(self.trained, options=options)
        if not self.accelerator.is_main_process:
            return None
        names = _names_in(self.whole, self.trained)
        # what was not sharded (a frozen backbone beside a head trained on its features) is read as it is
        state = {k: v for k, v in self.whole.state_dict().items() if not isinstance(v, DTensor)}
        state.update({names.get(k, k): v for k, v in full.items()})
        model = copy.deepcopy(self.blueprint)
        model.load_state_dict(state, strict=True, assign=True)
        if hasattr(model, "tie_weights"):  # assign= gave tied weights a tensor each
            model.tie_weights()
        return model


def _names_in(whole: Any, part: Any) -> dict[str, str]:
    """{name in ``part``: name in ``whole``} for every parameter and buffer ``part`` shares with ``whole``."""

    own = {id(t): n for n, t in [*whole.named_parameters(), *whole.named_buffers()]}
    shared = {n: own[id(t)] for n, t in [*part.named_parameters(), *part.named_buffers()] if id(t) in own}
    return dict(zip(fsdp2_canonicalize_names(shared).keys(), shared.values(), strict=True))


def meta_copy(model: Any) -> Any:
    """A deep copy of ``model`` whose parameters live on the meta device (buffers, small, are copied)."""

    memo: dict[int, Any] = {
        id(p): nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
        for p in model.parameters()
    }
    return copy.deepcopy(model, memo)


def prepare(accelerator: Any, model: Any, optimizer: Any, train: Any, whole: Any, strategy: Any) -> tuple[Any, ...]:
    """``accelerator.prepare(model, optimizer, train)`` → (model, optimizer, train, weights), where
    ``weights`` is what checkpoints read the full model from (:class:`Whole` or :class:`Gathered`).

    ``model`` is what trains (``whole``, or the head alone); under FSDP it is sharded in place, so
    ``whole`` then holds sharded parameters too."""
    if not is_sharded(accelerator):
        model, optimizer, train = accelerator.prepare(model, optimizer, train)
        return model, optimizer, train, Whole(whole)
    accelerator.state.fsdp_plugin.transformer_cls_names_to_wrap = layer_classes(model)
    blueprint = meta_copy(whole)
    before = {id(p): n for n, p in whole.named_parameters()}
    model, optimizer, train = accelerator.prepare(model, optimizer, train)
    if accelerator.native_amp:
        autocast(accelerator, model)
    after = dict(whole.named_parameters())
    strategy.rebind(lambda p: after[before[id(p)]], shard_like)
    return model, optimizer, train, Gathered(accelerator, blueprint, whole, model)


def autocast(accelerator: Any, model: Any) -> None:
    """Run ``model``'s forward under the accelerator's autocast, as ``prepare`` does for an unsharded model
    (Accelerate's FSDP2 path leaves mixed precision to bf16 copies of the weights, which ftcli does not use)."""

    context = get_mixed_precision_context_manager(accelerator.native_amp, accelerator.autocast_handler)
    model._original_forward = model.forward
    model.forward = MethodType(context(model.forward.__func__), model)
    model.forward = MethodType(convert_outputs_to_fp32(model.forward.__func__), model)


@contextmanager
def loading_state(accelerator: Any, folder: Path) -> Iterator[None]:
    """Around ``accelerator.load_state(folder)``: under FSDP, the optimizer state it loads is exactly the state
    that was saved.

    A parameter gets optimizer state at its first gradient; some never get one (the pooler ftcli's pooled
    head leaves unused) or not yet (layers gradual unfreezing has not reached). torch.distributed.checkpoint
    loads only into state that exists (when there is none it makes some for every trainable parameter) and
    only for parameters that require gradients, refusing one that has none saved. So, while it loads, the
    parameters the checkpoint holds state for get an empty state (a step with zero gradients at lr 0: no
    weight moves) and are the only ones that require gradients; then every parameter is as it was."""

    if not is_sharded(accelerator):
        yield
        return
    prefix = "optimizer.state."
    saved = dcp.FileSystemReader(str(folder / "optimizer_0")).read_metadata().state_dict_metadata
    stated = {key[len(prefix) :].rsplit(".", 1)[0] for key in saved if key.startswith(prefix)}
    named = fsdp2_canonicalize_names(dict(accelerator._models[0].named_parameters()))
    chosen = {id(p) for name, p in named.items() if name in stated}
    optimizer = accelerator._optimizers[0].optimizer  # the torch optimizer inside Accelerate's wrapper
    lrs = [group["lr"] for group in optimizer.param_groups]
    for group in optimizer.param_groups:
        group["lr"] = 0.0
        for p in group["params"]:
            p.grad = torch.zeros_like(p) if id(p) in chosen else None
    optimizer.step()
    for group, lr in zip(optimizer.param_groups, lrs, strict=True):
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    trains = {id(p): p.requires_grad for p in named.values()}
    for p in named.values():
        p.requires_grad_(id(p) in chosen)
    try:
        yield
    finally:
        for p in named.values():
            p.requires_grad_(trains[id(p)])


def shard_like(value: Any, param: Any) -> Any:
    """``value`` (a full tensor, the same on every process) laid out like the sharded ``param``."""

    if not isinstance(param, DTensor):
        return value
    return distribute_tensor(value.to(param.device), param.device_mesh, param.placements)
