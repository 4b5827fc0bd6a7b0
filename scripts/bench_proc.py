"""One benchmark job: a child process timed whole, its peak RSS, and how busy the rest of the machine was.

Wall time runs from just before ``Popen`` to ``wait4``'s return: interpreter start-up, imports, data
loading, training and evaluation are all inside it, for every contender alike. ``wait4`` gives the child's
own peak RSS and CPU seconds (with its waited-for children: data-loader workers, compile workers). The
machine's load during the job is the CPU time ``/proc/stat`` counts on all cores minus the job's own, over
the wall time: "other cores busy" — 0.0 on a quiet machine, 1.0 when another process held a whole core.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass
class Measured:
    """What the parent measures of a child process, whatever the child is."""

    wall_s: float
    peak_rss_mb: float
    cpu_s: float  # the job's user + system seconds
    other_cores: float | None  # cores' worth of CPU others used during the job (None without /proc/stat)
    load1: float  # the 1-minute load average when the job started
    returncode: int
    stdout: str
    stderr: str


def busy_seconds() -> float | None:
    """CPU seconds spent busy on all cores since boot (/proc/stat: all but idle and iowait), or None."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    ticks = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / CLOCK_TICKS


def run_job(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float | None = None) -> Measured:
    """Run ``cmd`` to completion (killed after ``timeout`` seconds) and measure it; never raises on failure."""
    load1 = os.getloadavg()[0]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        busy0, start = busy_seconds(), time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err, env=env, start_new_session=True)
        deadline = None if timeout is None else start + timeout
        status, usage = _wait(proc, deadline)
        wall = time.perf_counter() - start
        busy1 = busy_seconds()
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    cpu = usage.ru_utime + usage.ru_stime
    other = None if busy0 is None or busy1 is None else max(0.0, (busy1 - busy0 - cpu) / wall)
    code = os.waitstatus_to_exitcode(status) if status is not None else 124
    return Measured(wall, usage.ru_maxrss / 1024, cpu, other, load1, code, stdout, stderr)


def _wait(proc: subprocess.Popen, deadline: float | None) -> tuple[int | None, Any]:
    """wait4 on the child; past the deadline, kill its process group (the job's own children too)."""
    import signal

    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG if deadline else 0)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait for it again
            return status, usage
        if deadline and time.perf_counter() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            _, _, usage = os.wait4(proc.pid, 0)
            proc.returncode = -9
            return None, usage
        time.sleep(0.05)


def fresh_env(base: dict[str, str], job_dir: Path, threads: int | None, cold: bool, warm_dir: Path | None) -> dict:
    """The child's environment: offline hubs, thread count, and its caches: fresh ones under ``job_dir``
    (cold rows: ftcli's cache, datasets', the HF modules cache, torch.compile's) or ``warm_dir``'s, reused."""
    caches = job_dir / "caches" if cold or warm_dir is None else warm_dir
    env = {
        **base,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",  # no fork warning; the tokenizers' own threads are not used here
        "FTCLI_CACHE_DIR": str(caches / "ftcli"),
        "HF_DATASETS_CACHE": str(caches / "hf-datasets"),
        "HF_MODULES_CACHE": str(caches / "hf-modules"),
        "TORCHINDUCTOR_CACHE_DIR": str(caches / "inductor"),
        "TRITON_CACHE_DIR": str(caches / "triton"),
    }
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env
