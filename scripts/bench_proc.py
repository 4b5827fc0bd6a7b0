"""One benchmark job: a child process timed whole, its peak RSS, and how busy the rest of the machine was.

Wall time runs from just before ``Popen`` to ``wait4``'s return: interpreter start-up, imports, data
loading, training and evaluation are all inside it, for every contender alike. ``wait4`` gives the child's
own peak RSS and CPU seconds (with its waited-for children: data-loader workers, compile workers). The
machine's load during the job is the CPU time ``/proc/stat`` counts on all cores minus the job's own, over
the wall time: "other cores busy" — 0.0 on a quiet machine, 1.0 when another process held a whole core.

On a shared machine the bench and its job may be stopped (SIGSTOP … SIGCONT) while someone else's work
runs. The parent polls the child every 50 ms; a gap of over a second between two polls is time the bench
itself was stopped, and the job with it: it is recorded as ``paused_s`` and left out of ``wall_s``
(``raw_wall_s`` keeps the clock's reading).
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
POLL_S = 0.05
PAUSE_GAP_S = 1.0  # a gap between polls this long is the bench being stopped, not a slow poll


@dataclass
class Measured:
    """What the parent measures of a child process, whatever the child is."""

    wall_s: float  # the clock's reading less the time the bench was stopped
    peak_rss_mb: float
    cpu_s: float  # the job's user + system seconds
    other_cores: float | None  # cores' worth of CPU others used during the job (None without /proc/stat)
    load1: float  # the 1-minute load average when the job started
    returncode: int
    stdout: str
    stderr: str
    paused_s: float = 0.0  # time the bench (and its job) spent stopped by someone else, left out of wall_s
    raw_wall_s: float = 0.0


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
        status, usage, paused = _wait(proc, deadline)
        raw = time.perf_counter() - start
        wall = raw - paused
        busy1 = busy_seconds()
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    cpu = usage.ru_utime + usage.ru_stime
    other = None if busy0 is None or busy1 is None else max(0.0, (busy1 - busy0 - cpu) / raw)
    code = os.waitstatus_to_exitcode(status) if status is not None else 124
    return Measured(wall, usage.ru_maxrss / 1024, cpu, other, load1, code, stdout, stderr, paused, raw)


def _wait(proc: subprocess.Popen, deadline: float | None) -> tuple[int | None, Any, float]:
    """wait4 on the child, polling; past the deadline (pauses not counted), kill its process group (the
    job's own children too). Returns the status, the child's rusage and the seconds the bench was stopped."""
    import signal

    paused, last = 0.0, time.perf_counter()
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        now = time.perf_counter()
        if now - last > PAUSE_GAP_S:
            paused += now - last - POLL_S
        last = now
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait for it again
            return status, usage, paused
        if deadline and now - paused > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            _, _, usage = os.wait4(proc.pid, 0)
            proc.returncode = -9
            return None, usage, paused
        time.sleep(POLL_S)


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
