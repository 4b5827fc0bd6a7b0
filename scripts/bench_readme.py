#!/usr/bin/env python
"""Put a benchmark's generated tables into README.md as they are: between its bench markers.

    python scripts/bench_readme.py outputs/bench            # make bench: rows a–e, the Performance table
    python scripts/bench_readme.py outputs/bench-sft        # make bench-sft: row f, the causal-LM section's table
    python scripts/bench_readme.py outputs/bench-quick --force   # a smoke test too (never to be committed)

README.md holds one ``<!-- bench:begin -->`` … ``<!-- bench:end -->`` pair per table (``bench`` in its
Performance section, ``bench-sft`` in the causal-LM section); a run's rows name its table, and everything
between that table's markers is replaced by ``bench.md``. A run with fewer than 7 rounds, a quick run, or one
that left out a row of its table is refused (without ``--force``): each table shows one whole run or none.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLES = {"bench": {"a", "b", "c", "d", "e"}, "bench-sft": {"f"}}  # marker name → the rows of its one run
MIN_ROUNDS = 7


def table_of(rows: list[str]) -> str:
    """The README table a run with these rows belongs to: the one that holds its first row."""
    return next((name for name, ids in TABLES.items() if rows and rows[0] in ids), "bench")


def why_not(meta: dict, rows: list[dict] | None = None) -> str | None:
    """Why this run cannot stand for the README's table, or None."""
    short = [r["id"] for r in rows or [] if r.get("rounds_done", MIN_ROUNDS) < MIN_ROUNDS]
    if short:
        return f"rows {', '.join(short)} stopped before their last round"
    if meta.get("quick"):
        return "a --quick run is a smoke test"
    if meta.get("rounds", 0) < MIN_ROUNDS:
        return f"{meta.get('rounds')} round(s): the table needs at least {MIN_ROUNDS}"
    rows_run = set(meta.get("rows", []))
    table = TABLES[table_of(meta.get("rows", []))]
    if rows_run - table:
        return f"rows {', '.join(sorted(rows_run - table))} belong to another table: run each table on its own"
    if table - rows_run:
        return f"rows {', '.join(sorted(table - rows_run))} were not run: the table is one whole run"
    if "d" in table and not meta.get("timm_train"):
        return "timm's train.py was not given (--timm-train / TIMM_TRAIN): row (d) lacks a peer"
    return None


def splice(readme: str, table: str, name: str = "bench") -> str:
    """``readme`` with everything between ``name``'s markers replaced by ``table``."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if readme.count(begin) != 1 or readme.count(end) != 1 or readme.index(begin) > readme.index(end):
        raise ValueError(f"README.md needs exactly one {begin} … {end} pair, in that order")
    head, rest = readme.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{table.strip()}\n{end}{tail}"


def figures_as_paths(table: str, run: Path) -> str:
    """The run's figures (``![alt](f_loss_curves.png)``, beside bench.md) as their paths: they stay in the run's
    folder, which is not committed, so a README image link would be broken."""
    return re.sub(r"!\[([^\]]*)\]\(([^)/]+\.png)\)", lambda m: f"{m[1]}: `{run / m[2]}` (written by the run)", table)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="the folder scripts/bench.py wrote (bench.md, bench.json)")
    p.add_argument("--readme", type=Path, default=ROOT / "README.md")
    p.add_argument("--force", action="store_true", help="splice a partial or quick run too")
    args = p.parse_args()
    result = json.loads((args.run / "bench.json").read_text())
    reason = why_not(result["meta"], result["rows"])
    if reason and not args.force:
        sys.exit(f"bench_readme: not spliced into {args.readme.name}: {reason} (--force to do it anyway)")
    name = table_of(result["meta"].get("rows", []))
    table = figures_as_paths((args.run / "bench.md").read_text(), args.run)
    args.readme.write_text(splice(args.readme.read_text(), table, name))
    print(f"{args.readme}: its {name} table is {args.run / 'bench.md'}")


if __name__ == "__main__":
    main()
