"""The CLI as a newcomer meets it (issue 16): --help lists real options under ftcli's name."""

from __future__ import annotations

from conftest import ftcli

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
