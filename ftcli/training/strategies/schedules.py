"""Strategies whose trainable set changes during the run: gradual unfreezing and LP-FT."""

from __future__ import annotations

from torch import nn

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import GradualUnfreezeConfig, LpFtConfig
from ftcli.models.architectures import is_head
from ftcli.training.strategies.base import Strategy


class ScheduledStrategy(Strategy):
    """What trains changes during the run; every parameter may train at some point (so all are in AdamW)."""

    def ever_trains(self, name: str, depth: int, layers: int, head: bool) -> bool:
        return True

    def _advance(self, model: nn.Module, position: float) -> bool:
        """Apply the schedule at ``position`` (in epochs); True when what trains changed."""
        raise NotImplementedError

    def on_step(self, model: nn.Module, step: int, steps_per_epoch: int) -> bool:
        return self._advance(model, step / steps_per_epoch)


class GradualUnfreezeStrategy(ScheduledStrategy):
    """Stage s: the head, post and the top s layer groups train; s grows each unfreeze_every epochs."""

    cfg: GradualUnfreezeConfig

    stage = 0

    def trains(self, name: str, depth: int, layers: int, head: bool) -> bool:
        return head or depth > layers - self.stage

    def _advance(self, model: nn.Module, position: float) -> bool:
        stage = int(position / self.cfg.unfreeze_every + 1e-9)
        if stage == self.stage:
            return False
        self.stage = stage
        return self._apply(model, self.trains)


class LpFtStrategy(ScheduledStrategy):
    """Linear probing (only the head trains) for ``lp_epochs``, then every parameter trains."""

    cfg: LpFtConfig

    probing = True

    def setup(self, model: nn.Module) -> None:
        if not any(is_head(model, self.roles, n) for n, _ in model.named_parameters()):
            raise FtcliError(
                "strategy=lp_ft: this model has no new head to probe first (its output layer is pretrained, as a "
                "causal LM's): use full"
            )
        super().setup(model)

    def trains(self, name: str, depth: int, layers: int, head: bool) -> bool:
        return head or not self.probing

    def group_lr(self, depth: int, layers: int, head: bool) -> float:
        if head and self.cfg.head_lr is not None:
            return float(self.cfg.head_lr)
        return super().group_lr(depth, layers, head)

    def _advance(self, model: nn.Module, position: float) -> bool:
        if not self.probing or position + 1e-9 < self.cfg.lp_epochs:
            return False
        self.probing = False
        return self._apply(model, self.trains)
