"""Markdown table of a strategy sweep: one row per job of ``ftcli train -m strategy=...``.

    python scripts/strategy_table.py multirun/strategies

Reads each job's config.yaml and metrics.json (jobs still running or failed are listed as such).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml


def rows(sweep: Path) -> list[str]:
    out = [
        "| strategy | validation accuracy | trainable params | trainable % | train time (s) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    jobs = sorted((d for d in sweep.iterdir() if (d / "config.yaml").is_file()), key=lambda d: int(d.name))
    for job in jobs:
        cfg = yaml.safe_load((job / "config.yaml").read_text())
        name = cfg["strategy"]["name"]
        metrics_file = job / "metrics.json"
        if not metrics_file.is_file():
            out.append(f"| {name} | (not finished) | | | |")
            continue
        m = json.loads(metrics_file.read_text())
        trainable = f"{m['trainable_params']:,}"
        final = m.get("trainable_params_final", m["trainable_params"])
        if final != m["trainable_params"]:  # gradual_unfreeze / lp_ft: start → end
            trainable += f" → {final:,}"
            pct = f"{m['trainable_pct']:.2f} → {100 * final / m['total_params']:.2f}"
        else:
            pct = f"{m['trainable_pct']:.2f}"
        out.append(f"| {name} | {m['accuracy']:.4f} | {trainable} | {pct} | {m['train_seconds']:.0f} |")
    return out


if __name__ == "__main__":
    print("\n".join(rows(Path(sys.argv[1] if len(sys.argv) > 1 else "multirun/strategies"))))
