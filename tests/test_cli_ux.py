"""The CLI as a newcomer meets it (issue 16): --help lists real options under ftcli's name, and Hydra's
own flags print instead of failing."""

from __future__ import annotations

from pathlib import Path

from conftest import TINY, ftcli

from ftcli.config import validate

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


def test_train_help_lists_only_options_that_compose(compose) -> None:
    r = ftcli("train", "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: ftcli train ")
    assert "schema" not in r.stdout and "powered by hydra" not in r.stdout.lower()
    groups = listed_groups(r.stdout)
    assert {"model", "strategy", "dataset", "hardware", "hparams_search"} <= set(groups)
    assert "tiny" in groups["model"] and "lora" in groups["strategy"]
    for group, options in groups.items():
        for option in options:
            override = f"{group}={option}"
            validate(compose(override, *REQUIRED.get(override, [])))  # each listed option loads


def test_eval_help_lists_its_own_groups() -> None:
    r = ftcli("eval", "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: ftcli eval ") and "schema" not in r.stdout
    assert set(listed_groups(r.stdout)) == {"dataset", "hardware"}


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
