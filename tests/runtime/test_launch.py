"""Scaling out: sharded batches, launcher commands, exact resume, SIGTERM, CPU data parallel."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.runs import ROOT, TINY, cut_run, ftcli

from ftcli.config.errors import FtcliError
from ftcli.data.batching import LengthGroupedBatches, ShardedBatches

# A run that crosses an epoch boundary and saves resumable state every 3 optimizer steps.
RESUMABLE = [
    *TINY,
    "strategy=full",
    "dataset.max_train_samples=192",
    "dataset.max_eval_samples=64",
    "trainer.epochs=2",
    "trainer.log_every_steps=1",
    "trainer.save_every_steps=3",
]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run / "checkpoints" / "last" / "model.safetensors"))


def _steps(run: Path) -> list[int]:
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [x["step"] for x in lines if "loss" in x and "split" not in x]


def test_two_processes_see_the_global_batches_of_one() -> None:
    lengths = np.random.default_rng(0).integers(3, 60, size=203)
    one = list(ShardedBatches(LengthGroupedBatches(lengths, 32, seed=1), 1))
    two = list(ShardedBatches(LengthGroupedBatches(lengths, 2 * 16, seed=1), 2))
    assert len(two) == 2 * len(one)
    # Accelerate gives batch i to process i % 2: rank 0 and rank 1 slices together are one global batch
    assert [sorted(two[i] + two[i + 1]) for i in range(0, len(two), 2)] == [sorted(b) for b in one]
    assert all(two)  # no process gets an empty batch, even for the short last one


def test_eval_keeps_each_example_once_when_processes_pad_with_repeats() -> None:
    from helpers.runs import predict

    class Gather:  # the batches repeat idx 0 and 1 at the end, as multi-process padding does
        num_processes = 2

        def gather(self, xs):
            return xs

        def pad_across_processes(self, x, dim, pad_index):
            return x

    class Model(torch.nn.Module):
        def forward(self, x):
            return type("Out", (), {"logits": x.float()})()

    idx = [torch.tensor([3, 1]), torch.tensor([0, 2]), torch.tensor([0, 1])]
    batches = [{"x": i[:, None].repeat(1, 2), "labels": i % 2, "idx": i} for i in idx]
    logits, labels = predict(Model(), batches, Gather())
    assert logits[:, 0].tolist() == [0, 1, 2, 3] and labels.tolist() == [0, 1, 0, 1]


@pytest.mark.parametrize(
    ("option", "overrides", "expected"),
    [
        ("cpu_ddp", [], ["torch.distributed.run", "--nproc_per_node=2"]),
        (
            "multi_gpu",
            ["hardware.num_processes=4", "hardware.mixed_precision=bf16"],
            ["--multi_gpu", "--num_processes 4", "--mixed_precision bf16"],
        ),
        ("fsdp", ["hardware.num_processes=2"], ["--use_fsdp", "--fsdp_version 2", "--num_processes 2"]),
        ("cpu_fsdp", [], ["torch.distributed.run", "--nproc_per_node=2"]),
        ("deepspeed", ["hardware.num_processes=2", "hardware.zero_stage=1"], ["--use_deepspeed", "--zero_stage 1"]),
        (
            "deepspeed",
            ["hardware.accelerator=cpu", "hardware.num_processes=2"],
            ["torch.distributed.run", "--nproc_per_node=2"],
        ),
        (
            "multi_node",
            ["hardware.num_processes=8", "hardware.machine_rank=1", "hardware.main_process_ip=10.0.0.1"],
            [
                "--num_processes 16",
                "--num_machines 2",
                "--machine_rank 1",
                "--main_process_ip 10.0.0.1",
                "--main_process_port 29500",
            ],
        ),
        ("tpu", [], ["--tpu"]),
    ],
)
def test_each_hardware_option_launches_its_workers(compose, option, overrides, expected) -> None:
    from ftcli.config.validate import validate
    from ftcli.runtime.launch import launcher_command, needs_launch

    cfg = compose(f"hardware={option}", *overrides)
    validate(cfg)
    assert needs_launch(cfg.hardware)
    cmd = " ".join(launcher_command(cfg.hardware, grad_accum=1))
    for part in expected:
        assert part in cmd, (part, cmd)


def test_single_process_options_train_in_place(compose) -> None:
    from ftcli.runtime.launch import needs_launch

    assert not needs_launch(compose("hardware=cpu").hardware)
    assert not needs_launch(compose("hardware=gpu").hardware)


def test_resume_of_a_run_that_is_not_resumable_says_how_to_fix(tmp_path) -> None:
    from ftcli.training.state import find_run

    (tmp_path / "config.yaml").write_text("{}")
    with pytest.raises(FtcliError, match="trainer.save_every_steps"):
        find_run(str(tmp_path))
    with pytest.raises(FtcliError, match="no run with a saved state"):
        find_run("latest", roots=(str(tmp_path),))


@pytest.mark.parametrize("strategy", ["full", "lp_ft"])  # lp_ft: its probe ends mid-epoch 0 (lp_epochs 0.5)
def test_resume_mid_epoch_is_bit_identical_and_logs_every_step_once(compose, tmp_path, strategy) -> None:
    """Resume from a state saved mid-epoch 0 (copied out of a full run): same final weights, same log."""
    from ftcli.train import train

    full = tmp_path / "full"
    overrides = [f"strategy={strategy}" if x == "strategy=full" else x for x in RESUMABLE]
    train(compose(*overrides, "trainer.keep_checkpoints=10", out=full))
    # the run as it was when it was stopped after step k: its config, that state, and its log up to k (plus a
    # line written after the state, which the resume must drop)
    cut = tmp_path / "cut"
    mid = cut_run(full, cut, lambda state: state["batch_in_epoch"] < 6)
    k = json.loads((mid / "trainer_state.json").read_text())["step"]
    log = (full / "metrics.jsonl").read_text().splitlines()
    (cut / "metrics.jsonl").write_text("\n".join(x for x in log if json.loads(x)["step"] <= k + 1) + "\n")

    train(compose(*TINY, f"resume={cut}", out=tmp_path / "ignored"))
    a, b = _weights(full), _weights(cut)
    assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)
    assert _steps(cut) == _steps(full) == list(range(1, 13))
    assert (
        json.loads((cut / "metrics.json").read_text())["accuracy"]
        == json.loads((full / "metrics.json").read_text())["accuracy"]
    )


@pytest.mark.slow  # an end-to-end CLI run of 20-45 s on 2 cores: make test-slow
def test_sigterm_saves_state_exits_and_resume_finishes_the_run(tmp_path, cache_dir) -> None:
    """A real preemption: SIGTERM mid-run → state saved, exit 143; ``resume=<run>`` → same weights as
    a run never stopped."""
    from ftcli.train import train

    run = tmp_path / "run"
    args = ["train", *RESUMABLE, "trainer.save_every_steps=100", f"hydra.run.dir={run}"]
    env = {**os.environ, "FTCLI_CACHE_DIR": str(cache_dir), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ftcli.cli", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:  # wait for step 2 of 12
        if (run / "metrics.jsonl").is_file() and len(_steps(run)) >= 2:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert f"resume={run}" in " ".join(out.split())
    k = len(_steps(run))
    assert 2 <= k < 12 and (run / "state" / f"step_{k:08d}" / "trainer_state.json").is_file()
    assert not (run / "metrics.json").exists()  # not finished

    done = ftcli("train", f"resume={run}", env={"FTCLI_CACHE_DIR": str(cache_dir)})
    assert done.returncode == 0, done.stderr
    assert _steps(run) == list(range(1, 13))

    ref = tmp_path / "ref"
    from hydra import compose, initialize_config_dir

    from ftcli.config.registry import config_dir, register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=[*RESUMABLE, "trainer.save_every_steps=100"])
    cfg.output_dir, cfg.cache_dir = str(ref), str(cache_dir)
    train(cfg)
    a, b = _weights(ref), _weights(run)
    assert all(torch.equal(a[n], b[n]) for n in a)


@pytest.mark.slow
def test_cpu_ddp_matches_one_process_with_the_same_global_batch(tmp_path, cache_dir) -> None:
    """2 gloo processes × batch 16 vs 1 process × batch 32: same steps, accuracy within 0.5 points."""
    common = [
        "model=tiny",
        "strategy=full",
        "dataset.max_train_samples=2000",
        "dataset.max_eval_samples=872",
        "trainer.epochs=2",
        "trainer.save_checkpoints=false",
    ]
    env = {"FTCLI_CACHE_DIR": str(cache_dir)}
    results = {}
    for hw, batch in (("cpu", 32), ("cpu_ddp", 16)):
        run = tmp_path / hw
        r = ftcli("train", *common, f"hardware={hw}", f"trainer.batch_size={batch}", f"hydra.run.dir={run}", env=env)
        assert r.returncode == 0, r.stderr[-3000:]
        assert "global batch 32" in r.stdout
        results[hw] = (json.loads((run / "metrics.json").read_text())["accuracy"], _steps(run)[-1])
    print(results)
    assert results["cpu"][1] == results["cpu_ddp"][1]
    assert abs(results["cpu"][0] - results["cpu_ddp"][0]) <= 0.005


def test_gradient_checkpointing_trains_the_same_steps(compose, tmp_path) -> None:
    from ftcli.train import train

    plain = train(compose(*TINY, "strategy=full", "trainer.max_steps=2", out=tmp_path / "a"))
    ckpt = train(
        compose(
            *TINY, "strategy=full", "trainer.max_steps=2", "trainer.gradient_checkpointing=true", out=tmp_path / "b"
        )
    )
    # recomputation in backward changes memory, not the math (no dropout RNG is redrawn: non-reentrant)
    assert ckpt["accuracy"] == plain["accuracy"]
    np.testing.assert_allclose(ckpt["loss"], plain["loss"], rtol=1e-5)


# 2 CPU processes: data parallel, FSDP, DeepSpeed ZeRO-2 (when deepspeed is installed)
DEEPSPEED_CPU = ["hardware=deepspeed", "hardware.accelerator=cpu", "hardware.num_processes=2", "hardware.cpu_threads=1"]
NO_DEEPSPEED = pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="deepspeed is not installed")


@pytest.mark.slow
@pytest.mark.parametrize(
    "hardware",
    [
        pytest.param(["hardware=cpu_ddp"], id="cpu_ddp"),
        pytest.param(["hardware=cpu_fsdp"], id="cpu_fsdp"),
        pytest.param(DEEPSPEED_CPU, marks=NO_DEEPSPEED, id="deepspeed"),
    ],
)
def test_cpu_multiprocess_sigterm_resume_matches_an_uninterrupted_run(tmp_path, cache_dir, hardware) -> None:
    """SIGTERM to ``ftcli`` reaches both workers through the launcher; they stop at the same step, save
    every rank's RNG (and, sharded, each rank's shard of weights and optimizer), and the resumed run ends
    with the uninterrupted run's weights."""
    ddp = [*RESUMABLE, *hardware, "trainer.batch_size=16", "trainer.save_every_steps=100"]
    env = {**os.environ, "FTCLI_CACHE_DIR": str(cache_dir), "PYTHONPATH": str(ROOT)}
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "ftcli.cli", "train", *ddp, f"hydra.run.dir={run}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (run / "metrics.jsonl").is_file() and len(_steps(run)) >= 2:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, out[-3000:]
    k = len(_steps(run))
    state = run / "state" / f"step_{k:08d}"
    assert (state / "random_states_0.pkl").is_file() and (state / "random_states_1.pkl").is_file()
    done = ftcli("train", f"resume={run}", env={"FTCLI_CACHE_DIR": str(cache_dir)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert _steps(run) == list(range(1, 13))
    ref = ftcli("train", *ddp, f"hydra.run.dir={tmp_path / 'ref'}", env={"FTCLI_CACHE_DIR": str(cache_dir)})
    assert ref.returncode == 0, ref.stderr[-3000:]
    a, b = _weights(tmp_path / "ref"), _weights(run)
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_resume_latest_picks_the_newest_complete_state(tmp_path) -> None:
    from ftcli.training.state import TRAINER_STATE, find_run

    for i, name in enumerate(("old", "new")):
        state = tmp_path / "outputs" / name / "state" / "step_00000004"
        state.mkdir(parents=True)
        (tmp_path / "outputs" / name / "config.yaml").write_text("{}")
        (state / TRAINER_STATE).write_text("{}")
        os.utime(state / TRAINER_STATE, (1000 + i, 1000 + i))
    (tmp_path / "outputs" / "new" / "state" / ".step_00000008.tmp").mkdir()  # an unfinished save is ignored
    assert find_run("latest", roots=(str(tmp_path / "outputs"),)) == (tmp_path / "outputs" / "new").resolve()
    assert find_run(str(tmp_path / "outputs" / "old")) == (tmp_path / "outputs" / "old").resolve()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            ["hardware=multi_node", "hardware.machine_rank=2"],
            "hardware.machine_rank=2: must be < num_machines (2)",
        ),
        (["hardware=cpu", "hardware.distributed=xla"], "hardware.distributed=xla: runs on TPUs"),
        (["hardware=deepspeed", "hardware.zero_stage=3"], "hardware.zero_stage=3: ftcli builds models outside"),
        (["hardware=deepspeed", "strategy=lp_ft"], "strategy=lp_ft with hardware.distributed=deepspeed"),
        (["hardware=fsdp", "hardware.fsdp_sharding=HYBRID_SHARD"], "hardware.fsdp_sharding"),
        (["hardware=cpu", "hardware.num_processes=0"], "hardware.num_processes=0 means one per GPU"),
    ],
)
def test_impossible_hardware_combinations_fail_before_anything_loads(compose, overrides, expected) -> None:
    from ftcli.config.validate import validate

    with pytest.raises(FtcliError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        validate(compose(*overrides))


def test_multi_node_without_the_main_address_says_which_key(compose) -> None:
    from ftcli.runtime.launch import launcher_command

    cfg = compose("hardware=multi_node", "hardware.num_processes=8")
    with pytest.raises(FtcliError, match="hardware.main_process_ip is required"):
        launcher_command(cfg.hardware, grad_accum=1)


@pytest.mark.slow
def test_multirun_starts_a_process_group_per_job(tmp_path, cache_dir) -> None:
    r = ftcli(
        "train",
        "-m",
        "model=tiny",
        "strategy=full",
        "dataset.max_train_samples=128",
        "dataset.max_eval_samples=64",
        "trainer.batch_size=16",
        "hardware=cpu_ddp",
        "trainer.max_steps=2,3",
        f"hydra.sweep.dir={tmp_path}",
        env={"FTCLI_CACHE_DIR": str(cache_dir)},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    for job, steps in (("trainer.max_steps=2", 2), ("trainer.max_steps=3", 3)):  # trial dirs named by override
        assert json.loads((tmp_path / job / "launch.json").read_text())["status"] == "done"
        assert _steps(tmp_path / job)[-1] == steps
