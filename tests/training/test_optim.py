"""Optimizer and schedule come from the strategy config: AdamW or SGD, linear / cosine / constant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers.runs import TINY

from ftcli.config.errors import FtcliError
from ftcli.config.validate import validate
from ftcli.training.optim import build_optimizer, build_schedule, warmup_steps


def _lrs(make, warmup: int, total: int) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched, out = make(opt, warmup, total), []
    for _ in range(total + 1):  # a run takes `total` steps (past them HF's cosine rises again; ours stays at 0)
        out.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("ratio,total", [(0.0, 25), (0.06, 25), (0.06, 50), (0.1, 63), (0.5, 3), (0.99, 7)])
def test_warmup_steps_round_a_ratio_as_the_trainer_does(ratio: float, total: int) -> None:
    from transformers import TrainingArguments

    expected = TrainingArguments(output_dir="unused", warmup_steps=ratio).get_warmup_steps(total)
    assert warmup_steps(ratio, total) == expected


@pytest.mark.parametrize("kind", ["linear", "cosine", "constant"])
@pytest.mark.parametrize("warmup,total", [(0, 10), (3, 10), (10, 10)])
def test_schedules_match_transformers(kind: str, warmup: int, total: int) -> None:
    import transformers

    theirs = {
        "linear": transformers.get_linear_schedule_with_warmup,
        "cosine": transformers.get_cosine_schedule_with_warmup,
        "constant": lambda opt, w, t: transformers.get_constant_schedule_with_warmup(opt, w),
    }[kind]
    ours = _lrs(lambda opt, w, t: build_schedule(opt, kind, w, t), warmup, total)
    assert ours == pytest.approx(_lrs(theirs, warmup, total), abs=1e-12)


def test_sgd_takes_momentum_and_nesterov_and_adamw_is_fused_on_cpu(compose) -> None:
    cfg = compose(*TINY, "strategy=full", "strategy.optimizer=sgd", "strategy.momentum=0.8", "strategy.nesterov=true")
    validate(cfg)
    params = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": 0.5, "weight_decay": 0.0}]
    sgd = build_optimizer(cfg.strategy, params, torch.device("cpu"))
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.param_groups[0]["momentum"] == 0.8 and sgd.param_groups[0]["nesterov"] is True
    assert sgd.param_groups[0]["lr"] == 0.5  # the strategy's group lr wins over strategy.lr
    adamw = build_optimizer(compose(*TINY, "strategy=full").strategy, params, torch.device("cpu"))
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["fused"] is True


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["strategy.optimizer=adam"], "strategy.optimizer=adam: must be one of adamw, sgd"),
        (["strategy.schedule=cosin"], "strategy.schedule=cosin: must be one of linear, cosine, constant"),
        (["strategy.nesterov=true"], "strategy.nesterov=true: only strategy.optimizer=sgd has Nesterov momentum"),
        (["strategy.optimizer=sgd", "strategy.nesterov=true", "strategy.momentum=0"], "needs strategy.momentum > 0"),
    ],
)
def test_bad_optimizer_settings_are_named(compose, overrides: list[str], message: str) -> None:
    with pytest.raises(FtcliError, match=message):
        validate(compose(*TINY, "strategy=full", *overrides))


def test_a_run_with_sgd_and_a_cosine_schedule_logs_the_cosine(compose) -> None:
    import math

    from ftcli.train import train

    overrides = ("strategy.optimizer=sgd", "strategy.schedule=cosine", "strategy.warmup_ratio=0", "strategy.lr=0.1")
    cfg = compose(*TINY, "strategy=full", *overrides, "trainer.max_steps=8", "trainer.log_every_steps=1")
    train(cfg)
    lines = [json.loads(x) for x in (Path(cfg.output_dir) / "metrics.jsonl").read_text().splitlines()]
    lrs = [x["lr"] for x in lines if "lr" in x]
    assert lrs == pytest.approx([0.1 * 0.5 * (1 + math.cos(math.pi * s / 8)) for s in range(1, 9)])
