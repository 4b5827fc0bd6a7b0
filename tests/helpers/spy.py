"""A spy on the strategy a run builds: the live model, its weights before and after the strategy's setup, what
trains at the start, and what training moved."""

from __future__ import annotations

import pytest
import torch

import ftcli.training.phases
from ftcli.training.strategies import build_strategy


class Spy:
    """Wraps build_strategy: keeps the strategy, the live model and its weights before training."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.strategy = self.model = None
        self.before: dict[str, torch.Tensor] = {}
        monkeypatch.setattr(ftcli.training.phases, "build_strategy", self.build)

    def build(self, cfg, roles):
        strategy = build_strategy(cfg, roles)
        setup = strategy.setup

        def spying_setup(model):
            self.before = {n: p.detach().clone() for n, p in model.named_parameters()}
            setup(model)
            self.model, self.trainable_at_start = (
                model,
                {n for n, p in model.named_parameters() if p.requires_grad},
            )
            self.after_setup = {n: p.detach().clone() for n, p in model.named_parameters()}

        strategy.setup = spying_setup
        self.strategy = strategy
        return strategy

    def moved(self) -> set[str]:
        """The parameters training changed (names as the model has them after the strategy's setup: LoRA's too)."""
        assert self.model is not None, "no run built a strategy"
        return {n for n, p in self.model.named_parameters() if not torch.equal(p.detach(), self.after_setup[n])}


def len_trainable(spy: Spy) -> int:
    """How many weights trained at the start of the run (what its metrics.json calls trainable_params)."""
    assert spy.model is not None
    return sum(p.numel() for n, p in spy.model.named_parameters() if n in spy.trainable_at_start)


def assert_trains_what_it_says(spy: Spy, strategy: str, head: str) -> None:
    """The head (parameters under ``head``) moved; a strategy that fixes what trains moved nothing else; feature
    extraction moved the head alone; full fine-tuning moved the backbone too."""
    moved = spy.moved()
    assert any(n.startswith(head) for n in moved), f"{strategy}: the head did not train"
    if strategy not in ("lp_ft", "gradual_unfreeze"):  # those two unfreeze during the run
        assert moved <= spy.trainable_at_start, (
            f"{strategy} moved frozen weights: {sorted(moved - spy.trainable_at_start)[:3]}"
        )
    if strategy == "feature_extract":
        assert all(n.startswith(head) for n in moved)
    if strategy == "full":
        assert not all(n.startswith(head) for n in moved), "full fine-tuning left the backbone as it was"
