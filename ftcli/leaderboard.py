"""``ftcli leaderboard <sweep dir>``: every trial of a sweep, ranked, as a table, CSV and Markdown.

Reads what the trials left on disk (``status.json`` from :mod:`ftcli.training.trials`, else Hydra's
``.hydra/overrides.yaml`` and train's ``metrics.json``), so it works on a finished sweep, a running one
and one that crashed half way. No torch here: it must answer in a blink.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftcli.config.errors import FtcliError
from ftcli.config.registry import subclasses
from ftcli.config.schemas import TaskConfig
from ftcli.metrics.compare import LOWER_IS_BETTER

# every metric a task reports (what --metric may name)
METRICS = tuple(dict.fromkeys(m for s in subclasses(TaskConfig) for m in s.metrics))
SHOWN_METRICS = (  # in a table when some trial has them (the trials' own trainer.metric first); the CSV has all
    *("score", "accuracy", "f1", "f1_micro", "f1_macro", "subset_accuracy", "mcc"),
    *("pearson", "spearman", "mse", "loss"),
)
SEED_KEY = "trainer.seed"
STATUS_ORDER = {"completed": 0, "running": 1, "interrupted": 1, "failed": 2}


@dataclass
class Trial:
    name: str  # the trial's dir, relative to the sweep dir
    path: Path
    overrides: dict[str, str]
    status: str  # completed | running (or interrupted: re-run the sweep) | failed
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float | None = None
    error: str | None = None
    metric: str | None = None  # the trial's trainer.metric

    @property
    def checkpoint(self) -> Path | None:
        best = self.path / "checkpoints" / "best"
        return best if best.is_dir() else None


def _split(overrides: list[str]) -> dict[str, str]:
    pairs = (o.split("=", 1) for o in overrides if "=" in o)
    return {k.lstrip("+~"): v for k, v in pairs}


def _load_yaml_list(path: Path) -> list[str]:
    import yaml

    try:
        return list(yaml.safe_load(path.read_text()) or [])
    except (OSError, yaml.YAMLError):
        return []


def read_trial(root: Path, job: Path) -> Trial:
    """One trial from its dir: status.json when ftcli ran it, else what Hydra and train wrote."""
    from ftcli.training.trials import read_status

    name = str(job.relative_to(root)) if job != root else "."
    metrics_file = job / "metrics.json"
    saved = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    status = read_status(job)
    if status is None:  # a sweep from before status files, or another tool's
        overrides = _load_yaml_list(job / ".hydra" / "overrides.yaml")
        return Trial(
            name, job, _split(overrides), "completed" if saved else "running", saved, saved.get("train_seconds")
        )
    metrics = status.get("metrics") or saved
    seconds = metrics.get("train_seconds", status.get("seconds"))
    return Trial(
        name,
        job,
        _split(status.get("overrides", [])),
        status.get("status", "running"),
        metrics,
        seconds,
        status.get("error"),
        status.get("metric"),
    )


def find_trials(root: Path) -> list[Trial]:
    """Every trial dir under ``root`` (any depth: trial dirs are named by their overrides)."""
    if not root.is_dir():
        raise FtcliError(f"{root}: no such sweep dir (ftcli train -m ... prints where it sweeps)")
    jobs = {p.parent for p in root.rglob("status.json")}
    jobs |= {p.parent.parent for p in root.rglob(".hydra/overrides.yaml")}
    jobs = {j for j in jobs if "checkpoints" not in j.relative_to(root).parts}
    if root in jobs and len(jobs) > 1:
        jobs.discard(root)  # the sweep dir itself is a trial only for a one-trial sweep
    return [read_trial(root, j) for j in sorted(jobs)]


def varying_keys(trials: list[Trial]) -> list[str]:
    """Override keys whose value differs between trials: the columns worth showing."""
    keys = sorted({k for t in trials for k in t.overrides})
    return [k for k in keys if len({t.overrides.get(k) for t in trials}) > 1]


def rank(trials: list[Trial], metric: str) -> list[Trial]:
    """Completed trials best first by ``metric``, then running, then failed ones."""
    sign = 1.0 if metric in LOWER_IS_BETTER else -1.0

    def key(t: Trial) -> tuple[int, float]:
        value = t.metrics.get(metric)
        return STATUS_ORDER.get(t.status, 1), sign * value if isinstance(value, int | float) else float("inf")

    return sorted(trials, key=key)


def seed_groups(trials: list[Trial], keys: list[str], metric: str) -> list[dict[str, Any]]:
    """Mean ± std of ``metric`` per configuration when trials differ by ``trainer.seed``; [] otherwise."""
    if SEED_KEY not in keys:
        return []
    others = [k for k in keys if k != SEED_KEY]
    groups: dict[tuple[str | None, ...], list[float]] = {}
    for t in trials:
        if t.status == "completed" and isinstance(t.metrics.get(metric), int | float):
            groups.setdefault(tuple(t.overrides.get(k) for k in others), []).append(float(t.metrics[metric]))
    if not any(len(v) > 1 for v in groups.values()):
        return []
    rows = [
        {
            **dict(zip(others, conf, strict=True)),
            "n": len(v),
            "mean": statistics.fmean(v),
            "std": statistics.stdev(v) if len(v) > 1 else 0.0,
        }
        for conf, v in groups.items()
    ]
    return sorted(rows, key=lambda r: r["mean"], reverse=metric not in LOWER_IS_BETTER)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def _short(value: str) -> str:
    """Optuna's 0.0002846526357761096 reads as 0.0002847 in a table (the CSV keeps every digit)."""
    try:
        number = float(value)
    except ValueError:
        return value
    return f"{number:.4g}" if len(value) > 8 and any(c in value for c in ".e") else value


def table_rows(ranked: list[Trial], keys: list[str], metric: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows shared by the terminal table and the Markdown file."""
    shown = [metric, *[m for m in SHOWN_METRICS if m != metric]]
    shown = [m for m in shown if any(m in t.metrics for t in ranked)] or [metric]
    errors = any(t.error for t in ranked)
    header = ["#", *keys, *shown, "train s", "status", *(["error"] if errors else [])]
    rows = []
    for i, t in enumerate(ranked, 1):
        seconds = f"{t.seconds:.1f}" if isinstance(t.seconds, int | float) else ""
        error = [(t.error or "")[:60] + ("…" if len(t.error or "") > 60 else "")] if errors else []
        values = [_short(t.overrides.get(k, "")) for k in keys]
        rows.append([str(i), *values, *[_fmt(t.metrics.get(m)) for m in shown], seconds, t.status, *error])
    return header, rows


def to_markdown(header: list[str], rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *map(line, rows)]) + "\n"


def to_csv(ranked: list[Trial], keys: list[str]) -> str:
    """Every trial with every metric: for a spreadsheet or pandas."""
    metrics = sorted({m for t in ranked for m, v in t.metrics.items() if isinstance(v, int | float)})
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["rank", "trial", *keys, *metrics, "train_seconds", "status", "error", "checkpoint", "overrides"])
    for i, t in enumerate(ranked, 1):
        overrides = " ".join(f"{k}={v}" for k, v in sorted(t.overrides.items()))
        values = [t.overrides.get(k, "") for k in keys] + [t.metrics.get(m, "") for m in metrics]
        seconds = t.seconds if t.seconds is not None else ""
        writer.writerow([i, t.name, *values, seconds, t.status, t.error or "", t.checkpoint or "", overrides])
    return buf.getvalue()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="ftcli leaderboard", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a multirun dir (ftcli train -m prints it)")
    parser.add_argument("--metric", choices=METRICS, default=None, help="rank by this (default: trainer.metric)")
    parser.add_argument("--out", type=Path, default=None, help="where leaderboard.csv/.md go (default: sweep dir)")
    args = parser.parse_args(argv)

    from rich.table import Table

    from ftcli.reporting.progress import console

    root: Path = args.sweep_dir
    trials = find_trials(root)
    if not trials:
        raise FtcliError(f"{root}: no trials here yet (each trial dir holds a status.json)")
    recorded = Counter(t.metric for t in trials if t.metric)
    metric = args.metric or (recorded.most_common(1)[0][0] if recorded else "accuracy")
    keys = varying_keys(trials)
    ranked = rank(trials, metric)
    header, rows = table_rows(ranked, keys, metric)
    counts = Counter(t.status for t in trials)
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=lambda kv: STATUS_ORDER.get(kv[0], 1)))

    # One line per trial, also in a log file: cells never wrap; a cell too long for the width ends in "…"
    # (the CSV and status.json keep the full text). The title is a line of its own: as a table title it
    # would wrap at the table's width.
    table = Table()
    for h in header:
        right = h in ("#", "train s", *METRICS)
        table.add_column(
            h,
            justify="right" if right else "left",
            no_wrap=True,
            overflow="ellipsis",
            max_width=40 if h == "error" else None,
        )
    styles = {"completed": "", "running": "yellow", "failed": "red"}
    for t, row in zip(ranked, rows, strict=True):
        table.add_row(*row, style=styles.get(t.status, ""))
    console.print(f"[i]{root} · {len(trials)} trials ({summary}) · by {metric}[/]", highlight=False)
    console.print(table)

    markdown = f"# {root}\n\n{len(trials)} trials ({summary}), ranked by {metric}.\n\n" + to_markdown(header, rows)
    groups = seed_groups(trials, keys, metric)
    if groups:
        others = [k for k in keys if k != SEED_KEY]
        seeds = Table()
        for h in [*others, "seeds", metric]:
            seeds.add_column(h, no_wrap=True, overflow="ellipsis")
        grows = [
            [*[str(g.get(k, "")) for k in others], str(g["n"]), f"{g['mean']:.4f} ± {g['std']:.4f}"] for g in groups
        ]
        for r in grows:
            seeds.add_row(*r)
        console.print(f"[i]{metric} over seeds (mean ± std)[/]", highlight=False)
        console.print(seeds)
        markdown += f"\n## {metric} over seeds (mean ± std)\n\n" + to_markdown([*others, "seeds", metric], grows)

    best = ranked[0]
    if best.status == "completed":
        where = best.checkpoint or "no checkpoint (trainer.save_checkpoints=false)"
        line = f"best: {best.name} · {metric} {_fmt(best.metrics.get(metric))} · checkpoint {where}"
        markdown += f"\n{line}\n"
        console.print(f"[bold green]{line}[/]")
    out = args.out or root
    out.mkdir(parents=True, exist_ok=True)
    (out / "leaderboard.csv").write_text(to_csv(ranked, keys))
    (out / "leaderboard.md").write_text(markdown)
    console.print(f"[dim]→ {out / 'leaderboard.csv'} · {out / 'leaderboard.md'}[/]")
