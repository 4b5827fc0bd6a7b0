#!/usr/bin/env python
"""Where a process spends its CPU time, by phase: a cProfile on the CPU clock, summed per named function.

    python scripts/profile_phases.py -m ftcli train strategy=full dataset.train_file=train.tsv …
    python scripts/profile_phases.py scripts/bench_text.py job.json
    python scripts/profile_phases.py --phases load_data,fit -- -m ftcli eval checkpoint=…

Prints the process's CPU seconds under the profiler, the part spent importing modules (every outermost
``import``), and the inclusive CPU seconds of each phase — by default ftcli's: its preflight check and Hydra's
``load_configuration`` (the two config compositions), the run's named phases ``start`` … ``Loop.fit`` …
``finish``, and ``run_eval`` / ``eval_checkpoint``. The CPU clock (``time.process_time``) counts every thread
of the process, so the split holds on a busy machine, where wall time does not; the profiler itself adds
overhead to Python-heavy code. The benchmark's notes use it to say where a row's time goes (README
"Performance").
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import runpy
import sys
import time

PHASES = ",".join(
    ["preflight", "load_configuration", "start", "load_data", "build", "make_batches", "make_optimisation"]
    + ["fit", "finish", "run_eval", "eval_checkpoint"]
)
IMPORT = "_find_and_load"  # importlib's entry for one import; cumulative time of a recursive function counts once


def by_name(stats: pstats.Stats, names: list[str]) -> dict[str, float]:
    """Inclusive CPU seconds of every function called one of ``names`` (summed over files)."""
    out = dict.fromkeys(names, 0.0)
    for (_file, _line, func), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if func in out:
            out[func] += ct
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--phases", default=PHASES, help="comma-separated function names to report")
    p.add_argument("--top", type=int, default=0, help="also print the N functions with the most inclusive CPU")
    p.add_argument("target", nargs=argparse.REMAINDER, help="-m module args… | script.py args…")
    args = p.parse_args()
    target = [a for a in args.target if a != "--"]
    if not target:
        p.error("give -m <module> [args] or <script.py> [args]")
    module = target[0] == "-m"
    sys.argv = target[1:] if module else target  # what the profiled program sees as its argv
    profiler = cProfile.Profile(time.process_time)
    code = 0
    profiler.enable()
    try:
        if module:
            runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(sys.argv[0], run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        profiler.disable()
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    names = [IMPORT, *args.phases.split(",")]
    print(f"\nCPU seconds under the profiler: {total:.1f} (exit {code})", file=sys.stderr)
    for name, seconds in by_name(stats, names).items():
        label = "imports" if name == IMPORT else name
        if seconds:
            print(f"  {label:<20} {seconds:7.1f}  {100 * seconds / total:5.1f} %", file=sys.stderr)
    if args.top:
        stats.sort_stats("cumulative").print_stats(args.top)
    sys.exit(code)


if __name__ == "__main__":
    main()
