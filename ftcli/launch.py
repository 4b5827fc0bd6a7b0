"""Start the worker processes a multi-process ``hardware`` option needs, and run one of them.

``ftcli train hardware=multi_gpu`` resolves its config once (run dir included), writes it to
``<run dir>/launch.yaml`` and starts ``python -m ftcli.launch <that file>`` once per process through a
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

from ftcli.config import FtcliError, HardwareConfig
from ftcli.files import write_json

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
    import torch

    count = torch.cuda.device_count()
    if count == 0:
        raise FtcliError(f"hardware={hw.name}: no CUDA GPU is visible; use hardware=cpu or hardware=cpu_ddp")
    return count


def launcher_command(hw: HardwareConfig, grad_accum: int) -> list[str]:
    """The launcher and its arguments; the worker module and its argument follow."""
    from ftcli.runtime import resolve_precision

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


def launch(cfg: Any) -> dict[str, Any]:
    """Run ``cfg`` on the workers its hardware needs; wait; return the main worker's result.

    SIGTERM/SIGINT sent to this process are passed on: the workers save a resumable state and exit.
    """
    from omegaconf import OmegaConf

    run = Path(cfg.output_dir)
    run.mkdir(parents=True, exist_ok=True)
    (run / LAUNCH_CONFIG).write_text(OmegaConf.to_yaml(cfg, resolve=True))
    (run / STATUS).unlink(missing_ok=True)
    # Accelerate's TPU launcher imports a script file and spawns its main(); the others run the module.
    entry = [__file__] if cfg.hardware.accelerator == "tpu" else ["-m", "ftcli.launch"]
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


def run_training(cfg: Any) -> tuple[dict[str, Any], Any]:
    """``ftcli train`` for one job (a run or a sweep trial): the run's own config when it resumes, the
    workers its hardware needs, or training in this process. Returns (metrics, the config it ran)."""
    from ftcli.checkpoint import resume_config
    from ftcli.runtime import leave_process_group
    from ftcli.train import train

    cfg = resume_config(cfg)  # a resumed run keeps its own hardware, batch and everything else
    metrics = launch(cfg) if needs_launch(cfg.hardware) else train(cfg)
    leave_process_group()  # under accelerate launch / torchrun
    return metrics, cfg


def worker(config_file: str) -> None:
    """One worker: read the resolved config, train, report how it ended (main process only)."""
    import faulthandler

    from omegaconf import DictConfig, OmegaConf

    from ftcli.config import register_configs, typed_train_config
    from ftcli.progress import quiet_libraries
    from ftcli.runtime import leave_process_group
    from ftcli.train import train

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # kill -USR1 <pid>: where a stuck worker is
    register_configs()
    quiet_libraries()
    cfg = typed_train_config(OmegaConf.load(config_file))
    assert isinstance(cfg, DictConfig)
    main = int(os.environ.get("RANK", "0")) == 0
    try:
        result = train(cfg)
    except FtcliError as e:
        if main:
            write_json(Path(cfg.output_dir) / STATUS, {"status": "error", "message": str(e)})
        print(f"ftcli: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        leave_process_group()
    if main:
        interrupted = result.get("interrupted_by_signal")
        status = {"status": "interrupted", **result} if interrupted else {"status": "done", "result": result}
        write_json(Path(cfg.output_dir) / STATUS, status)


def main() -> None:
    """``python -m ftcli.launch <run>/launch.yaml`` (and the function the XLA launcher spawns)."""
    worker(sys.argv[1])


if __name__ == "__main__":
    main()
