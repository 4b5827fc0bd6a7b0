"""What trains and how: freezing, parameter groups, and the penalty added to the loss.

Every strategy sees the model's parameters as *groups*, top down: the head (modules outside the pretrained
backbone), the backbone's post-encoder modules (pooler, final norm; trained with the head), encoder layers
L-1 … 0, and the embeddings. Layer names differ by architecture; :func:`depth_map` reads them all through
``models/architectures.py``. A parameter's *depth* is 0 for embeddings, i+1 for layer i, L+1 for post and head.
BatchNorm layers whose parameters are all frozen stay in eval mode: their running statistics are not re-estimated.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ftcli.config.schemas import StrategyConfig
from ftcli.models.architectures import (
    NO_DECAY,
    NO_DECAY_TOKENS,
    Roles,
    depth_map,
    is_head,
    pin_frozen_norms,
    stop_at_frozen_encoders,
)


class Strategy:
    """Full fine-tuning and feature extraction; the subclasses below choose what trains.

    A subclass is registered beside its schema in ``strategies/__init__.py`` (``STRATEGIES``)."""

    def __init__(self, cfg: StrategyConfig, roles: Roles) -> None:
        self.cfg = cfg
        self.roles = roles  # which parameters are the pretrained backbone, and which never train (the task's)
        self.theta0: list[tuple[nn.Parameter, torch.Tensor]] = []  # l2sp anchors (pretrained, trainable)
        self.new_params: list[nn.Parameter] = []  # l2sp: plain L2
        self.notes: list[str] = []  # what the run summary should say about this strategy on this model
        self.wise0: list[tuple[nn.Parameter, torch.Tensor]] = []  # wise_alpha: θ0 of what may train

    @property
    def frozen_backbone(self) -> bool:
        return self.cfg.freeze == "backbone"

    # ---- what trains -----------------------------------------------------------------------
    def trains(self, name: str, depth: int, layers: int, head: bool) -> bool:
        """Whether a parameter trains at the start; full fine-tuning: all, feature extraction: the head."""
        return head or not self.frozen_backbone

    def ever_trains(self, name: str, depth: int, layers: int, head: bool) -> bool:
        """Whether a parameter trains at some point (it must be in the optimizer from the start)."""
        return self.trains(name, depth, layers, head)

    def setup(self, model: nn.Module) -> None:
        """Freeze what must not train (before the optimizer is built); keep θ0 for l2sp."""
        self._apply(model, self.trains)
        if getattr(self.cfg, "wise_alpha", None) is not None:
            self.keep_wise_anchor(model)
        if self.cfg.regularization == "l2sp":
            depth, layers = depth_map(model, self.roles)
            fixed = self.roles.fixed
            for name, p in model.named_parameters():
                if name.startswith(fixed) or not self.ever_trains(
                    name, depth[name], layers, is_head(model, self.roles, name)
                ):
                    continue  # a weight that never trains cannot move: no anchor needed
                if self.is_new(model, name):
                    self.new_params.append(p)
                else:
                    # θ0 only for trainable pretrained weights, in their dtype (bf16 would round
                    # away the very differences the penalty measures); moved to p's device on first use.
                    self.theta0.append((p, p.detach().clone()))

    def is_new(self, model: nn.Module, name: str) -> bool:
        """A parameter without a pretrained value: the head (and LoRA's matrices)."""
        return is_head(model, self.roles, name)

    def keep_wise_anchor(self, model: nn.Module) -> None:
        """θ0 for WiSE-FT: every parameter that may train, as it is now (after the task built its head).
        LoRA's A matrices are left out: with B0 = 0, interpolating B alone scales the update B·A by α."""
        depth, layers = depth_map(model, self.roles)
        fixed = self.roles.fixed
        for name, p in model.named_parameters():
            trains = self.ever_trains(name, depth[name], layers, is_head(model, self.roles, name))
            if trains and not name.startswith(fixed) and "lora_A" not in name:
                self.wise0.append((p, p.detach().clone()))

    @contextlib.contextmanager
    def interpolated(self) -> Iterator[None]:
        """Within: the weights are (1 − α)·θ0 + α·θ (WiSE-FT, strategy.wise_alpha); restored after."""
        if not self.wise0:
            yield
            return
        alpha = float(self.cfg.wise_alpha or 0.0)
        trained = [p.detach().clone() for p, _ in self.wise0]
        with torch.no_grad():
            for p, p0 in self.wise0:
                p.lerp_(p0.to(p.device, p.dtype), 1.0 - alpha)
        try:
            yield
        finally:
            with torch.no_grad():
                for (p, _), t in zip(self.wise0, trained, strict=True):
                    p.copy_(t)

    def _apply(self, model: nn.Module, rule: Any) -> bool:
        """Set requires_grad by ``rule``; True when any parameter changed."""
        depth, layers = depth_map(model, self.roles)
        changed, fixed = False, self.roles.fixed
        for name, p in model.named_parameters():
            want = bool(rule(name, depth[name], layers, is_head(model, self.roles, name))) and not name.startswith(
                fixed
            )
            changed |= want != p.requires_grad
            p.requires_grad_(want)
        pin_frozen_norms(model)
        stop_at_frozen_encoders(model)
        return changed

    def lr_scale(self, depth: int, layers: int) -> float:
        """Layer-wise lr decay: the top layer and the head 1, each layer below × decay, embeddings last."""
        return float(self.cfg.layer_lr_decay ** max(0, layers - depth))

    def param_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        """AdamW groups: no weight decay on biases and norms (BERT's recipe); one lr per layer under LLRD.

        Parameters that start frozen but train later (gradual unfreezing, LP-FT) are included:
        AdamW skips a parameter whose grad is None, so they wait untouched until unfrozen.
        """
        depth, layers = depth_map(model, self.roles)
        wd = 0.0 if self.cfg.regularization == "l2sp" else self.cfg.weight_decay  # l2sp replaces decay
        groups: dict[tuple[float, bool], list[nn.Parameter]] = {}
        fixed = self.roles.fixed
        for name, p in model.named_parameters():
            head = is_head(model, self.roles, name)
            if fixed and name.startswith(fixed):
                continue
            if not (p.requires_grad or self.ever_trains(name, depth.get(name, 0), layers, head)):
                continue
            lr = self.group_lr(depth.get(name, layers + 1), layers, head)
            no_decay = p.ndim <= 1 or name.endswith(NO_DECAY) or name.endswith(NO_DECAY_TOKENS)
            groups.setdefault((lr, no_decay), []).append(p)
        return [
            {"params": ps, "lr": lr, "weight_decay": 0.0 if no_decay else wd}
            for (lr, no_decay), ps in sorted(groups.items(), key=lambda kv: (-kv[0][0], kv[0][1]))
        ]

    def group_lr(self, depth: int, layers: int, head: bool) -> float:
        return float(self.cfg.lr) * self.lr_scale(depth, layers)

    # ---- the loss and schedules ------------------------------------------------------------
    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        """λ/2·‖θ − θ0‖² over trainable pretrained weights + λ/2·‖θ‖² over new ones (l2sp), else None."""
        if self.cfg.regularization != "l2sp" or not (self.theta0 or self.new_params):
            return None
        total: torch.Tensor | None = None
        for i, (p, p0) in enumerate(self.theta0):
            if p0.device != p.device:
                p0 = p0.to(p.device)
                self.theta0[i] = (p, p0)
            if p.requires_grad:
                term = (p - p0).pow(2).sum()
                total = term if total is None else total + term
        for p in self.new_params:
            if p.requires_grad:
                term = p.pow(2).sum()
                total = term if total is None else total + term
        if total is None:
            return None
        if hasattr(total, "full_tensor"):  # sharded (FSDP): each process summed its shards; add them up
            total = total.full_tensor()
        return 0.5 * self.cfg.reg_lambda * total

    def rebind(self, new: Callable[[nn.Parameter], nn.Parameter], like: Callable[[torch.Tensor, Any], Any]) -> None:
        """Sharding replaced the model's parameters (``new(old)``): the penalty follows them, θ0 laid out
        like each (``like(θ0, new parameter)``)."""
        self.theta0 = [(new(p), like(p0, new(p))) for p, p0 in self.theta0]
        self.new_params = [new(p) for p in self.new_params]

    def on_step(self, model: nn.Module, step: int, steps_per_epoch: int) -> bool:
        """Schedules: called before training (at the start or resumed step) and after each optimizer
        step; True when the set of trainable parameters changed."""
        return False

    def model_to_save(self, model: nn.Module) -> nn.Module:
        """The module a checkpoint holds (LoRA: a merged copy); the model itself for most strategies."""
        return model

    def after_save(self, model: nn.Module, folder: Path) -> None:
        """Extra files beside a written checkpoint (LoRA: peft's adapter files when asked)."""


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
