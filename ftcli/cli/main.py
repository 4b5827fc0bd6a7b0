"""``ftcli <command> [overrides]``: picks the command and hands the rest of argv to Hydra.

No training logic lives here, and nothing heavy is imported before a command needs it (``ftcli --help`` must stay
fast).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from ftcli.cli.args import (
    PRINT_FLAGS,
    _flag_value,
    answers_only,
    fail,
    quote_free_text,
    resolvable,
    split_overrides,
    with_overrides,
)
from ftcli.cli.preflight import preflight, resume_into_run_dir, search_path

USAGE = """usage: ftcli <command> [key=value ...] [hydra flags]

commands:
  train        fine-tune a model            ftcli train model=bert strategy=full strategy.lr=3e-5
               on all GPUs / resume a run   ftcli train hardware=multi_gpu · ftcli train resume=latest
  eval         evaluate checkpoints         ftcli eval checkpoint=outputs/<run>/checkpoints/best
  predict      label new text (or images)   ftcli predict checkpoint=outputs/<run> text="what a film"
               answer a prompt (causal LMs) ftcli predict checkpoint=outputs/<run> prompt="Name a colour."
  chat         talk to a causal LM          ftcli chat checkpoint=outputs/<run>
  export       ONNX / merged safetensors    ftcli export checkpoint=outputs/<run> format=onnx output=exported
  leaderboard  rank a sweep's trials        ftcli leaderboard multirun/<sweep> [--metric f1_macro]

Hydra owns the rest of the command line:
  ftcli train -m strategy=full,feature_extract     sweep (one run dir per job; re-run it to resume)
  ftcli train -m hparams_search=sst2_optuna        Optuna search (configs/hparams_search)
  ftcli train -m hydra/launcher=parallel ...       trials in parallel (or hydra/launcher=slurm)
  ftcli train --cfg job                            print the composed config, do not run
  ftcli train --help                               config groups and their options
  ftcli train hydra.run.dir=outputs/mine           choose the run directory

add --debug for full tracebacks.
"""


# command → config name under configs/
COMMANDS = {"train": "train", "eval": "eval", "predict": "predict", "export": "export", "chat": "chat"}


def mark_failed(cfg: Any, message: str) -> None:
    """Leave error.txt in the run dir, so a failed run is not mistaken for an unfinished or finished one."""
    try:
        out = Path(cfg.output_dir)
        if out.is_dir():
            (out / "error.txt").write_text(message + "\n")
    except Exception:  # the run dir itself may be what failed
        pass


def run_task(command: str, cfg: Any) -> Any:
    """What Hydra calls for every job. Returns the number a sweeper optimises."""
    from ftcli.config.errors import FtcliError, first_line
    from ftcli.config.registry import register_configs
    from ftcli.reporting.progress import quiet_libraries

    register_configs()  # a launcher's worker process (joblib, SLURM) needs our resolvers too
    if command == "train":
        from ftcli.cli.sweep import multirun_job, run_sweep_job

        if multirun_job():  # a failed trial is recorded in its dir and the sweep goes on
            return run_sweep_job(cfg)
    quiet_libraries()
    try:
        if command == "train":
            from ftcli.config.registry import train_metric
            from ftcli.train import run_training

            metrics, cfg = run_training(cfg)
            if metrics.get("interrupted_by_signal"):  # state saved; the status a killed process would have
                raise SystemExit(128 + int(metrics["interrupted_by_signal"]))
            return metrics.get(train_metric(cfg))
        if command == "predict":
            from ftcli.predict import run_predict

            run_predict(cfg)
            return None  # an answer, not a number to optimise
        if command == "chat":
            from ftcli.chat import run_chat

            run_chat(cfg)
            return None
        if command == "export":
            from ftcli.export import run_export

            return run_export(cfg).get("max_abs_diff")
        from ftcli.evaluate import run_eval

        result = run_eval(cfg)
        return result.get(result.get("metric", ""))
    except KeyboardInterrupt:  # outside the training steps (which save a state): main prints one line
        mark_failed(cfg, "interrupted (Ctrl-C) before the run finished")
        raise
    except FtcliError as e:
        if os.environ.get("FTCLI_DEBUG"):
            raise
        mark_failed(cfg, str(e))
        fail(str(e))
    except OSError as e:  # disk full, permissions, a vanished file: name the path, not the stack
        if os.environ.get("FTCLI_DEBUG"):
            raise
        where = f"{e.filename}: " if e.filename else ""
        message = f"{where}{e.strerror or e}; free space, fix permissions or choose another hydra.run.dir"
        mark_failed(cfg, message)
        fail(message)
    except Exception as e:  # a bug, not a user mistake: still one line, the traceback on request
        if os.environ.get("FTCLI_DEBUG"):
            raise
        message = f"unexpected {type(e).__name__}: {first_line(e)} (a bug: rerun with --debug for the traceback)"
        mark_failed(cfg, message)
        print(f"ftcli: error: {message}", file=sys.stderr)
        raise SystemExit(1) from None


def main(argv: list[str] | None = None) -> None:
    """``ftcli``. Ctrl-C outside the training steps (which save a resumable state themselves) — loading,
    tokenising, the frozen-feature pass, evaluation — ends in one line and exit status 130, not a traceback
    (``--debug`` keeps it). Caches are written atomically, so an interrupted one is simply rebuilt."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        _main(args)
    except KeyboardInterrupt:
        if os.environ.get("FTCLI_DEBUG") or "--debug" in args:
            raise
        from ftcli.reporting.progress import stop_progress

        stop_progress()  # a live bar would leave the terminal's cursor hidden
        print("\nftcli: interrupted", file=sys.stderr)
        raise SystemExit(130) from None


def _main(args: list[str]) -> None:
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return
    command, rest = args[0], args[1:]
    if command == "leaderboard":  # not a Hydra command: it reads a finished (or running) sweep
        return show_leaderboard(rest)
    if command not in COMMANDS:
        fail(f"unknown command '{command}'; choose one of {', '.join(COMMANDS)}")
    from ftcli.cli.sweep import is_multirun

    rest = command_args(command, rest)
    overrides, runs = split_overrides(rest)
    printing = PRINT_FLAGS & set(rest)
    if is_multirun(rest) and printing:  # Hydra's answer is a ValueError traceback
        fail(f"{sorted(printing)[0]} shows one job: drop -m and give each key one value (e.g. strategy=full)")
    if "--resolve" in rest and {"--cfg", "-c"} & set(rest):
        rest = resolvable(rest)
    chosen_dir = any(a.startswith("hydra.run.dir=") for a in rest)
    answer = runs and not printing and not is_multirun(rest) and answers_only(command, overrides) and not chosen_dir
    sweep = None
    if runs and command == "train" and is_multirun(rest):
        rest, sweep = with_sweep_dir(command, rest, overrides)
    if runs:  # after the sweep args: it checks the sweep dir that will be used
        preflight(_flag_value(rest, "--config-name", "-cn") or COMMANDS[command], rest)
    if sweep is not None:
        print(f"sweep dir: {sweep} (the same command resumes it: completed trials are skipped)")
    run_hydra(command, rest, answer)
    if sweep is not None and "${" not in sweep:  # a sweep ends with an answer
        show_leaderboard([sweep], after_sweep=True)
    if command == "train" and _flag_value(rest, "--cfg", "-c") in ("job", "all"):
        show_trainable(overrides, search_path(rest))  # after the config: what would train, without training


def show_leaderboard(args: list[str], after_sweep: bool = False) -> None:
    from ftcli.config.errors import FtcliError
    from ftcli.leaderboard import main as leaderboard

    try:
        leaderboard(args)
    except FtcliError as e:
        if not after_sweep:
            fail(str(e))
        print(f"ftcli: no leaderboard yet: {e}", file=sys.stderr)  # a launcher returned before its trials wrote


def command_args(command: str, rest: list[str]) -> list[str]:
    """Hydra's arguments for ``command``: --debug taken out, a resumed run's dir named, paths and free text quoted;
    ftcli's schemas and help resolver registered."""
    if "--debug" in rest:
        rest = [a for a in rest if a != "--debug"]
        os.environ["FTCLI_DEBUG"] = os.environ["HYDRA_FULL_ERROR"] = "1"
    from ftcli.cli.help import register_help_resolver
    from ftcli.cli.sweep import is_multirun
    from ftcli.config.registry import register_configs

    register_configs()
    register_help_resolver()  # --help lists groups through ${ftcli_groups:} (configs/hydra/help/ftcli.yaml)
    rest = resume_into_run_dir(rest) if command == "train" else rest
    return [quote_free_text(a, multirun=is_multirun(rest)) for a in rest]  # paths and free text, for Hydra


def with_sweep_dir(command: str, rest: list[str], overrides: list[str]) -> tuple[list[str], str]:
    """A multirun's arguments with ftcli's resumable sweep dir and short trial dir names; that sweep dir."""
    from ftcli.cli.sweep import multirun_args

    extra = multirun_args(command, rest, overrides)
    flag = rest.index("-m" if "-m" in rest else "--multirun")
    # next to the other overrides: Hydra's parser wants its positional arguments together
    at = max((i + 1 for i, x in enumerate(rest) if x in overrides), default=flag + 1)
    rest = [*rest[:at], *extra, *rest[at:]]
    return rest, next(a.split("=", 1)[1] for a in rest if a.startswith("hydra.sweep.dir="))


def run_hydra(command: str, rest: list[str], answer: bool) -> None:
    """Hand the command line to Hydra, which calls :func:`run_task` per job. A command that only answers
    runs in a throwaway run dir (Hydra's .hydra/ and ftcli.log go once the answer is printed)."""
    import hydra

    from ftcli.config.registry import config_dir

    @hydra.main(config_path=str(config_dir()), config_name=COMMANDS[command], version_base="1.3")
    def task(cfg: Any) -> Any:
        return run_task(command, cfg)

    throwaway = None
    if answer:
        import tempfile

        throwaway = tempfile.mkdtemp(prefix="ftcli-")
        rest = with_overrides(rest, f"hydra.run.dir={throwaway}")
    sys.argv = [f"ftcli {command}", *rest]
    try:
        task()
    finally:
        if throwaway is not None:
            shutil.rmtree(throwaway, ignore_errors=True)


def show_trainable(overrides: list[str], search: list[str] | None = None) -> None:
    """Build the model and strategy of ``ftcli train`` (trainer.dry_run) and print trainable parameters."""
    import tempfile

    from hydra import compose, initialize_config_dir

    from ftcli.config.errors import FtcliError
    from ftcli.config.registry import config_dir
    from ftcli.reporting.progress import quiet_libraries

    quiet_libraries()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3", job_name="ftcli"):
        cfg = compose(config_name="train", overrides=[*overrides, *(search or []), "trainer.dry_run=true"])
    with tempfile.TemporaryDirectory() as tmp:
        cfg.output_dir = tmp
        from ftcli.train import train

        try:
            train(cfg)
        except FtcliError as e:
            fail(str(e))
