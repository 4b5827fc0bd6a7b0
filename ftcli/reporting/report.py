"""What ``ftcli eval`` writes and prints: a short report.md that links the pictures, the terminal tables, and
the multi-checkpoint comparison."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from rich.table import Table

from ftcli.config.registry import subclasses
from ftcli.config.schemas import TaskConfig
from ftcli.reporting.plots import MAX_SHOWN, _pyplot, plot_confusion_matrix, plot_learning_curves, plot_reliability
from ftcli.reporting.progress import console

PER_TABLES = {"per_label": "label", "per_type": "entity type"}  # metric tables without a confusion matrix


def training_run_dir(ckpt: Path) -> Path | None:
    """The run dir that produced ``ckpt`` (it holds metrics.jsonl), if the checkpoint still sits in it."""
    run = ckpt.parent.parent
    return run if ckpt.parent.name == "checkpoints" and (run / "metrics.jsonl").is_file() else None


def write_report(metrics: dict[str, Any], names: list[str], out: Path, ckpt: Path) -> Path:
    """The three PNGs (where the data exists) and report.md linking them with the metrics table."""
    images: dict[str, Path | None] = {}
    run = training_run_dir(ckpt)
    if run is not None:
        curves = out / "learning_curves.png"
        images["Learning curves"] = plot_learning_curves(run / "metrics.jsonl", curves, metrics.get("metric", "loss"))
    if "confusion_matrix" in metrics:
        images["Confusion matrix"] = plot_confusion_matrix(
            metrics["confusion_matrix"], names, out / "confusion_matrix.png"
        )
    images["Reliability diagram"] = plot_reliability(metrics, out / "reliability.png")
    if _pyplot() is None:
        console.print("[yellow]matplotlib is not installed: report.md without pictures (pip install 'ftcli[plots]')")
    ci = metrics.get("ci95", {})
    rows = [(k, metrics[k], ci.get(k)) for k in reported(metrics)]
    lines = [
        f"# Evaluation of `{metrics['checkpoint']}`",
        "",
        f"{metrics['dataset']} / {metrics['split']}, {metrics['examples']} examples.",
        "",
        "| metric | value | 95% bootstrap interval |",
        "| --- | ---: | --- |",
        *[f"| {k} | {v:.4f} | {f'{c[0]:.4f} – {c[1]:.4f}' if c else ''} |" for k, v, c in rows],
        "",
    ]
    ts = metrics.get("temperature_scaling")
    if ts:
        lines += [
            f"Temperature scaling: T = {ts['temperature']:.3f} ({ts['where']}); "
            f"ECE {ts['ece_before']:.4f} → {ts['ece_after']:.4f}.",
            "",
        ]
    if "per_class" in metrics:
        lines += ["| class | precision | recall | f1 | support |", "| --- | ---: | ---: | ---: | ---: |"]
        for n in names:
            c = metrics["per_class"][n]
            lines.append(f"| {n} | {c['precision']:.4f} | {c['recall']:.4f} | {c['f1']:.4f} | {c['support']} |")
        lines.append("")
    if len(names) > MAX_SHOWN and metrics.get("most_confused"):
        lines += ["Most confused pairs:", "", "| true | predicted | count |", "| --- | --- | ---: |"]
        lines += [f"| {c['true']} | {c['predicted']} | {c['count']} |" for c in metrics["most_confused"]]
        lines.append("")
    for key, what in PER_TABLES.items():  # multi-label: per label; NER: per entity type
        if key in metrics:
            lines += [f"| {what} | precision | recall | f1 | support |", "| --- | ---: | ---: | ---: | ---: |"]
            for n, c in metrics[key].items():
                lines.append(f"| {n} | {c['precision']:.4f} | {c['recall']:.4f} | {c['f1']:.4f} | {c['support']} |")
            lines.append("")
    if "tuned_thresholds" in metrics:
        lines += [tuned_line(metrics), ""]
    for title, path in images.items():
        if path is not None:
            lines += [f"## {title}", "", f"![{title}]({path.name})", ""]
    if run is not None:
        lines += [f"Training run: `{run}` (metrics.jsonl is the source of the learning curves).", ""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report


def reported(metrics: dict[str, Any]) -> list[str]:
    """The metric keys worth a row, in the task's order: what ``trainer.metric`` may name, then ECE."""

    schemas = [s for s in subclasses(TaskConfig) if s.option == metrics.get("task")]
    names = list(schemas[0].metrics) if schemas else ["accuracy", "f1_macro", "mcc", "loss"]
    return [k for k in [*names, "ece"] if isinstance(metrics.get(k), (int, float))]


def summary_line(metrics: dict[str, Any]) -> str:
    """The task's first two metrics with their 95% intervals, ECE (before → after temperature scaling)."""
    ci = metrics.get("ci95", {})

    def with_ci(key: str) -> str:
        lo_hi = ci.get(key)
        return f"{key} {metrics[key]:.4f}" + (f" [95% CI {lo_hi[0]:.4f}–{lo_hi[1]:.4f}]" if lo_hi else "")

    line = " · ".join(with_ci(k) for k in reported(metrics)[:2])
    if "ece" in metrics:
        line += f" · ECE {metrics['ece']:.4f}"
    ts = metrics.get("temperature_scaling")
    if ts:
        before, after = f"{ts['ece_before']:.4f}", f"{ts['ece_after']:.4f}"
        line += f" · temperature {ts['temperature']:.3f}: ECE {before} → {after} ({ts['where']})"
    return f"{line}  → {metrics['checkpoint']}"


def print_report(metrics: dict[str, Any], names: list[str]) -> None:
    """The metrics table, the per-class table with the confusion matrix (classification), the summary."""

    summary = Table(title=f"{metrics['dataset']} / {metrics['split']}  ({metrics['examples']} examples)")
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    for key in reported(metrics):
        summary.add_row(key, f"{metrics[key]:.4f}")
    summary.add_row("samples/s", f"{metrics['samples_per_s']:.0f}")
    console.print(summary)
    if "per_class" in metrics:
        matrix = len(names) <= MAX_SHOWN  # more classes: the most confused pairs instead of the matrix
        per_class = Table(title="per class")
        for col in ("label", "precision", "recall", "f1", "support", *[f"pred {n}" for n in names if matrix]):
            per_class.add_column(col, justify="right")
        for i, n in enumerate(names):
            c = metrics["per_class"][n]
            row = [n, f"{c['precision']:.4f}", f"{c['recall']:.4f}", f"{c['f1']:.4f}", str(c["support"])]
            per_class.add_row(*row, *[str(v) for v in metrics["confusion_matrix"][i] if matrix])
        console.print(per_class)
        if not matrix and metrics.get("most_confused"):
            pairs = Table(title="most confused pairs")
            for col in ("true", "predicted", "count"):
                pairs.add_column(col, justify="right")
            for c in metrics["most_confused"]:
                pairs.add_row(c["true"], c["predicted"], str(c["count"]))
            console.print(pairs)
    for key, what in PER_TABLES.items():
        if key in metrics:
            table = Table(title=f"per {what}")
            for col in (what, "precision", "recall", "f1", "support"):
                table.add_column(col, justify="right")
            for n, c in metrics[key].items():
                table.add_row(n, f"{c['precision']:.4f}", f"{c['recall']:.4f}", f"{c['f1']:.4f}", str(c["support"]))
            console.print(table)
    if "tuned_thresholds" in metrics:
        console.print(tuned_line(metrics), highlight=False)
    console.print(summary_line(metrics))


def tuned_line(metrics: dict[str, Any]) -> str:
    """Multi-label thresholds tuned by ``eval.tune_thresholds``: where, and what they change."""
    tuned = metrics["tuned_thresholds"]
    after = tuned["metrics"]
    each = ", ".join(f"{n} {t:.2f}" for n, t in tuned["thresholds"].items())
    change = " · ".join(f"{k} {metrics[k]:.4f} → {after[k]:.4f}" for k in ("f1_micro", "f1_macro") if k in metrics)
    return f"tuned thresholds (fitted on {tuned['fitted_on']}): {each}; {change}"


def write_comparison(rows: list[dict[str, Any]], out: Path, metric: str) -> None:
    """One table of every checkpoint on the same data: comparison.csv, comparison.md and the terminal."""

    out.mkdir(parents=True, exist_ok=True)
    shown = list(dict.fromkeys([metric, *reported(rows[0])]))
    header = ["run", *shown, "examples", f"{metric}_ci95", "checkpoint", "folder"]
    table_rows = []
    for i, r in enumerate(rows):
        ci = r.get("ci95", {}).get(metric)
        table_rows.append(
            {
                "run": r["run"],
                **{k: r.get(k) for k in [*shown, "examples"]},
                f"{metric}_ci95": f"{ci[0]:.4f}–{ci[1]:.4f}" if ci else "",
                "checkpoint": r["checkpoint"],
                "folder": f"{i:02d}",
            }
        )
    with (out / "comparison.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(table_rows)

    def fmt(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    md = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    md += ["| " + " | ".join(fmt(r[h]) for h in header) + " |" for r in table_rows]
    (out / "comparison.md").write_text("\n".join(md) + "\n")
    table = Table()  # one line per checkpoint, also in a log file: a long run name ends in "…" (the CSV has it)
    columns = ["folder", "run", *shown, f"{metric}_ci95"]
    for h in columns:
        table.add_column(h, justify="left" if h == "run" else "right", no_wrap=True, overflow="ellipsis")
    for r in table_rows:
        table.add_row(*(fmt(r[h]) for h in columns))
    console.print(f"[i]{len(rows)} checkpoints on {rows[0]['dataset']} / {rows[0]['split']}[/]", highlight=False)
    console.print(table)
    (out / "comparison.json").write_text(json.dumps(table_rows, indent=2))
