#!/usr/bin/env python
"""GPU speed of ftcli's training loop: samples/s, tokens/s and model FLOP utilisation (MFU).

No hub on a lent GPU either, so the model is bert-base's architecture (12 layers, hidden 768) with
random weights and a WordPiece vocab trained on SST-2: speed does not depend on the weights. Run through
scripts/bench_gpu.sh, which prepares the environment; each configuration is a real `ftcli train`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BERT_BASE = [
    "model=tiny",
    "model.name=bert_base_random",
    "model.max_length=128",
    "model.vocab_size=30522",
    "model.config_overrides.hidden_size=768",
    "model.config_overrides.num_hidden_layers=12",
    "model.config_overrides.num_attention_heads=12",
    "model.config_overrides.intermediate_size=3072",
    "model.config_overrides.max_position_embeddings=512",
    "strategy=full",
    "strategy.lr=1e-4",
]
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L4": 121e12}  # dense bf16 FLOP/s, spec sheets


def peak_flops() -> tuple[str, float]:
    import torch

    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    for key, value in PEAK_BF16.items():
        if key in name:
            return name, value
    return name, float("nan")


def train_flops_per_token(layers: int = 12, hidden: int = 768, mean_len: float = 13.0) -> float:
    """Forward + backward ≈ 3 × forward; forward = 2 × (non-embedding weights) + attention scores."""
    weights = layers * (4 * hidden * hidden + 2 * hidden * 4 * hidden)
    attention = layers * 2 * 2 * mean_len * hidden  # QK^T and AV per token
    return 3 * (2 * weights + attention)


def run(name: str, overrides: list[str], work: Path) -> dict:
    run_dir = work / name
    cmd = [
        sys.executable,
        "-m",
        "ftcli.cli",
        "train",
        *BERT_BASE,
        *overrides,
        f"hydra.run.dir={run_dir}",
        "trainer.save_checkpoints=false",
        "trainer.log_every_steps=50",
    ]
    start = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "FTCLI_CACHE_DIR": str(work / "cache")}
    )
    if proc.returncode:
        return {"name": name, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    logs = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [x for x in logs if "tokens_per_s" in x]
    last = steps[-1]
    evals = [x for x in logs if x.get("split") == "validation"]
    return {
        "name": name,
        "samples_per_s": last["samples_per_s"],
        "tokens_per_s": last["tokens_per_s"],
        "wall_s": time.perf_counter() - start,
        "eval_samples_per_s": evals[-1]["samples_per_s"] if evals else None,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    gpu, peak = peak_flops()
    work = Path(tempfile.mkdtemp(prefix="ftcli-gpu-bench-"))
    steps = [f"trainer.max_steps={args.steps}", "trainer.eval_every_steps=100000"]
    configs = {
        "bf16 batch 32": ["hardware=gpu", "hardware.mixed_precision=bf16", "trainer.batch_size=32"],
        "bf16 batch 128": ["hardware=gpu", "hardware.mixed_precision=bf16", "trainer.batch_size=128"],
        "bf16 batch 128 compile": [
            "hardware=gpu",
            "hardware.mixed_precision=bf16",
            "trainer.batch_size=128",
            "trainer.compile=true",
        ],
        "bf16 token budget 16384": ["hardware=gpu", "hardware.mixed_precision=bf16", "trainer.max_tokens=16384"],
        "fp32 batch 128": ["hardware=gpu", "hardware.mixed_precision=no", "trainer.batch_size=128"],
    }
    fpt = train_flops_per_token()
    lines = [
        f"GPU {gpu}; bert-base architecture (random weights), SST-2, {args.steps} steps; "
        f"peak bf16 {peak / 1e12:.0f} TFLOP/s",
        "",
        "| config | samples/s | tokens/s | model TFLOP/s | MFU | eval samples/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, overrides in configs.items():
        r = run(name.replace(" ", "_"), steps + overrides, work)
        if "error" in r:
            lines.append(f"| {name} | failed: {r['error'][:80]} | | | | |")
        else:
            tflops = r["tokens_per_s"] * fpt
            lines.append(
                f"| {name} | {r['samples_per_s']:.0f} | {r['tokens_per_s']:.0f} | {tflops / 1e12:.1f} | "
                f"{100 * tflops / peak:.1f}% | {r['eval_samples_per_s'] or 0:.0f} |"
            )
        print(lines[-1], flush=True)
    text = "\n".join(lines)
    print("\n" + text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
