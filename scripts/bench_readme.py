#!/usr/bin/env python
"""Put a benchmark's generated tables into README.md as they are: between its bench markers.

    python scripts/bench_readme.py outputs/bench            # bench.md + bench.json of one full run
    python scripts/bench_readme.py outputs/bench-quick --force   # a smoke test too (never to be committed)

README.md holds ``<!-- bench:begin -->`` and ``<!-- bench:end -->`` in its Performance section; everything
between them is replaced by ``bench.md``. A run with fewer than 7 rounds, a quick run, or one that left out
a row is refused (without ``--force``): the README shows one whole ``make bench`` run or none.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
ALL_ROWS = {"a", "b", "c", "d", "e", "f"}
MIN_ROUNDS = 7


def why_not(meta: dict, rows: list[dict] | None = None) -> str | None:
    """Why this run cannot stand for the README's table, or None."""
    short = [r["id"] for r in rows or [] if r.get("rounds_done", MIN_ROUNDS) < MIN_ROUNDS]
    if short:
        return f"rows {', '.join(short)} stopped before their last round"
    if meta.get("quick"):
        return "a --quick run is a smoke test"
    if meta.get("rounds", 0) < MIN_ROUNDS:
        return f"{meta.get('rounds')} round(s): the table needs at least {MIN_ROUNDS}"
    missing = ALL_ROWS - set(meta.get("rows", []))
    if missing:
        return f"rows {', '.join(sorted(missing))} were not run: the table is one whole run"
    if not meta.get("timm_train"):
        return "timm's train.py was not given (--timm-train / TIMM_TRAIN): row (d) lacks a peer"
    return None


def splice(readme: str, table: str) -> str:
    """``readme`` with everything between the markers replaced by ``table``."""
    if readme.count(BEGIN) != 1 or readme.count(END) != 1 or readme.index(BEGIN) > readme.index(END):
        raise ValueError(f"README.md needs exactly one {BEGIN} … {END} pair, in that order")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table.strip()}\n{END}{tail}"


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
    args.readme.write_text(splice(args.readme.read_text(), (args.run / "bench.md").read_text()))
    print(f"{args.readme}: the Performance table is {args.run / 'bench.md'}")


if __name__ == "__main__":
    main()
