"""Start the worker processes a multi-process ``hardware`` option needs, and run one of them.

``ftcli train hardware=multi_gpu`` resolves its config once (run dir included), writes it to
``<run dir>/launch.yaml`` and starts ``python -m ftcli.train <that file>`` once per process through a
launcher: ``torch.distributed.run`` for CPU data parallel (``accelerate launch --cpu`` starts a
single process), Accelerate's launcher for GPUs, FSDP, DeepSpeed, TPUs and several machines. Each
worker reads the same resolved config, so every rank agrees on the run dir and every value.

Under an outside launcher (``accelerate launch -m ftcli train ...``, ``torchrun``, ``srun``) ftcli is
already a worker and trains in place; ``runtime.share_config`` then makes every rank use rank 0's config.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import HardwareConfig
from ftcli.runtime.accelerator import resolve_precision

LAUNCH_CONFIG = "launch.yaml"  # the resolved config the workers read
STATUS = "launch.json"  # how the workers ended, written by the main worker for the launching process


def in_worker() -> bool:
    """Whether a launcher started this process (it then trains, it does not launch)."""
    return "LOCAL_RANK" in os.environ or "FTCLI_WORKER" in os.environ


def needs_launch(hw: HardwareConfig) -> bool:
    return (hw.distributed != "no" or hw.num_processes != 1 or hw.num_machines > 1) and not in_worker()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _processes(hw: HardwareConfig) -> int:
    """Processes on this machine: hardware.num_processes, or one per visible GPU when it is 0."""
    if hw.num_processes:
        return int(hw.num_processes)
    if hw.accelerator == "tpu":
        return 0  # the XLA launcher uses every core

    count = torch.cuda.device_count()
    if count == 0:
        raise FtcliError(f"hardware={hw.name}: no CUDA GPU is visible; use hardware=cpu or hardware=cpu_ddp")
    return count


def launcher_command(hw: HardwareConfig, grad_accum: int) -> list[str]:
    """The launcher and its arguments; the worker module and its argument follow."""

    n = _processes(hw)
    if hw.accelerator == "cpu":
        # accelerate launch --cpu --num_processes 2 starts one process (it wants MPI for multi-CPU);
        # torch.distributed.run starts them, and Accelerator(cpu=True) joins them over gloo.
        port = hw.main_process_port or _free_port()
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nproc_per_node={n}",
            f"--master_port={port}",
            "--master_addr=127.0.0.1",
        ]
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--mixed_precision",
        resolve_precision(hw)[0],
        "--dynamo_backend",
        "no",
        "--num_machines",
        str(hw.num_machines),
    ]
    if hw.accelerator == "tpu":
        return [*cmd, "--tpu", *(["--num_processes", str(n)] if n else [])]
    cmd += [
        "--num_processes",
        str(n * hw.num_machines),
        "--main_process_port",
        str(hw.main_process_port or _free_port()),
    ]
    if hw.num_machines > 1:
        if not hw.main_process_ip:  # checked here, not in validate(): the shipped multi_node.yaml leaves it open
            raise FtcliError("hardware.main_process_ip is required when num_machines > 1 (the rank-0 node's address)")
        cmd += ["--machine_rank", str(hw.machine_rank), "--main_process_ip", str(hw.main_process_ip)]
    if hw.distributed == "fsdp":
        # FSDP2; how it shards (per layer, full or grad-op, sharded state) is the plugin's that each worker
        # builds from the same config (sharding.fsdp_plugin), not a second copy in launcher flags
        cmd += ["--use_fsdp", "--fsdp_version", "2"]
    elif hw.distributed == "deepspeed":
        cmd += [
            "--use_deepspeed",
            "--zero_stage",
            str(hw.zero_stage),
            "--gradient_accumulation_steps",
            str(grad_accum),
        ]
    elif n * hw.num_machines > 1:
        cmd += ["--multi_gpu"]
    return cmd


def launch(cfg: Any, module: str, script: str) -> dict[str, Any]:
    """Run ``cfg`` on the workers its hardware needs (each runs ``python -m <module> <run>/launch.yaml``, or the
    ``script`` file for the XLA launcher); wait; return the main worker's result.

    SIGTERM/SIGINT sent to this process are passed on: the workers save a resumable state and exit.
    """

    run = Path(cfg.output_dir)
    run.mkdir(parents=True, exist_ok=True)
    (run / LAUNCH_CONFIG).write_text(OmegaConf.to_yaml(cfg, resolve=True))
    (run / STATUS).unlink(missing_ok=True)
    # Accelerate's TPU launcher imports a script file and spawns its main(); the others run the module.
    entry = [script] if cfg.hardware.accelerator == "tpu" else ["-m", module]
    cmd = [*launcher_command(cfg.hardware, cfg.trainer.grad_accum), *entry, str(run / LAUNCH_CONFIG)]
    env = {**os.environ, "FTCLI_WORKER": "1", "PYTHONUNBUFFERED": "1"}
    if cfg.hardware.accelerator == "cpu" and cfg.hardware.cpu_threads:
        env["OMP_NUM_THREADS"] = str(cfg.hardware.cpu_threads)
    proc = subprocess.Popen(cmd, env=env)

    def forward(signum: int, frame: Any) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = proc.wait()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    status = json.loads((run / STATUS).read_text()) if (run / STATUS).is_file() else {}
    if status.get("status") == "interrupted":
        return status
    if code != 0 or status.get("status") == "error":
        raise FtcliError(status.get("message") or f"hardware={cfg.hardware.name}: the workers failed (exit {code})")
    return status.get("result", {})
