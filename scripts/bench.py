#!/usr/bin/env python
"""ftcli vs. the stock HF Trainer recipe, side by side in one run (CPU).

    python scripts/bench.py                      # all three benchmarks, ~10 minutes on 2 cores
    python scripts/bench.py --only a,c --train-samples 1000

Every job runs in its own process, so peak RSS (ru_maxrss from wait4) and whole-process wall time are
per job. Same model (minilm), same SST-2 subset, batch size, learning rate and epochs for every
contender of a benchmark:

  (a) full fine-tuning, 1 epoch:     stock Trainer (pad to 128) · Trainer at its best settings
                                     (DataCollatorWithPadding + group_by_length) · ftcli strategy=full
  (b) feature extraction, 3 epochs:  the same three with the backbone frozen; ftcli cold, then 3× warm (cache hits)
  (c) evaluation of the 872 validation sentences: Trainer.evaluate (stock) · ftcli eval

The stock recipe is run_glue.py's: max_seq_length 128, pad_to_max_length, batch 32, AdamW, linear schedule.
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
MODEL = "sentence-transformers/all-MiniLM-L6-v2"


# ---------------------------------------------------------------------------------------------------
# jobs (each runs in a child process and prints one JSON line)


def _sst2(train_samples: int):
    """The same seeded subset ftcli takes (its own loader), with the raw sentences kept."""
    from hydra import compose, initialize_config_dir

    from ftcli.config import config_dir, register_configs
    from ftcli.data import load_splits

    register_configs()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=[f"dataset.max_train_samples={train_samples}"])
    return load_splits(cfg.dataset, seed=42).splits


def hf_job(args: argparse.Namespace) -> dict:
    """HF Trainer: stock (pad to 128) or best (dynamic padding + group_by_length); full or frozen."""
    import numpy as np
    import transformers
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    from ftcli.models import resolve_name_or_path

    transformers.utils.logging.set_verbosity_error()
    path = resolve_name_or_path(MODEL)
    tok = AutoTokenizer.from_pretrained(path)
    splits = _sst2(args.train_samples)
    stock = args.variant == "stock"

    def encode(batch):
        kw = {"padding": "max_length", "max_length": 128} if stock else {"max_length": 128}
        return tok(batch["sentence"], truncation=True, **kw)

    train_ds = splits["train"].map(encode, batched=True, remove_columns=["sentence"])
    val_ds = splits["validation"].map(encode, batched=True, remove_columns=["sentence"])
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    if args.frozen:  # HF's frozen-backbone recipe: everything under model.bert (pooler included)
        for p in model.bert.parameters():
            p.requires_grad = False
    targs = TrainingArguments(
        output_dir=tempfile.mkdtemp(),
        per_device_train_batch_size=32,
        per_device_eval_batch_size=32,
        learning_rate=args.lr,
        num_train_epochs=args.epochs,
        lr_scheduler_type="linear",
        seed=42,
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        train_sampling_strategy="random" if stock else "group_by_length",
    )

    def metrics(p):
        return {"accuracy": float((np.argmax(p.predictions, -1) == p.label_ids).mean())}

    trainer = Trainer(
        model=model,
        args=targs,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        compute_metrics=metrics,
        data_collator=None if stock else DataCollatorWithPadding(tok),
    )
    out = trainer.train().metrics
    ev = trainer.evaluate()
    return {
        "samples_per_s": out["train_samples_per_second"],
        "accuracy": ev["eval_accuracy"],
        "eval_samples_per_s": ev["eval_samples_per_second"],
    }


# ---------------------------------------------------------------------------------------------------
# the orchestrator


def run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, stdout) of a child process; wait4 gives that child's own peak."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err, env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if os.waitstatus_to_exitcode(status):
        sys.exit(f"bench job failed: {' '.join(cmd)}\n{stderr[-3000:]}")
    return wall, usage.ru_maxrss / 1024, stdout


def hf(variant: str, frozen: bool, lr: float, epochs: int, n: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--job",
        "hf",
        "--variant",
        variant,
        "--lr",
        str(lr),
        "--epochs",
        str(epochs),
        "--train-samples",
        str(n),
    ] + (["--frozen"] if frozen else [])
    wall, rss, out = run(cmd)
    return {**json.loads(out.strip().splitlines()[-1]), "wall_s": wall, "peak_rss_mb": rss}


def ftcli(overrides: list[str], run_dir: Path, cache: Path) -> dict:
    cmd = [sys.executable, "-m", "ftcli.cli", "train", "hardware=cpu", f"hydra.run.dir={run_dir}", *overrides]
    wall, rss, _ = run(cmd, env={"FTCLI_CACHE_DIR": str(cache)})
    summary = json.loads((run_dir / "metrics.json").read_text())
    steps = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rate = [x["samples_per_s"] for x in steps if "samples_per_s" in x and "split" not in x]
    return {"samples_per_s": rate[-1], "accuracy": summary["accuracy"], "wall_s": wall, "peak_rss_mb": rss}


def ftcli_eval(checkpoint: Path, run_dir: Path) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "ftcli.cli",
        "eval",
        f"checkpoint={checkpoint}",
        "hardware=cpu",
        f"hydra.run.dir={run_dir}",
    ]
    wall, rss, _ = run(cmd)
    ev = json.loads((run_dir / "eval.json").read_text())
    return {"samples_per_s": ev["samples_per_s"], "accuracy": ev["accuracy"], "wall_s": wall, "peak_rss_mb": rss}


def table(title: str, rows: dict[str, dict], ours: str, refs: list[str]) -> str:
    lines = [
        f"\n### {title}\n",
        "| run | samples/s | wall s | peak RSS MB | val acc |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['samples_per_s']:.1f} | {r['wall_s']:.1f} | {r['peak_rss_mb']:.0f} | {r['accuracy']:.3f} |"
        )
    for ref in refs:
        a, b = rows[ours], rows[ref]
        lines.append(
            f"\n{ours} / {ref}: samples/s ×{a['samples_per_s'] / b['samples_per_s']:.2f}, "
            f"wall ×{b['wall_s'] / a['wall_s']:.2f} faster, peak RSS ×{a['peak_rss_mb'] / b['peak_rss_mb']:.2f}, "
            f"accuracy {100 * (a['accuracy'] - b['accuracy']):+.1f} points"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="a,b,c", help="which benchmarks: a,b,c")
    p.add_argument("--train-samples", type=int, default=2000)
    p.add_argument("--lr", type=float, default=1e-4, help="(a) learning rate for every contender")
    p.add_argument("--fe-lr", type=float, default=2e-3, help="(b) learning rate of the new head, every contender")
    p.add_argument("--out", type=Path, default=None, help="also write the markdown tables here")
    # child-process job arguments
    p.add_argument("--job", choices=["hf"], help=argparse.SUPPRESS)
    p.add_argument("--variant", choices=["stock", "best"], help=argparse.SUPPRESS)
    p.add_argument("--frozen", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--epochs", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.job == "hf":
        print(json.dumps(hf_job(args)))
        return

    n, only = args.train_samples, set(args.only.split(","))
    work = Path(tempfile.mkdtemp(prefix="ftcli-bench-"))
    cache = work / "cache"  # a cold ftcli cache: the first feature run computes, the second reuses
    common = [f"dataset.max_train_samples={n}", "trainer.batch_size=32", "model=minilm"]
    report = [f"ftcli bench · minilm · {n} SST-2 training sentences · batch 32 · CPU threads {os.cpu_count()}"]
    if "a" in only:
        rows = {
            "HF stock (pad 128)": hf("stock", False, args.lr, 1, n),
            "HF best (dyn. pad + group_by_length)": hf("best", False, args.lr, 1, n),
            "ftcli strategy=full": ftcli(
                [
                    *common,
                    "strategy=full",
                    f"strategy.lr={args.lr}",
                    "trainer.epochs=1",
                    "trainer.save_checkpoints=false",
                ],
                work / "a",
                cache,
            ),
        }
        report.append(
            table(
                f"(a) full fine-tuning, 1 epoch, lr {args.lr:g}",
                rows,
                "ftcli strategy=full",
                ["HF stock (pad 128)", "HF best (dyn. pad + group_by_length)"],
            )
        )
        print(report[-1], flush=True)
    if "b" in only or "c" in only:
        fe = [*common, "strategy=feature_extract", f"strategy.lr={args.fe_lr}", "trainer.epochs=3"]
        cold = ftcli(fe, work / "b1", cache)
        # the same run again, three times (this machine's noise is ±15%): every one a feature-cache hit
        warms = [ftcli(fe, work / f"b2-{i}", cache) for i in range(3)]
        warm = sorted(warms, key=lambda r: r["wall_s"])[1]  # the median
    if "b" in only:
        rows = {
            "HF stock frozen (pad 128)": hf("stock", True, args.fe_lr, 3, n),
            "HF best frozen (dyn. pad + group_by_length)": hf("best", True, args.fe_lr, 3, n),
            "ftcli feature_extract (cold cache)": cold,
            "ftcli feature_extract (warm cache, median of 3)": warm,
        }
        for r in rows.values():  # (b) is about the whole process: samples/s over its wall time
            r["samples_per_s"] = 3 * n / r["wall_s"]
        report.append(
            table(
                f"(b) feature extraction, 3 epochs, whole process, head lr {args.fe_lr:g}",
                rows,
                "ftcli feature_extract (cold cache)",
                ["HF stock frozen (pad 128)", "HF best frozen (dyn. pad + group_by_length)"],
            )
        )
        walls = " / ".join(f"{r['wall_s']:.1f}" for r in warms)
        report.append(f"\nidentical ftcli runs after the first (feature cache hits): {walls} s whole process")
        print("\n".join(report[-2:]), flush=True)
    if "c" in only:
        # three rounds, the two contenders alternating (this machine's noise is ±15%); medians compared
        stocks, ours = [], []
        for i in range(3):
            stock = hf("stock", True, args.fe_lr, 1, 64)  # a short fit; what is timed is Trainer.evaluate
            stocks.append({**stock, "samples_per_s": stock["eval_samples_per_s"]})
            ours.append(ftcli_eval(work / "b1" / "checkpoints" / "best", work / f"c{i}"))

        def median(runs: list[dict]) -> dict:
            return sorted(runs, key=lambda r: r["samples_per_s"])[len(runs) // 2]

        rows = {"HF stock Trainer.evaluate (pad 128)": median(stocks), "ftcli eval": median(ours)}
        report.append(
            table(
                "(c) evaluation of 872 validation sentences (evaluation loop only; median of 3 rounds)",
                rows,
                "ftcli eval",
                ["HF stock Trainer.evaluate (pad 128)"],
            )
        )
        for name, runs in (("HF stock", stocks), ("ftcli", ours)):
            report.append(f"{name} samples/s, rounds 1-3: " + " / ".join(f"{r['samples_per_s']:.1f}" for r in runs))
        print("\n".join(report[-3:]), flush=True)
    if args.out:
        args.out.write_text("\n".join(report) + "\n")


if __name__ == "__main__":
    main()
