"""``ftcli <command> [overrides]``: picks the command and hands the rest of argv to Hydra.

No training logic lives here, and nothing heavy is imported before a command needs it
(``ftcli --help`` must stay fast).
"""

from __future__ import annotations

import os
import sys
from typing import Any

USAGE = """usage: ftcli <command> [key=value ...] [hydra flags]

commands:
  train   fine-tune a model           ftcli train model=bert strategy=full strategy.lr=3e-5
  eval    evaluate a checkpoint       ftcli eval checkpoint=outputs/<run>/checkpoints/best

Hydra owns the rest of the command line:
  ftcli train -m strategy=full,feature_extract     sweep (one run dir per job)
  ftcli train --cfg job                            print the composed config, do not run
  ftcli train --help                               config groups and their options
  ftcli train hydra.run.dir=outputs/mine           choose the run directory

add --debug for full tracebacks.
"""

COMMANDS = {"train": "train", "eval": "eval"}  # command → config name under configs/
# Hydra flags that take a value, and flags after which no job runs (no preflight needed).
VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
               "--config-dir", "-cd", "--experimental-rerun"}  # fmt: skip
NO_RUN_FLAGS = {"--help", "-h", "--hydra-help", "--info", "-i", "--shell-completion", "-sc", "--version"}


def fail(message: str) -> None:
    """One line on stderr and exit status 2: how ftcli answers a user mistake."""
    print(f"ftcli: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def split_overrides(args: list[str]) -> tuple[list[str], bool]:
    """The key=value overrides among Hydra's arguments, and whether a job will run at all."""
    overrides, runs, skip = [], True, False
    for a in args:
        if skip:
            skip = False
            continue
        if a in NO_RUN_FLAGS:
            runs = False
        elif a in VALUE_FLAGS:
            skip = True
        elif not a.startswith("-") and "=" in a and not a.startswith("hydra."):
            overrides.append(a)
    return overrides, runs


def expand_sweeps(overrides: list[str]) -> list[list[str]]:
    """Override lists that cover every value of every sweep (each value once, not the full grid)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    base, sweeps = [], []
    for o in parsed:
        if not o.is_sweep_override():
            base.append(o.input_line)
            continue
        try:
            values = list(o.sweep_string_iterator())
        except Exception:  # intervals and other non-discrete sweeps: checked when each job composes
            continue
        sweeps.append([f"{o.get_key_element()}={v}" for v in values])
    combos = [base + [s[0] for s in sweeps]]
    for i, values in enumerate(sweeps):
        for v in values[1:]:
            combos.append(base + [s[0] if j != i else v for j, s in enumerate(sweeps)])
    return combos


def preflight(config_name: str, overrides: list[str]) -> None:
    """Compose and validate every job's config before Hydra starts: mistakes fail in one line, early."""
    from hydra import compose, initialize_config_dir

    from ftcli.config import FtcliError, config_dir, explain, validate

    try:
        combos = expand_sweeps(overrides)
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3", job_name="ftcli"):
            for combo in combos:
                cfg = compose(config_name=config_name, overrides=combo)
                cfg.output_dir, cfg.cache_dir = ".", "."  # Hydra's run dir does not exist yet
                validate(cfg)
    except FtcliError as e:
        fail(str(e))
    except Exception as e:  # Hydra / OmegaConf composition errors
        fail(explain(e))


def run_task(command: str, cfg: Any) -> Any:
    """What Hydra calls for every job. Returns the number a sweeper optimises."""
    from ftcli.config import FtcliError
    from ftcli.progress import quiet_libraries

    quiet_libraries()
    try:
        if command == "train":
            from ftcli.train import train

            metrics = train(cfg)
            return metrics.get(cfg.trainer.metric)
        from ftcli.evaluate import run_eval

        return run_eval(cfg).get("accuracy")
    except FtcliError as e:
        if os.environ.get("FTCLI_DEBUG"):
            raise
        fail(str(e))


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        fail(f"unknown command '{command}'; choose one of {', '.join(COMMANDS)}")
    if "--debug" in rest:
        rest.remove("--debug")
        os.environ["FTCLI_DEBUG"] = os.environ["HYDRA_FULL_ERROR"] = "1"

    import hydra

    from ftcli.config import config_dir, register_configs

    register_configs()
    overrides, runs = split_overrides(rest)
    if runs:
        preflight(COMMANDS[command], overrides)

    @hydra.main(config_path=str(config_dir()), config_name=COMMANDS[command], version_base="1.3")
    def task(cfg: Any) -> Any:
        return run_task(command, cfg)

    sys.argv = [f"ftcli {command}", *rest]
    task()
    if command == "train" and _flag_value(rest, "--cfg", "-c") in ("job", "all"):
        show_trainable(overrides)  # after the config: what would train, without training


def _flag_value(args: list[str], *flags: str) -> str | None:
    for i, a in enumerate(args[:-1]):
        if a in flags:
            return args[i + 1]
    return None


def show_trainable(overrides: list[str]) -> None:
    """Build the model and strategy of ``ftcli train`` (trainer.dry_run) and print trainable parameters."""
    import tempfile

    from hydra import compose, initialize_config_dir

    from ftcli.config import FtcliError, config_dir
    from ftcli.progress import quiet_libraries

    quiet_libraries()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3", job_name="ftcli"):
        cfg = compose(config_name="train", overrides=[*overrides, "trainer.dry_run=true"])
    with tempfile.TemporaryDirectory() as tmp:
        cfg.output_dir = tmp
        from ftcli.train import train

        try:
            train(cfg)
        except FtcliError as e:
            fail(str(e))


if __name__ == "__main__":
    main()
