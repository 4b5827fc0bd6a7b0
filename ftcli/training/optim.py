"""The optimizer and learning-rate schedule a strategy config names (``strategy.optimizer``, ``strategy.schedule``)."""

from __future__ import annotations

import math
from typing import Any

import torch

from ftcli.config.schemas import StrategyConfig


def build_optimizer(cfg: StrategyConfig, groups: list[dict[str, Any]], device: torch.device) -> torch.optim.Optimizer:
    """AdamW (fused: one kernel for all parameters, on CPU and CUDA) or SGD with momentum, over the
    strategy's parameter groups (their own lr and weight decay)."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    fused = device.type in ("cpu", "cuda") or None  # XLA and others take the default implementation
    return torch.optim.AdamW(groups, lr=cfg.lr, fused=fused)


def warmup_steps(ratio: float, total: int) -> int:
    """Warm-up steps for ``strategy.warmup_ratio`` of ``total`` steps, rounded up as transformers' Trainer rounds it
    (``TrainingArguments.get_warmup_steps``): 6% of 25 steps is 2, not 1."""
    return math.ceil(total * ratio)


def schedule_factor(kind: str, warmup: int, total: int) -> Any:
    """The lr multiplier at each optimizer step: linear warm-up to the peak over ``warmup`` steps, then
    linear decay to 0 at ``total`` (HF's default), half a cosine to 0, or constant."""

    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        if kind == "cosine":
            return max(0.0, 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))
        if kind == "constant":
            return 1.0
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def build_schedule(optimizer: torch.optim.Optimizer, kind: str, warmup: int, total: int) -> Any:
    """A LambdaLR over :func:`schedule_factor`. Built on torch: importing transformers.optimization
    pulls in peft and transformers' Trainer, which takes longer than a cached feature-extraction run."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule_factor(kind, warmup, total))
