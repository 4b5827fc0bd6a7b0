"""The benchmark's report: every row's paired statistics, then one markdown file and one JSON file.

``analyse(row)`` compares ftcli with every other contender of its row over the rounds where both ran:
the median paired whole-process speed-up with its bootstrap 95% interval, the mean paired accuracy
difference with its interval, and picks the row's strongest peer: the one ftcli's median paired speed-up is
lowest against (the fastest relative to ftcli round by round, less swayed by a shared machine's changing load
than medians of raw wall times). ``markdown(result)`` is what README.md includes between its bench
markers, as is. ``python scripts/bench_report.py DIR`` writes DIR/bench.md again from DIR/bench.json.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from bench_stats import Interval, accuracy_verdict, difference, meets, speed_verdict, speedup

Row = dict[str, Any]


def ok_runs(contender: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {r["round"]: r for r in contender["runs"] if r.get("ok")}


def median_of(contender: dict[str, Any], key: str) -> float | None:
    values = [r[key] for r in ok_runs(contender).values() if r.get(key) is not None]
    return statistics.median(values) if values else None


def compare(ours: dict[str, Any], other: dict[str, Any]) -> dict[str, Any] | None:
    """Paired speed-up (other's wall / ours) and accuracy difference (ours − other) over shared rounds."""
    a, b = ok_runs(ours), ok_runs(other)
    rounds = sorted(set(a) & set(b))
    if not rounds:
        return None
    speed = speedup([a[i]["wall_s"] for i in rounds], [b[i]["wall_s"] for i in rounds])
    out: dict[str, Any] = {"rounds": rounds, "speedup": speed.as_dict(), "speed": speed_verdict(speed)}
    accs = [i for i in rounds if a[i].get("accuracy") is not None and b[i].get("accuracy") is not None]
    if accs:
        diff = difference([a[i]["accuracy"] for i in accs], [b[i]["accuracy"] for i in accs])
        out.update(accuracy_points=diff.as_dict(), accuracy=accuracy_verdict(diff))
    return out


def analyse(row: Row) -> Row:
    """Add ``comparisons`` (ftcli against each contender), ``strongest`` and ``target_met`` to a row."""
    by_name = {c["name"]: c for c in row["contenders"]}
    ours = by_name[row["ours"]]
    row["comparisons"] = {}
    for c in row["contenders"]:
        if c["name"] != row["ours"]:
            row["comparisons"][c["name"]] = compare(ours, c)
    peers = [c for c in row["contenders"] if c["role"] == "peer" and row["comparisons"].get(c["name"])]
    row["strongest"] = (
        min(peers, key=lambda c: row["comparisons"][c["name"]]["speedup"]["estimate"])["name"] if peers else None
    )
    row["target_met"] = None
    if row["strongest"] and row.get("target"):
        iv = Interval(**row["comparisons"][row["strongest"]]["speedup"])
        row["target_met"] = meets(iv, row["target"])
    return row


# ---------------------------------------------------------------------------------------------------
# markdown


def _x(iv: dict[str, Any] | None) -> str:
    if not iv:
        return "—"
    if iv["low"] is None:
        return f"×{iv['estimate']:.2f}"
    return f"×{iv['estimate']:.2f} [{iv['low']:.2f}, {iv['high']:.2f}]"


def _pt(iv: dict[str, Any] | None) -> str:
    if not iv:
        return "—"
    if iv["low"] is None:
        return f"{iv['estimate']:+.1f} pt"
    return f"{iv['estimate']:+.1f} pt [{iv['low']:+.1f}, {iv['high']:+.1f}]"


def _precision(value: str | None) -> str:
    return {"no": "fp32", None: "—"}.get(value, str(value))


def _num(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _short(row: Row, meta: dict[str, Any]) -> bool:
    return row.get("rounds_done", meta["rounds"]) < meta["rounds"]


def summary_table(rows: list[Row]) -> list[str]:
    lines = [
        "| row | ftcli vs the strongest peer | whole-process speed-up, median [95% CI] | verdict | target "
        "| accuracy ftcli − peer, mean [95% CI] |",
        "| --- | --- | ---: | --- | ---: | ---: |",
    ]
    for row in rows:
        peer = row.get("strongest")
        if peer is None:
            lines.append(f"| {row['title']} | {row.get('skipped') or 'no peer ran'} | | | | |")
            continue
        cmp = row["comparisons"][peer]
        target = f"≥ ×{row['target']:g}" if row.get("target") else "—"
        met = {True: " ✓", False: " ✗", None: ""}[row.get("target_met")]
        acc = f"{_pt(cmp.get('accuracy_points'))} ({cmp.get('accuracy', '—')})" if cmp.get("accuracy_points") else "—"
        lines.append(f"| {row['title']} | {peer} | {_x(cmp['speedup'])} | {cmp['speed']} | {target}{met} | {acc} |")
    return lines


def detail_table(row: Row) -> list[str]:
    lines = [
        f"\n#### {row['title']}\n",
        row["setup"] + "\n",
        "| contender | role | precision | whole process s | by round | CPU s | loop samples/s | peak RSS MB "
        "| accuracy | ftcli's speed-up [95% CI] | ftcli − it, accuracy [95% CI] | others' load |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in row["contenders"]:
        runs = sorted(c["runs"], key=lambda r: r["round"])
        walls = " / ".join(f"{r['wall_s']:.1f}" if r.get("ok") else "failed" for r in runs)
        precision = "/".join(sorted({_precision(r.get("precision")) for r in runs if r.get("ok")})) or "—"
        cmp = row["comparisons"].get(c["name"]) or {}
        ours = c["name"] == row["ours"]
        lines.append(
            f"| {c['name']} | {c['role']} | {precision} | {_num(median_of(c, 'wall_s'), '.1f')} | {walls} "
            f"| {_num(median_of(c, 'cpu_s'), '.1f')} | {_num(median_of(c, 'samples_per_s'), '.1f')} "
            f"| {_num(median_of(c, 'peak_rss_mb'), '.0f')} "
            f"| {_num(median_of(c, 'accuracy'), '.4f')} | {'—' if ours else _x(cmp.get('speedup'))} "
            f"| {'—' if ours else _pt(cmp.get('accuracy_points'))} | {_num(median_of(c, 'other_cores'), '.2f')} |"
        )
    lines.append("")
    lines += sft_lines(row)
    lines += [f"- **{c['name']}**: {c['settings']}" for c in row["contenders"]]
    failures = [(c["name"], r) for c in row["contenders"] for r in c["runs"] if not r.get("ok")]
    lines += [f"- round {r['round'] + 1} of {n} failed: `{r.get('error', '')[:200]}`" for n, r in failures]
    lines += [f"- {note}" for note in row.get("notes", [])]
    return lines


def sft_lines(row: Row) -> list[str]:
    """Generative rows: each side's final validation loss and training tokens/s (medians), ftcli's loss against the
    strongest peer's, and the overlaid loss curves."""
    sides = [c for c in row["contenders"] if median_of(c, "val_loss") is not None]
    if not sides:
        return []
    out = [
        f"- **{c['name']}**: final validation loss {median_of(c, 'val_loss'):.4f}, training "
        f"{_num(median_of(c, 'tokens_per_s'), '.1f')} tokens/s (its own loop's clock), medians"
        for c in sides
    ]
    ours = median_of(next(c for c in sides if c["name"] == row["ours"]), "val_loss")
    peer = next((c for c in sides if c["name"] == row.get("strongest")), None)
    if peer is not None:
        theirs = median_of(peer, "val_loss")
        out.append(f"- validation loss, ftcli relative to {peer['name']}: {100 * (ours / theirs - 1):+.1f}%")
    return [*out, f"- loss curves, every round: ![training loss]({row['id']}_loss_curves.png)", ""]


def plot_curves(row: Row, out_dir: Path) -> None:
    """``<id>_loss_curves.png``: every round's training loss per step, one colour per contender."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for colour, c in zip(("C0", "C1", "C2", "C3"), row["contenders"], strict=False):
        for i, r in enumerate(x for x in c["runs"] if x.get("loss_curve")):
            steps, losses = zip(*r["loss_curve"], strict=True)
            ax.plot(steps, losses, color=colour, alpha=0.6, lw=1, label=c["name"] if i == 0 else None)
    ax.set(xlabel="optimizer step", ylabel="training loss", title=row["title"], yscale="log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / f"{row['id']}_loss_curves.png", dpi=120)
    plt.close(fig)


def markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    rows = [r for r in result["rows"] if not r.get("skipped")]
    head = [
        f"Generated by `{meta['command']}` on {meta['date']} · {meta['machine']} · {meta['threads']} · "
        f"{meta['rounds']} round(s) per row in random order (seeds {meta['seeds']}) · {meta['versions']}",
        "",
        f"Machine load while it ran (other processes' CPU, in cores, per job): median {meta['load']['median']:.2f}, "
        f"max {meta['load']['max']:.2f}; 1-minute load average at job starts: median {meta['load']['load1']:.2f}.",
    ]
    if meta.get("paused_s"):
        head[-1] += (
            f" The bench was stopped by other work for {meta['paused_s']:.0f} s in all; those intervals are left "
            "out of the jobs' wall times."
        )
    missing = [r for r in meta.get("rows_planned", []) if r not in meta["rows"]]
    if missing:
        head += ["", f"**Rows not run: {', '.join(missing)}** — the run was stopped before it reached them."]
    short = [f"{r['id']} ({r['rounds_done']} of {meta['rounds']})" for r in rows if _short(r, meta)]
    if short:
        head += ["", f"**Rows stopped before their last round: {', '.join(short)} rounds done.**"]
    if meta["quick"] or meta["rounds"] < 7:
        head += ["", "**A smoke test (fewer than 7 rounds or reduced sizes): not a measurement.**"]
    out = [*head, "", *summary_table(result["rows"])]
    out += [
        "",
        "Speed-up: the peer's whole-process wall time over ftcli's in the same round; median of the rounds with a "
        "percentile-bootstrap 95% interval. *faster* / *slower* only when the interval excludes ×1.00, else "
        "*parity*; a target is met when the median reaches it and the interval lies above ×1.00. Accuracy: "
        "validation accuracy of the final epoch, ftcli minus the peer at the same seed, mean over rounds with its "
        "interval (*equal* when it holds 0).",
    ]
    for row in rows:
        out += detail_table(row)
    skipped = [r for r in result["rows"] if r.get("skipped")]
    out += ["", *[f"- {r['title']}: {r['skipped']}" for r in skipped]] if skipped else []
    return "\n".join(out) + "\n"


def write(result: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """bench.json (every run, every statistic) and bench.md (the tables README.md includes)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for row in result["rows"]:
        if not row.get("skipped"):
            analyse(row)
            if any(r.get("loss_curve") for c in row["contenders"] for r in c["runs"]):
                plot_curves(row, out_dir)
    js, md = out_dir / "bench.json", out_dir / "bench.md"
    js.write_text(json.dumps(result, indent=1))
    md.write_text(markdown(result))
    return js, md


if __name__ == "__main__":  # bench.md again from bench.json's runs (the statistics are recomputed, nothing else)
    import sys

    folder = Path(sys.argv[1])
    print(write(json.loads((folder / "bench.json").read_text()), folder)[1])
