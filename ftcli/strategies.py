"""What trains and how: freezing, parameter groups, and the penalty added to the loss."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ftcli.config import StrategyConfig

NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "ln_1.weight", "ln_2.weight", "ln_f.weight")


def backbone_of(model: nn.Module) -> nn.Module:
    """The pretrained encoder inside a classifier (transformers' ``base_model``)."""
    return getattr(model, "base_model", None) or model


class Strategy:
    """Full fine-tuning and feature extraction; richer strategies extend this class."""

    def __init__(self, cfg: StrategyConfig) -> None:
        self.cfg = cfg

    @property
    def frozen_backbone(self) -> bool:
        return self.cfg.freeze == "backbone"

    def setup(self, model: nn.Module) -> None:
        """Freeze what must not train (before the optimizer is built)."""
        if self.frozen_backbone:
            backbone_of(model).requires_grad_(False)

    def param_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        """AdamW groups: no weight decay on biases and norms (BERT's recipe)."""
        decay, no_decay = [], []
        for name, p in model.named_parameters():
            if p.requires_grad:
                (no_decay if name.endswith(NO_DECAY) else decay).append(p)
        groups = [{"params": decay, "weight_decay": self.cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        return [g for g in groups if g["params"]]

    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        """The regulariser λ·Ω(θ − θ0) added to the loss; none for plain strategies."""
        return None

    def on_epoch_start(self, model: nn.Module, epoch: int) -> None:
        """Hook for schedules over epochs (gradual unfreezing)."""


def build_strategy(cfg: StrategyConfig) -> Strategy:
    return Strategy(cfg)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; shared tensors counted once."""
    seen: set[int] = set()
    trainable = total = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total
