"""One table of a GLUE run (scripts/glue.sh): each task's official metrics on its validation set, and the mean.

    python scripts/glue_table.py outputs/glue_<date>      # reads <task>/eval/eval.json; writes glue.md there

MNLI's score is the mean of its matched and mismatched accuracy (when eval measured both), as GLUE averages
a task's metrics before averaging the tasks.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ORDER = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli")
SHOWN = {
    "cola": ("mcc",),
    "sst2": ("accuracy",),
    "mrpc": ("f1", "accuracy"),
    "stsb": ("pearson", "spearman"),
    "qqp": ("f1", "accuracy"),
    "mnli": ("accuracy", "accuracy_mismatched"),
    "qnli": ("accuracy",),
    "rte": ("accuracy",),
    "wnli": ("accuracy",),
}


def row(task: str, metrics: dict) -> tuple[list[str], float]:
    values = [(k, metrics[k]) for k in SHOWN[task] if isinstance(metrics.get(k), int | float)]
    score = sum(v for _, v in values) / len(values)
    text = " / ".join(f"{k} {100 * v:.1f}" for k, v in values)
    return [task.upper() if task != "sst2" else "SST-2", text, f"{100 * score:.1f}", str(metrics["examples"])], score


def main(root: Path) -> None:
    found = {t: root / t / "eval" / "eval.json" for t in ORDER if (root / t / "eval" / "eval.json").is_file()}
    if not found:
        sys.exit(f"{root}: no <task>/eval/eval.json here (run scripts/glue.sh)")
    rows, scores = [], []
    for task, path in found.items():
        cells, score = row(task, json.loads(path.read_text()))
        rows.append(cells)
        scores.append(score)
    rows.append(["average", f"{len(scores)} of 9 tasks", f"{100 * sum(scores) / len(scores):.1f}", ""])
    header = ["task", "validation metrics (official)", "score", "examples"]
    lines = ["| " + " | ".join(header) + " |", "| --- | --- | ---: | ---: |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    table = "\n".join(lines) + "\n"
    (root / "glue.md").write_text(table)
    print(table, end="")
    print(f"→ {root / 'glue.md'}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "."))
