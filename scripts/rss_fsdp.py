#!/usr/bin/env python
"""RSS over training steps of each worker of a sharded CPU run (hardware=cpu_fsdp): does it keep climbing?

    python scripts/rss_fsdp.py --steps 400 --out outputs/rss_fsdp        # MiniLM full, 2 × 16, as bench_fsdp.py
    python scripts/rss_fsdp.py --env MALLOC_ARENA_MAX=2 --out …          # the same under another allocator setting

Every ``--every`` seconds it reads each worker's resident set (/proc/<pid>/status VmRSS, not the high-water mark) and
the last optimizer step written to the run's metrics.jsonl; it writes ``rss.csv`` (seconds, step, rank, MiB) and,
with matplotlib, ``rss.png`` (RSS against step, one line per rank).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _status(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024  # kB → MiB
    raise ValueError(field)


def _last_step(run: Path) -> int:
    try:
        lines = (run / "metrics.jsonl").read_text().splitlines()
    except OSError:
        return 0
    steps = [json.loads(x).get("step", 0) for x in lines if x.strip()]
    return int(max(steps, default=0))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="minilm")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--train-samples", type=int, default=2000)
    p.add_argument("--eval-samples", type=int, default=200)
    p.add_argument("--every", type=float, default=1.0)
    p.add_argument("--env", action="append", default=[], help="KEY=VALUE for the workers (repeatable)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    import psutil

    args.out.mkdir(parents=True, exist_ok=True)
    run = args.out / "run"
    cmd = [
        sys.executable, "-m", "ftcli.cli", "train", f"model={args.model}", "strategy=full", "hardware=cpu_fsdp",
        f"dataset.max_train_samples={args.train_samples}", f"dataset.max_eval_samples={args.eval_samples}",
        "trainer.batch_size=16", f"trainer.max_steps={args.steps}", "trainer.log_every_steps=5",
        "trainer.save_checkpoints=false", f"hydra.run.dir={run}",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env.update(dict(kv.split("=", 1) for kv in args.env))
    t0 = time.monotonic()
    log = open(args.out / "train.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    ranks: dict[int, int] = {}
    with open(args.out / "rss.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["seconds", "step", "rank", "rss_mib"])
        while proc.poll() is None:
            try:
                kids = psutil.Process(proc.pid).children(recursive=True)
            except psutil.Error:
                kids = []
            step = _last_step(run)
            for w in kids:
                try:
                    line = " ".join(w.cmdline())
                    if "launch.yaml" not in line or "torch.distributed.run" in line:  # workers: -m ftcli.train
                        continue
                    if w.pid not in ranks:
                        ranks[w.pid] = int(w.environ().get("RANK", "0"))
                    out.writerow(
                        [f"{time.monotonic() - t0:.1f}", step, ranks[w.pid], f"{_status(w.pid, 'VmRSS:'):.1f}"]
                    )
                except (psutil.Error, OSError, ValueError):
                    continue
            f.flush()
            time.sleep(args.every)
    print(f"exit {proc.returncode} after {time.monotonic() - t0:.0f} s → {args.out}/rss.csv")
    plot(args.out)


def plot(folder: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    rows = list(csv.DictReader(open(folder / "rss.csv")))  # noqa: SIM115
    fig, ax = plt.subplots(figsize=(8, 4))
    for rank in sorted({r["rank"] for r in rows}):
        mine = [r for r in rows if r["rank"] == rank]
        ax.plot([int(r["step"]) for r in mine], [float(r["rss_mib"]) for r in mine], label=f"rank {rank}")
    ax.set_xlabel("optimizer step (last logged)")
    ax.set_ylabel("RSS (MiB)")
    ax.set_title(folder.name)
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "rss.png", dpi=100)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--plot"]:
        plot(Path(sys.argv[2]))
    else:
        main()
