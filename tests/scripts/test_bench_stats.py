"""scripts/bench_stats.py, bench_report.py, bench_readme.py and bench_proc.py: the statistics, the README
splice and the job clock the benchmark's claims rest on, against hand-computed cases and numpy as a reference."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import bench_proc  # noqa: E402
import bench_readme  # noqa: E402
import bench_report  # noqa: E402
import bench_stats  # noqa: E402


def test_quantile_matches_numpy_linear_interpolation() -> None:
    values = sorted(np.random.default_rng(0).normal(size=37).tolist())
    for q in (0.0, 0.025, 0.3, 0.5, 0.975, 1.0):
        assert bench_stats._quantile(values, q) == pytest.approx(np.percentile(values, 100 * q))


def test_speedup_is_peer_over_ours_per_round() -> None:
    iv = bench_stats.speedup([10.0, 20.0, 5.0], [15.0, 20.0, 20.0])  # ratios 1.5, 1.0, 4.0
    assert iv.values == [1.5, 1.0, 4.0]
    assert iv.estimate == 1.5
    assert iv.low is not None and iv.high is not None
    assert 1.0 <= iv.low <= iv.estimate <= iv.high <= 4.0


def test_constant_ratios_have_a_point_interval() -> None:
    iv = bench_stats.speedup([10.0] * 7, [12.0] * 7)
    assert (iv.estimate, iv.low, iv.high) == pytest.approx((1.2, 1.2, 1.2))
    assert bench_stats.speed_verdict(iv) == "faster"
    assert bench_stats.meets(iv, 1.1) and not bench_stats.meets(iv, 1.3)


def test_two_values_bootstrap_median_spans_both() -> None:
    # resampled medians of [1, 3]: 1 (p 1/4), 2 (p 1/2), 3 (p 1/4) → the 2.5% and 97.5% quantiles are 1 and 3
    iv = bench_stats.bootstrap([1.0, 3.0], bench_stats.statistics.median)
    assert (iv.estimate, iv.low, iv.high) == (2.0, 1.0, 3.0)


def test_one_round_claims_nothing() -> None:
    iv = bench_stats.speedup([10.0], [30.0])
    assert iv.low is None and bench_stats.speed_verdict(iv) == "one round: no interval"
    assert not bench_stats.meets(iv, 1.1)


def test_an_interval_holding_one_is_parity_even_with_a_high_median() -> None:
    iv = bench_stats.Interval([0.8, 1.4, 1.5], 1.4, 0.8, 1.5)
    assert bench_stats.speed_verdict(iv) == "parity"
    assert not bench_stats.meets(iv, 1.3)  # the median reaches it, the interval does not clear 1.0
    assert bench_stats.speed_verdict(bench_stats.Interval([0.8], 0.8, 0.7, 0.9)) == "slower"


def test_accuracy_difference_is_mean_points_and_equal_when_it_holds_zero() -> None:
    iv = bench_stats.difference([0.80, 0.81, 0.79], [0.80, 0.80, 0.80])
    assert iv.values == pytest.approx([0.0, 1.0, -1.0])
    assert iv.estimate == pytest.approx(0.0)
    assert bench_stats.accuracy_verdict(iv) == "equal"
    higher = bench_stats.difference([0.9] * 5, [0.8] * 5)
    assert bench_stats.accuracy_verdict(higher) == "higher" and higher.estimate == pytest.approx(10.0)


def _contender(name: str, role: str, walls: list[float | None], accs: list[float]) -> dict:
    runs = [
        {"round": i, "ok": w is not None, "wall_s": w or 0.0, "accuracy": a}
        for i, (w, a) in enumerate(zip(walls, accs, strict=True))
    ]
    return {"name": name, "role": role, "settings": "", "runs": runs}


def test_analyse_pairs_only_rounds_both_finished_and_picks_the_fastest_peer() -> None:
    row = {
        "title": "(x)",
        "ours": "ftcli",
        "target": 1.1,
        "contenders": [
            _contender("ftcli", "ftcli", [10.0, 10.0, None], [0.8, 0.8, 0.8]),
            _contender("slow", "peer", [30.0, 30.0, 30.0], [0.8, 0.8, 0.8]),
            _contender("fast", "peer", [12.0, 11.0, 5.0], [0.7, 0.8, 0.8]),
            _contender("floor", "context", [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]),
        ],
    }
    bench_report.analyse(row)
    assert row["strongest"] == "fast"  # median 11 s; the context row does not count
    fast = row["comparisons"]["fast"]
    assert fast["rounds"] == [0, 1]  # round 2 failed on ftcli's side: its pair is dropped
    assert fast["speedup"]["values"] == pytest.approx([1.2, 1.1])
    assert fast["accuracy_points"]["values"] == pytest.approx([10.0, 0.0])
    assert row["target_met"] is True


def test_readme_splice_replaces_only_between_markers() -> None:
    readme = "# x\n## Performance\nprose\n<!-- bench:begin -->\nold\n<!-- bench:end -->\nafter\n"
    out = bench_readme.splice(readme, "| new |\n")
    assert out == "# x\n## Performance\nprose\n<!-- bench:begin -->\n| new |\n<!-- bench:end -->\nafter\n"
    with pytest.raises(ValueError):
        bench_readme.splice("no markers", "t")
    sft = "<!-- bench-sft:begin -->\n{}\n<!-- bench-sft:end -->\n"
    assert bench_readme.splice(readme + sft.format("old"), "| f |", "bench-sft") == readme + sft.format("| f |")


def test_readme_names_the_runs_figures_instead_of_linking_them() -> None:
    table = "- loss curves, every round: ![training loss](f_loss_curves.png)\n| a | b |\n"
    out = bench_readme.figures_as_paths(table, Path("outputs/bench-sft"))
    path = "`outputs/bench-sft/f_loss_curves.png` (written by the run)"
    assert out == f"- loss curves, every round: training loss: {path}\n| a | b |\n"


def test_readme_refuses_a_partial_run() -> None:
    whole = {"quick": False, "rounds": 7, "rows": list("cbead"), "timm_train": "train.py"}
    assert bench_readme.why_not(whole) is None
    assert "smoke" in bench_readme.why_not({**whole, "quick": True})
    assert "7" in bench_readme.why_not({**whole, "rounds": 3})
    assert "d, e" in bench_readme.why_not({**whole, "rows": list("abc")})
    assert "f belong" in bench_readme.why_not({**whole, "rows": list("abcdef")})
    sft = {"quick": False, "rounds": 7, "rows": ["f"], "timm_train": None}  # its own table, which needs no timm
    assert bench_readme.why_not(sft) is None and bench_readme.table_of(sft["rows"]) == "bench-sft"
    assert "timm" in bench_readme.why_not({**whole, "timm_train": None})
    assert "c stopped" in bench_readme.why_not(whole, [{"id": "b", "rounds_done": 7}, {"id": "c", "rounds_done": 4}])


def test_a_stopped_bench_leaves_the_stop_out_of_the_jobs_wall_time(monkeypatch: pytest.MonkeyPatch) -> None:
    real_sleep, calls = time.sleep, []

    def stalled_once(seconds: float) -> None:  # the parent's first poll comes 1.5 s late, as after SIGSTOP/SIGCONT
        calls.append(seconds)
        real_sleep(1.5 if len(calls) == 1 else seconds)

    monkeypatch.setattr(time, "sleep", stalled_once)
    m = bench_proc.run_job([sys.executable, "-c", "import time; time.sleep(2.5)"], Path.cwd(), {}, 60)
    assert m.returncode == 0
    assert m.paused_s == pytest.approx(1.45, abs=0.1)
    assert m.wall_s == pytest.approx(m.raw_wall_s - m.paused_s) and m.raw_wall_s >= 2.5


def test_the_report_names_rows_a_stopped_run_did_not_reach() -> None:
    row = {
        "id": "c",
        "title": "(c)",
        "setup": "",
        "ours": "ftcli",
        "target": 1.5,
        "notes": [],
        "contenders": [
            _contender("ftcli", "ftcli", [10.0] * 7, [0.8] * 7),
            _contender("p", "peer", [20.0] * 7, [0.8] * 7),
        ],
    }
    load = {"median": 0.0, "max": 0.0, "load1": 0.0}
    meta = {"command": "x", "date": "d", "machine": "m", "threads": "t", "rounds": 7, "seeds": "42–48"}
    meta.update(versions="v", quick=False, load=load, rows=["c"], rows_planned=["c", "a", "d"], paused_s=0.0)
    md = bench_report.markdown({"meta": meta, "rows": [bench_report.analyse(row)]})
    assert "**Rows not run: a, d**" in md
    assert "stopped before their last round" not in md
    row["rounds_done"] = 3
    assert "**Rows stopped before their last round: c (3 of 7) rounds done.**" in bench_report.markdown(
        {"meta": meta, "rows": [row]}
    )
    assert "| (c) | p | ×2.00 [2.00, 2.00] | faster | ≥ ×1.5 ✓ |" in md


def test_a_row_hands_over_every_finished_round(tmp_path: Path) -> None:
    import argparse
    import random

    import bench

    def contender(name: str, role: str) -> bench.Contender:
        code = "print('{\"accuracy\": 0.5}')"
        return bench.Contender(name, role, "", lambda seed, job: [sys.executable, "-c", code], bench.read_peer)

    row = bench.Row("c", "(c)", "", "ftcli", [contender("ftcli", "ftcli"), contender("p", "peer")])
    args = argparse.Namespace(rounds=2, threads=None, keep=False)
    seen: list[tuple[int, list[int]]] = []
    done = lambda r: seen.append((r["rounds_done"], [len(c["runs"]) for c in r["contenders"]]))  # noqa: E731
    out = bench.run_row(row, args, tmp_path, random.Random(0), done)
    assert seen == [(1, [1, 1]), (2, [2, 2])]
    assert out["rounds_done"] == 2 and all(run["accuracy"] == 0.5 for c in out["contenders"] for run in c["runs"])


def test_the_strongest_peer_is_the_one_ftcli_gains_least_on_round_by_round() -> None:
    row = {
        "title": "(x)",
        "ours": "ftcli",
        "target": 1.5,
        "contenders": [  # the load fell after round 1: raw medians would pick "b", the pairs say "a"
            _contender("ftcli", "ftcli", [100.0, 50.0, 50.0], [0.8] * 3),
            _contender("a", "peer", [105.0, 52.0, 53.0], [0.8] * 3),
            _contender("b", "peer", [160.0, 51.0, 60.0], [0.8] * 3),
        ],
    }
    assert bench_report.analyse(row)["strongest"] == "a"


def test_make_bench_runs_the_readme_tables_rows_and_the_smoke_test_every_row() -> None:
    import bench

    assert set(bench.parse_args([]).only) == bench_readme.TABLES["bench"]  # what the Performance table needs
    assert set(bench.parse_args(["--quick"]).only) == set().union(*bench_readme.TABLES.values())
    assert bench.parse_args(["--only", "f"]).only == ["f"]
