"""Strategies: what trains, how fast, and how far from the pretrained weights.

Each strategy option is a schema (``config/schemas.py``, its name spelled once there) and a :class:`Strategy`
class, put together in :data:`STRATEGIES`: the one registration. A strategy schema without a class fails here,
at import, not silently at run time.
"""

from __future__ import annotations

from omegaconf import OmegaConf

from ftcli.config.registry import schema_of, subclasses
from ftcli.config.schemas import (
    BitFitConfig,
    GradualUnfreezeConfig,
    LoraConfig,
    LpFtConfig,
    PartialConfig,
    StrategyConfig,
)
from ftcli.models.architectures import Roles
from ftcli.training.strategies.base import Strategy
from ftcli.training.strategies.freezing import BitFitStrategy, PartialStrategy
from ftcli.training.strategies.lora import LoraStrategy
from ftcli.training.strategies.schedules import GradualUnfreezeStrategy, LpFtStrategy

STRATEGIES: dict[type[StrategyConfig], type[Strategy]] = {
    StrategyConfig: Strategy,  # full fine-tuning and feature extraction: what trains is strategy.freeze
    PartialConfig: PartialStrategy,
    BitFitConfig: BitFitStrategy,
    LoraConfig: LoraStrategy,
    GradualUnfreezeConfig: GradualUnfreezeStrategy,
    LpFtConfig: LpFtStrategy,
}
_UNIMPLEMENTED = [s.__name__ for s in subclasses(StrategyConfig) if s not in STRATEGIES]
if _UNIMPLEMENTED:
    raise ImportError(f"strategy schemas without a Strategy in STRATEGIES: {', '.join(_UNIMPLEMENTED)}")


def build_strategy(cfg: StrategyConfig, roles: Roles) -> Strategy:
    """The Strategy for a strategy config, chosen by its schema (so a renamed copy of lora.yaml is LoRA), for a
    model whose parameters play ``roles`` (the task's model says which are the backbone and which never train)."""
    schema = schema_of("strategy", cfg) if OmegaConf.is_config(cfg) else type(cfg)
    return STRATEGIES[schema](cfg, roles)
