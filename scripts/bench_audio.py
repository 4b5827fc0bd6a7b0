#!/usr/bin/env python
"""Audio data path: ftcli's decode-once clip cache (and feature_extract's cached features) next to transformers'
audio-classification example, each a whole process on the shipped keywords (5,000 train / 600 validation clips).

    python scripts/bench_audio.py --example <transformers source>/examples/pytorch/audio-classification/\
run_audio_classification.py

The example is not in transformers' wheel: take it from the source of the installed release. Both sides read
the same folder (hard links of ``ftcli/assets/speech/keywords/{train,validation}``), the same model (a tiny
wav2vec2 saved once from configs/model/tiny_wav2vec2.yaml, seed 0: a plain transformers folder with its
``Wav2Vec2FeatureExtractor``, attention mask on), fp32, batch 32, the same epochs, learning rate, no warm-up, no
weight decay, linear decay, the convolutional feature encoder frozen (the example evaluates once, after training,
as it does by default; ftcli after every epoch):

- ``example``: run_audio_classification.py as its README runs it (``--remove_unused_columns False``):
  ``load_dataset`` of the folder (datasets decodes with torchcodec, resampling in ``cast_column``), the feature
  extractor in ``set_transform`` every epoch, ``Trainer``. Its one hub call, ``evaluate.load("accuracy")``,
  is answered offline by a two-line ``evaluate`` module on its PYTHONPATH (the same accuracy, no other change);
  ``example+2w`` adds ``--dataloader_num_workers 2`` (decoding beside the training step).
- ``ftcli full``: ``ftcli train strategy=full`` on the folder, augmentation off (the example has none): the
  same computation, clips decoded once into a fresh cache.
- ``ftcli feature_extract cold`` / ``warm``: the frozen encoder's pooled features computed once (fresh cache),
  then a second run on the first one's cache (hits it: no decoding, no encoder).

Rounds run every contender in a random order; the table gives medians, the example's time over ftcli's per
round (median, bootstrap 95% interval) and clips/s = training clips × epochs / whole-process seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_proc import Measured, fresh_env, run_job  # noqa: E402
from bench_report import _x  # noqa: E402
from bench_stats import speedup  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KEYWORDS = ROOT / "ftcli" / "assets" / "speech" / "keywords"
SHIM = """def load(name, **kw):
    return _Accuracy()


class _Accuracy:
    def compute(self, predictions, references):
        return {"accuracy": float((predictions == references).mean())}
"""


def prepare(work: Path) -> tuple[Path, Path, Path, int]:
    """The shared folder of clips, the model folder, the ``evaluate`` stand-in; the number of training clips."""
    from omegaconf import OmegaConf
    from transformers import AutoConfig, AutoModel, Wav2Vec2FeatureExtractor

    data = work / "keywords"
    if not data.is_dir():
        data.mkdir(parents=True)
        for split in ("train", "validation"):
            shutil.copytree(KEYWORDS / split, data / split, copy_function=_link)
    model = work / "tiny_wav2vec2"
    if not (model / "config.json").is_file():
        import torch

        overrides = OmegaConf.to_container(OmegaConf.load(ROOT / "configs/model/tiny_wav2vec2.yaml").config_overrides)
        torch.manual_seed(0)
        AutoModel.from_config(AutoConfig.for_model("wav2vec2", **overrides)).save_pretrained(model)
        Wav2Vec2FeatureExtractor(return_attention_mask=True, do_normalize=True).save_pretrained(model)
    shim = work / "shim" / "evaluate"
    shim.mkdir(parents=True, exist_ok=True)
    (shim / "__init__.py").write_text(SHIM)
    return data, model, shim.parent, sum(1 for _ in (data / "train").rglob("*.ogg"))


def _link(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def example_cmd(args: argparse.Namespace, data: Path, model: Path, job: Path, workers: int) -> list[str]:
    return [sys.executable, str(args.example), "--model_name_or_path", str(model), "--dataset_name", str(data),
            "--output_dir", str(job / "out"), "--do_train", "--do_eval", "--remove_unused_columns", "False",
            "--num_train_epochs", str(args.epochs), "--learning_rate", str(args.lr), "--warmup_steps", "0",
            "--weight_decay", "0", "--per_device_train_batch_size", "32", "--per_device_eval_batch_size", "32",
            "--save_strategy", "no", "--report_to", "none", "--use_cpu", "--seed", "42",
            "--dataloader_num_workers", str(workers)]  # fmt: skip


def ftcli_cmd(args: argparse.Namespace, data: Path, model: Path, job: Path, strategy: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ftcli",
        "train",
        "dataset=audiofolder",
        f"dataset.data_dir={data}",
        "dataset.augment=false",
        "model=tiny_wav2vec2",
        "model.init=pretrained",
        f"model.name_or_path={model}",
        f"strategy={strategy}",
        f"strategy.lr={args.lr}",
        "strategy.warmup_ratio=0",
        "strategy.weight_decay=0",
        f"trainer.epochs={args.epochs}",
        "trainer.batch_size=32",
        "trainer.seed=42",
        "hardware=cpu",
        "hardware.mixed_precision=no",
        f"hydra.run.dir={job / 'run'}",
    ]


def accuracy(name: str, job: Path) -> float | None:
    """The final evaluation's accuracy (the example's eval_results.json, ftcli's metrics.json of its last epoch)."""
    try:
        if name.startswith("example"):
            return float(json.loads((job / "out" / "eval_results.json").read_text())["eval_accuracy"])
        lines = (job / "run" / "metrics.jsonl").read_text().splitlines()
        return [float(d["accuracy"]) for d in map(json.loads, lines) if "accuracy" in d][-1]
    except (OSError, KeyError, IndexError, ValueError):
        return None


def run_round(args: argparse.Namespace, paths: tuple[Path, Path, Path], r: int) -> dict[str, dict[str, Any]]:
    """Every contender once, in a random order (the warm run right after its cold one, on that one's cache)."""
    data, model, shim = paths
    base = {**os.environ, "PYTHONPATH": str(ROOT)}
    jobs = {
        "example": (lambda j: example_cmd(args, data, model, j, 0), {"PYTHONPATH": str(shim)}),
        "example+2w": (lambda j: example_cmd(args, data, model, j, 2), {"PYTHONPATH": str(shim)}),
        "ftcli full": (lambda j: ftcli_cmd(args, data, model, j, "full"), {}),
        "ftcli feature_extract": (lambda j: ftcli_cmd(args, data, model, j, "feature_extract"), {}),
    }
    order = list(jobs)
    random.Random(r).shuffle(order)
    out: dict[str, dict[str, Any]] = {}
    for name in order:
        make, extra = jobs[name]
        job = args.out / f"round{r}" / name.replace(" ", "_")
        shutil.rmtree(job, ignore_errors=True)
        job.mkdir(parents=True)
        m = run_job(make(job), ROOT, {**fresh_env(base, job, None, True, None), **extra}, args.timeout)
        out[name + (" cold" if "feature" in name else "")] = record(m, name, job)
        if "feature" in name:  # the same command again, on the cache the cold run filled
            warm = job.parent / "ftcli_feature_extract_warm"
            shutil.rmtree(warm, ignore_errors=True)
            env = {**fresh_env(base, warm, None, False, job / "caches"), **extra}
            out[name + " warm"] = record(run_job(make(warm), ROOT, env, args.timeout), name, warm)
    return out


def record(m: Measured, name: str, job: Path) -> dict[str, Any]:
    if m.returncode != 0:
        (job / "stderr.txt").write_text(m.stderr)
    return {
        "ok": m.returncode == 0,
        "wall_s": m.wall_s,
        "peak_rss_mb": m.peak_rss_mb,
        "other_cores": m.other_cores,
        "accuracy": accuracy(name, job),
    }


def report(rounds: list[dict[str, dict[str, Any]]], clips: int, args: argparse.Namespace) -> str:
    names = list(rounds[0])
    lines = [
        f"{len(rounds)} rounds · {clips:,} training clips × {args.epochs} epochs · lr {args.lr} · fp32 · "
        f"batch 32 · other cores busy (median) "
        f"{statistics.median(v['other_cores'] or 0.0 for r in rounds for v in r.values()):.2f}",
        "",
        "| contender | whole process s (median) | clips/s | × example (median [95% CI]) | × example+2w "
        "| peak RSS MB | accuracy (last epoch) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in names:
        ok = [r for r in rounds if r[name]["ok"] and r["example"]["ok"] and r["example+2w"]["ok"]]
        if not ok:
            lines.append(f"| {name} | failed | | | | | |")
            continue
        wall = statistics.median(r[name]["wall_s"] for r in ok)
        ours = [r[name]["wall_s"] for r in ok]
        vs = [_x(speedup(ours, [r[p]["wall_s"] for r in ok]).as_dict()) for p in ("example", "example+2w")]
        acc = [r[name]["accuracy"] for r in ok if r[name]["accuracy"] is not None]
        lines.append(
            f"| {name} | {wall:.1f} | {clips * args.epochs / wall:.0f} | {vs[0]} | {vs[1]} | "
            f"{statistics.median(r[name]['peak_rss_mb'] for r in ok):.0f} | "
            f"{statistics.median(acc) if acc else float('nan'):.4f} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--example", type=Path, required=True, help="run_audio_classification.py")
    p.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench_audio")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--timeout", type=float, default=1800)
    args = p.parse_args()
    if not args.example.is_file():
        sys.exit(f"--example {args.example}: no such file (transformers' examples/pytorch/audio-classification)")
    args.out.mkdir(parents=True, exist_ok=True)
    data, model, shim, clips = prepare(args.out / "shared")
    rounds = []
    for r in range(args.rounds):
        rounds.append(run_round(args, (data, model, shim), r))
        (args.out / "rounds.json").write_text(json.dumps(rounds, indent=1))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v['wall_s']:.0f}s" for k, v in rounds[-1].items()))
    table = report(rounds, clips, args)
    (args.out / "table.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
