"""The CLI as a newcomer meets it (issue 16): --help lists real options under ftcli's name, Hydra's own
flags print instead of failing, your own configs are accepted, Ctrl-C anywhere is one line, and commands
that only answer leave no files behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers.runs import ROOT, TINY, ftcli

from ftcli.config.validate import validate

SMALL = [o for o in TINY if not o.startswith("model=")]  # the tiny run's data and trainer settings
REQUIRED = {"dataset=files": ["dataset.train_file=x.csv"], "dataset=hub": ["dataset.path=x"]}


def listed_groups(help_text: str) -> dict[str, list[str]]:
    """``group  a, b, c  (now: a)`` lines of ``ftcli <command> --help``."""
    section = help_text.split("== Config groups: group=option ==\n", 1)[1].split("\n\n", 1)[0]
    groups = {}
    for line in section.splitlines():
        group, _, rest = line.strip().partition("  ")
        options = rest.strip().rsplit("  (now:", 1)[0]
        groups[group] = [] if options.startswith("(none") else options.split(", ")
    return groups


@pytest.mark.slow  # an end-to-end CLI run of 20-45 s on 2 cores: make test-slow
def test_train_help_lists_only_options_that_compose(compose) -> None:
    r = ftcli("train", "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: ftcli train ")
    assert "schema" not in r.stdout and "powered by hydra" not in r.stdout.lower()
    groups = listed_groups(r.stdout)
    assert {"model", "strategy", "dataset", "hardware", "hparams_search", "experiment"} <= set(groups)
    assert "tiny" in groups["model"] and "lora" in groups["strategy"] and groups["experiment"] == []
    for group, options in groups.items():
        for option in options:
            override = f"{group}={option}"
            validate(compose(override, *REQUIRED.get(override, [])))  # each listed option loads


def test_eval_help_lists_its_own_groups() -> None:
    r = ftcli("eval", "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: ftcli eval ") and "schema" not in r.stdout
    assert set(listed_groups(r.stdout)) == {"dataset", "hardware", "task"}  # task: what a dataset may pick


@pytest.mark.slow  # an end-to-end CLI run of 20-45 s on 2 cores: make test-slow
def test_cfg_job_resolve_prints_the_resolved_config(tmp_path: Path, cache_dir: Path) -> None:
    r = ftcli("train", *TINY, "--cfg", "job", "--resolve", cwd=tmp_path, env={"FTCLI_CACHE_DIR": str(cache_dir)})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "output_dir: outputs/" in r.stdout and "_tiny_feature_extract" in r.stdout
    assert "${" not in r.stdout and "Traceback" not in r.stderr
    r = ftcli("train", "model=tiny", "--cfg", "hydra", "--resolve", cwd=tmp_path)  # run.dir names the model
    assert r.returncode == 0, r.stderr[-2000:]
    assert "\nrun:\n  dir: outputs/" in r.stdout and "_tiny_feature_extract" in r.stdout and "${" not in r.stdout
    assert not (tmp_path / "outputs").exists()  # printed, not run


def test_cfg_with_multirun_fails_in_one_line(tmp_path: Path) -> None:
    r = ftcli("train", "-m", "strategy=full,lora", "--cfg", "job", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        "ftcli: error: --cfg shows one job: drop -m and give each key one value (e.g. strategy=full)"
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def own_configs(tmp_path: Path) -> Path:
    """A config dir of one's own: a model that inherits from tiny, an experiment in the global package."""
    conf = tmp_path / "myconf"
    (conf / "model").mkdir(parents=True)
    (conf / "experiment").mkdir()
    (conf / "model" / "mytiny.yaml").write_text(
        "# the shipped tiny with one layer\ndefaults: [tiny, _self_]\nname: mytiny\nconfig_overrides:\n"
        "  num_hidden_layers: 1\n"
    )
    (conf / "experiment" / "quick.yaml").write_text(
        textwrap.dedent(
            """\
            # @package _global_
            defaults:
              - override /model: mytiny
              - override /hardware: cpu
            dataset:
              max_train_samples: 256
              max_eval_samples: 64
            trainer:
              epochs: 1
            """
        )
    )
    return conf


@pytest.mark.slow  # an end-to-end CLI run of 20-45 s on 2 cores: make test-slow
def test_own_configs_through_config_dir_and_searchpath(own_configs: Path, tmp_path: Path, cache_dir: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    env = {"FTCLI_CACHE_DIR": str(cache_dir)}
    r = ftcli(
        "train", "--config-dir", str(own_configs), "model=mytiny", *SMALL, "trainer.dry_run=true", cwd=work, env=env
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "mytiny · text_classification · strategy=feature_extract" in r.stdout and "train 512" in r.stdout
    assert list(work.iterdir()) == []  # a dry run only answers: no run dir left behind

    r = ftcli(
        "train", f"hydra.searchpath=[file://{own_configs}]", "experiment=quick", "--cfg", "job", cwd=work, env=env
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "name: mytiny" in r.stdout and "num_hidden_layers: 1" in r.stdout and "max_train_samples: 256" in r.stdout
    assert "mytiny · text_classification · strategy=feature_extract" in r.stdout  # --cfg job shows what trains

    r = ftcli("train", "--config-dir", str(own_configs), "--help", cwd=work)
    groups = listed_groups(r.stdout)
    assert "mytiny" in groups["model"] and groups["experiment"] == ["quick"]

    r = ftcli("train", "--config-dir", str(tmp_path / "nope"), "model=mytiny", cwd=work)
    assert r.returncode == 2 and r.stderr.strip().endswith("no such folder")
    assert list(work.iterdir()) == []


@pytest.mark.slow  # an end-to-end CLI run of 20-45 s on 2 cores: make test-slow
def test_predict_leaves_no_files_and_logs_carry_ftclis_name(tmp_path: Path, cache_dir: Path) -> None:
    run = tmp_path / "run"
    env = {"FTCLI_CACHE_DIR": str(cache_dir)}
    r = ftcli("train", *TINY, "trainer.max_steps=2", f"hydra.run.dir={run}", env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (run / "ftcli.log").is_file() and not (run / "cli.log").exists()

    work = tmp_path / "work"
    work.mkdir()
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    r = ftcli("predict", f"checkpoint={run}", "text=what a film, really", cwd=work, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[0] in ("positive", "negative")
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing new anywhere


SLOW_PHASE = ["model=tiny", "dataset.max_train_samples=6000", "hardware=cpu"]


def test_ctrl_c_outside_the_training_steps_is_one_line_and_exit_130(tmp_path: Path) -> None:
    """SIGINT during the frozen-feature pass (before any optimizer step): one line, 130, caches whole."""
    cache = tmp_path / "cache"  # nothing cached: the feature pass really runs
    env = {**os.environ, "FTCLI_CACHE_DIR": str(cache), "PYTHONUNBUFFERED": "1"}
    env.pop("FTCLI_DEBUG", None)
    cmd = [sys.executable, "-m", "ftcli.cli", "train", *SLOW_PHASE, f"hydra.run.dir={tmp_path / 'run'}"]
    # A shell without job control starts background commands with SIGINT ignored, and Python keeps it so
    # (`make test &` would fail this test): the child gets the default handling a terminal's Ctrl-C meets.
    p = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert p.stdout is not None
    seen = []
    for line in p.stdout:
        seen.append(line)
        if line.startswith("features "):  # the first progress line of the feature pass
            p.send_signal(signal.SIGINT)
            break
    out, err = p.communicate(timeout=300)
    assert p.returncode == 130, "".join(seen) + out + err
    assert err.strip() == "ftcli: interrupted", err
    assert "Traceback" not in out + err and "optimizer steps" not in "".join(seen) + out  # it was not training
    assert (tmp_path / "run" / "error.txt").read_text().startswith("interrupted")
    assert not (tmp_path / "run" / "metrics.json").exists()

    from transformers import AutoTokenizer

    assert not list(cache.rglob("*.tmp*"))  # no half-written entry that a later run could trust
    for vocab in cache.glob("tokenizers/*"):
        assert len(AutoTokenizer.from_pretrained(vocab)) > 100  # the tiny vocab was written whole before
    for features in cache.rglob("*.safetensors"):
        from safetensors.torch import load_file

        assert load_file(str(features))


def test_debug_keeps_the_traceback_of_an_interrupt(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import ftcli.cli.main as cli

    def interrupted(args: list[str]) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_main", interrupted)
    monkeypatch.delenv("FTCLI_DEBUG", raising=False)
    with pytest.raises(SystemExit) as stop:
        cli.main(["train"])
    assert stop.value.code == 130 and capsys.readouterr().err.strip() == "ftcli: interrupted"
    with pytest.raises(KeyboardInterrupt):
        cli.main(["train", "--debug"])
