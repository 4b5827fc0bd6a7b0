"""hardware.mixed_precision=auto: bf16 autocast exactly where the device computes bf16 natively."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers.runs import TINY
from omegaconf import OmegaConf

import ftcli.runtime.accelerator as runtime


def _hw(compose, *overrides: str):
    return compose(*overrides).hardware


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"amx_bf16", "avx512f"}, "bf16"),
        ({"avx512_bf16"}, "bf16"),
        ({"avx512f", "avx2"}, "no"),  # AVX-512 without its bf16 instructions emulates: fp32 is faster
        (set(), "no"),  # flags unreadable (not Linux): the safe choice
    ],
)
def test_auto_picks_bf16_exactly_on_cpus_that_compute_it(compose, monkeypatch, flags, expected) -> None:
    monkeypatch.setattr(runtime, "cpu_flags", lambda: flags)
    precision, why = runtime.resolve_precision(_hw(compose, "hardware=cpu"))
    assert precision == expected
    assert ("natively" in why) == (expected == "bf16")


def test_no_forces_fp32_and_an_explicit_choice_is_kept(compose, monkeypatch) -> None:
    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"amx_bf16"})
    assert runtime.resolve_precision(_hw(compose, "hardware=cpu", "hardware.mixed_precision=no"))[0] == "no"
    assert runtime.resolve_precision(_hw(compose, "hardware=cpu", "hardware.mixed_precision=bf16"))[0] == "bf16"


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16"), (False, "no")])
def test_auto_on_a_gpu_follows_its_bf16_support(compose, monkeypatch, native: bool, expected: str) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "a GPU")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: native)
    assert runtime.resolve_precision(_hw(compose, "hardware=gpu"))[0] == expected
    assert runtime.resolve_precision(_hw(compose, "hardware=auto"))[0] == expected


def test_a_run_says_which_precision_and_records_it(compose, monkeypatch, capsys) -> None:
    from ftcli.train import train

    monkeypatch.setattr(runtime, "cpu_flags", lambda: {"amx_bf16"})
    cfg = compose(*[o for o in TINY if not o.startswith("hardware.mixed_precision")], "trainer.max_steps=2")
    assert cfg.hardware.mixed_precision == "auto"  # what a user gets without asking
    train(cfg)
    assert "precision: bf16 autocast (this CPU computes bf16 natively (amx_bf16)" in capsys.readouterr().out
    assert OmegaConf.load(Path(cfg.output_dir) / "config.yaml").hardware.mixed_precision == "bf16"
