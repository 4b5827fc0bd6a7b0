"""Strategies that freeze a fixed part of the model: the top layers train (partial), or the biases (BitFit)."""

from __future__ import annotations

from torch import nn

from ftcli.config.schemas import BitFitConfig, PartialConfig
from ftcli.models.architectures import depth_map
from ftcli.training.strategies.base import Strategy


class PartialStrategy(Strategy):
    """The top ``unfreeze_layers`` encoder layers and the head (with pooler / final norm) train."""

    cfg: PartialConfig

    def trains(self, name: str, depth: int, layers: int, head: bool) -> bool:
        return head or depth > layers - self.cfg.unfreeze_layers

    def setup(self, model: nn.Module) -> None:
        k, layers = self.cfg.unfreeze_layers, depth_map(model, self.roles)[1]
        if k > layers:
            self.notes.append(f"strategy.unfreeze_layers={k} > the model's {layers} layers: all train, as full")
        elif k == layers:
            self.notes.append(f"strategy.unfreeze_layers={k}: all {layers} layers train, the embeddings stay frozen")
        super().setup(model)


class BitFitStrategy(Strategy):
    """Only bias terms (anywhere) and the head train."""

    cfg: BitFitConfig

    def trains(self, name: str, depth: int, layers: int, head: bool) -> bool:
        return head or name.endswith("bias")
