#!/usr/bin/env python
"""Peak memory per process: data parallel (hardware=cpu_ddp) vs sharded (hardware=cpu_fsdp), 2 CPU processes.

    python scripts/bench_fsdp.py                 # MiniLM full fine-tuning, 2000 sentences, 60 steps, 2 rounds
    python scripts/bench_fsdp.py --quick         # smoke test: the tiny model, 2 steps, 1 round (no measurement)

Each process of a DDP run holds the whole model, its gradients and AdamW's two moments (4 × 4 bytes per
parameter, plus DDP's gradient buckets); under FSDP each holds a half of each, and a layer's full weights
only while it runs. Both also hold what any worker holds (torch, transformers, the data) and, before the
model is sharded, the model as loaded. This prints and writes one line per contender and process:

    minilm full · cpu_fsdp · rank 0 · peak RSS 812 MiB · 41 samples/s · accuracy 0.8234

Peak RSS is the kernel's high-water mark of each worker (/proc/<pid>/status VmHWM, read every 50 ms until it
exits; the final gather of a sharded checkpoint lasts far longer than that). Contenders alternate round by
round (ddp, fsdp, ddp, fsdp …) and the report gives each one's median; the machine is shared, so speed is
noisy, memory much less so. Same model, data, global batch (2 × 16) and steps for both.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTENDERS = ("cpu_ddp", "cpu_fsdp")


def peak_rss(proc: subprocess.Popen) -> dict[int, float]:
    """Wait for ``proc`` (ftcli); return {rank: peak RSS in MiB} of its worker processes."""
    import psutil

    peaks: dict[int, float] = {}
    ranks: dict[int, int] = {}  # worker pid → rank
    while proc.poll() is None:
        try:
            workers = [p for p in psutil.Process(proc.pid).children(recursive=True) if _is_worker(p)]
        except psutil.Error:
            workers = []
        for w in workers:
            try:
                if w.pid not in ranks:
                    ranks[w.pid] = int(w.environ().get("RANK", "0"))
                hwm = _vm_hwm(w.pid)
            except (psutil.Error, OSError, ValueError):
                continue
            rank = ranks[w.pid]
            peaks[rank] = max(peaks.get(rank, 0.0), hwm)
        time.sleep(0.05)
    return dict(sorted(peaks.items()))


def _is_worker(p) -> bool:  # type: ignore[no-untyped-def]
    try:
        line = " ".join(p.cmdline())  # a worker: python -m ftcli.train <run>/launch.yaml (not torchrun's parent)
        return "launch.yaml" in line and "torch.distributed.run" not in line
    except Exception:
        return False


def _vm_hwm(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB → MiB
    raise ValueError("no VmHWM")


def run_one(args: argparse.Namespace, hardware: str, work: Path) -> dict:
    run = work / f"{hardware}-{time.monotonic_ns()}"
    cmd = [
        sys.executable,
        "-m",
        "ftcli.cli",
        "train",
        f"model={args.model}",
        "strategy=full",
        f"hardware={hardware}",
        f"hardware.mixed_precision={args.precision}",
        f"dataset.max_train_samples={args.train_samples}",
        f"dataset.max_eval_samples={args.eval_samples}",
        "trainer.batch_size=16",
        f"trainer.max_steps={args.steps}",
        "trainer.save_checkpoints=true",  # the sharded run gathers its weights for checkpoints/best
        f"hydra.run.dir={run}",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peaks = peak_rss(proc)
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{hardware} failed:\n{err[-3000:]}")
    metrics = json.loads((run / "metrics.json").read_text())
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    speed = [x["samples_per_s"] for x in lines if "samples_per_s" in x and "split" not in x]
    return {
        "peaks": peaks,
        "wall_s": time.perf_counter() - t0,
        "samples_per_s": speed[-1] if speed else float("nan"),
        "accuracy": metrics.get("accuracy", float("nan")),
    }


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke test: tiny model, 2 steps, 1 round (no measurement)")
    p.add_argument("--model", default=None, help="a model option (default minilm; tiny with --quick)")
    p.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 2; 1 with --quick)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default 60; 2 with --quick)")
    p.add_argument("--train-samples", type=int, default=None, help="SST-2 training sentences (default 2000)")
    p.add_argument("--eval-samples", type=int, default=None, help="validation sentences (default 872)")
    p.add_argument("--precision", choices=["auto", "bf16", "no"], default="auto", help="hardware.mixed_precision")
    p.add_argument("--out", type=Path, default=None, help="markdown report (default outputs/bench_fsdp.md)")
    args = p.parse_args()
    quick = args.quick
    args.model = args.model or ("tiny" if quick else "minilm")
    args.rounds = args.rounds or (1 if quick else 2)
    args.steps = args.steps or (2 if quick else 60)
    args.train_samples = args.train_samples or (64 if quick else 2000)
    args.eval_samples = args.eval_samples or (32 if quick else 872)
    args.out = args.out or ROOT / "outputs" / "bench_fsdp.md"
    return args


def main() -> None:
    args = parse_args()
    runs: dict[str, list[dict]] = {c: [] for c in CONTENDERS}
    with tempfile.TemporaryDirectory(prefix="ftcli-bench-fsdp-") as tmp:
        for r in range(args.rounds):
            for hardware in CONTENDERS:
                result = run_one(args, hardware, Path(tmp))
                runs[hardware].append(result)
                peaks = " · ".join(f"rank {k} {v:.0f} MiB" for k, v in result["peaks"].items())
                print(f"round {r + 1} · {hardware} · {peaks} · {result['wall_s']:.0f} s", flush=True)
    header = (
        f"{args.model} full · {args.train_samples} sentences · {args.steps} steps · global batch 32 "
        f"(2 processes × 16) · precision {args.precision} · median of {args.rounds} round(s)"
    )
    rows = [header, ""]
    for hardware in CONTENDERS:
        ranks = sorted({k for res in runs[hardware] for k in res["peaks"]})
        for rank in ranks:
            peak = statistics.median(res["peaks"].get(rank, float("nan")) for res in runs[hardware])
            speed = statistics.median(res["samples_per_s"] for res in runs[hardware])
            accuracy = statistics.median(res["accuracy"] for res in runs[hardware])
            rows.append(
                f"{args.model} full · {hardware} · rank {rank} · peak RSS {peak:.0f} MiB · "
                f"{speed:.0f} samples/s · accuracy {accuracy:.4f}"
            )
    ddp = [statistics.median(r["peaks"][k] for r in runs["cpu_ddp"]) for k in (0, 1)]
    fsdp = [statistics.median(r["peaks"][k] for r in runs["cpu_fsdp"]) for k in (0, 1)]
    rows.append(f"FSDP / DDP peak RSS: rank 0 {fsdp[0] / ddp[0]:.2f} · rank 1 {fsdp[1] / ddp[1]:.2f}")
    if args.quick:
        rows.append("(--quick: a smoke test of this script, not a measurement)")
    text = "\n".join(rows)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(f"# Peak RSS per process: DDP vs FSDP\n\n```\n{text}\n```\n")
    print(f"→ {args.out}")


if __name__ == "__main__":
    main()
