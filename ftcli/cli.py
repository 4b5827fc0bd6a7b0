"""``ftcli <command> [overrides]``: picks the command and hands the rest of argv to Hydra.

No training logic lives here, and nothing heavy is imported before a command needs it
(``ftcli --help`` must stay fast).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any, NoReturn

USAGE = """usage: ftcli <command> [key=value ...] [hydra flags]

commands:
  train        fine-tune a model            ftcli train model=bert strategy=full strategy.lr=3e-5
               on all GPUs / resume a run   ftcli train hardware=multi_gpu · ftcli train resume=latest
  eval         evaluate checkpoints         ftcli eval checkpoint=outputs/<run>/checkpoints/best
  predict      label new text (or images)   ftcli predict checkpoint=outputs/<run> text="what a film"
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
COMMANDS = {"train": "train", "eval": "eval", "predict": "predict", "export": "export"}
# Hydra flags that take a value, and flags after which no job runs (no preflight needed).
VALUE_FLAGS = {
    "--cfg",
    "-c",
    "--package",
    "-p",
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--experimental-rerun",
}
NO_RUN_FLAGS = {"--help", "-h", "--hydra-help", "--info", "-i", "--shell-completion", "-sc", "--version"}
# Hydra modes that print instead of running: with -m Hydra refuses them with a ValueError traceback.
PRINT_FLAGS = {"--cfg", "-c", "--info", "-i", "--shell-completion", "-sc"}


def fail(message: str) -> NoReturn:
    """One line on stderr and exit status 2: how ftcli answers a user mistake."""
    print(f"ftcli: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def quote_free_text(arg: str, keys: tuple[str, ...] = ("text", "text_pair", "image")) -> str:
    """``text=it's great, really`` → a Hydra-quoted value, so commas and quotes in free text (and file names)
    just work."""
    key, sep, value = arg.partition("=")
    if not sep or key not in keys or value[:1] in ("'", '"'):
        return arg
    import re

    # Hydra unescapes a backslash only before a quote or at the end of a quoted value
    escaped = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), value)
    return f"{key}='{escaped}'"


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


def positional_end(args: list[str]) -> int:
    """Where another override goes: after the last positional argument (Hydra's parser wants them together),
    else at the end."""
    end, skip = len(args), False
    last = None
    for i, a in enumerate(args):
        if skip:
            skip = False
        elif a in VALUE_FLAGS:
            skip = True
        elif not a.startswith("-"):
            last = i
    return end if last is None else last + 1


def with_overrides(args: list[str], *extra: str) -> list[str]:
    at = positional_end(args)
    return [*args[:at], *extra, *args[at:]]


def search_path(args: list[str]) -> list[str]:
    """``--config-dir`` and ``hydra.searchpath`` as one ``hydra.searchpath`` override, for the compose API
    (which has no --config-dir): the checks before Hydra starts see the user's own configs too."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    paths = []
    folder = _flag_value(args, "--config-dir", "-cd")
    folder = folder or next((a.split("=", 1)[1] for a in args if a.startswith(("--config-dir=", "-cd="))), None)
    if folder is not None:
        where = Path(folder).expanduser()
        if not where.is_dir():
            fail(f"--config-dir={folder}: no such folder")
        paths.append(f"file://{where.resolve()}")  # Hydra puts it after the package's configs, as here
    for a in args:
        if a.startswith("hydra.searchpath="):
            try:
                value = OverridesParser.create().parse_override(a).value()
            except Exception as e:
                fail(f"{a}: not a list of config folders ({' '.join(str(e).split())[:200]})")
            if not isinstance(value, list):
                fail(f"{a}: must be a list, e.g. hydra.searchpath=[file://myconf]")
            paths += [str(v) for v in value]
    if not paths:
        return []
    quoted = ",".join("'" + p.replace("\\", "\\\\").replace("'", "\\'") + "'" for p in paths)
    return [f"hydra.searchpath=[{quoted}]"]


def resolvable(args: list[str]) -> list[str]:
    """``--cfg ... --resolve`` without Hydra's InterpolationValidationError / KeyError tracebacks."""
    if not any(a.startswith("hydra.runtime.output_dir=") for a in args):
        # output_dir is ${hydra:runtime.output_dir}, which Hydra sets only when a job runs: the run dir it would be
        args = with_overrides(args, "hydra.runtime.output_dir=${hydra:run.dir}")
    at = next((i for i, a in enumerate(args[:-1]) if a in ("--cfg", "-c") and args[i + 1] == "hydra"), None)
    if at is not None and _flag_value(args, "--package", "-p") is None:
        # Hydra's run dir names the model and strategy, which --cfg hydra leaves out: print it from the whole config
        args = [*args[:at], "--cfg", "all", "--package", "hydra", *args[at + 2 :]]
    return args


def answers_only(command: str, overrides: list[str]) -> bool:
    """Commands that only print an answer: ``predict text=...`` (``image=...``) and ``train trainer.dry_run=true``."""
    values = dict(o.lstrip("+~").split("=", 1) for o in overrides)
    if command == "predict":
        return ("text" in values or "image" in values) and values.get("input", "null") == "null"
    return command == "train" and values.get("trainer.dry_run", "").lower() == "true"


def expand_sweeps(overrides: list[str]) -> list[list[str]]:
    """Override lists that cover every value of every sweep (each value once, not the full grid)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    base, sweeps = [], []
    for o in parsed:
        if not o.is_sweep_override():
            base.append(str(o.input_line))
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


def preflight(config_name: str, args: list[str]) -> None:
    """Before Hydra starts, compose and validate every job's config and check that the run (or sweep)
    directory can be made: mistakes fail in one line, early."""
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from ftcli.config import FtcliError, config_dir, explain, validate
    from ftcli.runtime import check_runtime
    from ftcli.sweep import is_multirun

    overrides, _ = split_overrides(args)
    search = search_path(args)  # the user's own configs: --config-dir, hydra.searchpath
    hydra_args = [a for a in args if a.startswith("hydra.") and "=" in a and not a.startswith("hydra.searchpath=")]
    hydra_args += search
    multirun = is_multirun(args)
    run_dir = None
    try:
        combos = expand_sweeps(overrides)
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3", job_name="ftcli"):
            for i, combo in enumerate(combos):
                cfg = None
                if i == 0:  # the first job with Hydra's own config: where the run dir will be
                    try:
                        cfg = compose(config_name=config_name, overrides=combo + hydra_args, return_hydra_config=True)
                        run_dir = cfg.hydra.sweep.dir if multirun else cfg.hydra.run.dir
                        with open_dict(cfg):
                            del cfg["hydra"]
                    except Exception:  # an unusual hydra.* override: Hydra itself reports it
                        cfg = None
                if cfg is None:
                    cfg = compose(config_name=config_name, overrides=combo + search)
                for key in ("output_dir", "cache_dir"):  # Hydra's run dir does not exist yet
                    if key in cfg:
                        cfg[key] = "."
                validate(cfg)
                if "hardware" in cfg:  # a missing runtime (torch_xla, deepspeed, CUDA) fails before any launch
                    check_runtime(cfg.hardware)
    except FtcliError as e:
        fail(str(e))
    except Exception as e:  # Hydra / OmegaConf composition errors
        fail(explain(e, config_name))
    if run_dir is not None:
        check_run_dir(Path(str(run_dir)).expanduser(), "hydra.sweep.dir" if multirun else "hydra.run.dir")


def resume_into_run_dir(args: list[str]) -> list[str]:
    """``resume=latest|<dir>`` → that run dir, which Hydra reuses as the job's dir (no new run dir)."""
    from ftcli.checkpoint import find_run
    from ftcli.config import FtcliError

    value = next((a.split("=", 1)[1] for a in args if a.startswith("resume=")), None)
    if value in (None, "", "null"):
        return args
    try:
        run = find_run(value)
    except FtcliError as e:
        fail(str(e))
    kept = [a for a in args if not a.startswith(("resume=", "hydra.run.dir=", "hydra.output_subdir="))]
    return [*kept, f"resume={run}", f"hydra.run.dir={run}", "hydra.output_subdir=null"]


def check_run_dir(run_dir: Path, key: str) -> None:
    """Fail in one line, before Hydra starts, when the run (or sweep) directory cannot be created."""
    import tempfile

    ancestor = run_dir.absolute()
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    why = f"{ancestor} is a file" if not ancestor.is_dir() else ""
    if not why:
        try:
            tempfile.TemporaryDirectory(dir=ancestor).cleanup()  # the real test: root passes os.access checks
        except OSError as e:
            why = f"cannot write in {ancestor}: {e.strerror or e}"
    if why:
        fail(f"{key}={run_dir}: cannot create the run directory ({why}); choose another with {key}=...")


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
    from ftcli.config import FtcliError, first_line, register_configs
    from ftcli.progress import quiet_libraries

    register_configs()  # a launcher's worker process (joblib, SLURM) needs our resolvers too
    if command == "train":
        from ftcli.sweep import multirun_job, run_sweep_job

        if multirun_job():  # a failed trial is recorded in its dir and the sweep goes on
            return run_sweep_job(cfg)
    quiet_libraries()
    try:
        if command == "train":
            from ftcli.config import train_metric
            from ftcli.launch import run_training

            metrics, cfg = run_training(cfg)
            if metrics.get("interrupted_by_signal"):  # state saved; the status a killed process would have
                raise SystemExit(128 + int(metrics["interrupted_by_signal"]))
            return metrics.get(train_metric(cfg))
        if command == "predict":
            from ftcli.predict import run_predict

            run_predict(cfg)
            return None  # an answer, not a number to optimise
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
        from ftcli.progress import stop_progress

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
    from ftcli.sweep import is_multirun

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
    from ftcli.config import FtcliError
    from ftcli.leaderboard import main as leaderboard

    try:
        leaderboard(args)
    except FtcliError as e:
        if not after_sweep:
            fail(str(e))
        print(f"ftcli: no leaderboard yet: {e}", file=sys.stderr)  # a launcher returned before its trials wrote


def command_args(command: str, rest: list[str]) -> list[str]:
    """Hydra's arguments for ``command``: --debug taken out, free text quoted, a resumed run's dir named;
    ftcli's schemas and help resolver registered."""
    if "--debug" in rest:
        rest = [a for a in rest if a != "--debug"]
        os.environ["FTCLI_DEBUG"] = os.environ["HYDRA_FULL_ERROR"] = "1"
    if command == "predict":
        rest = [quote_free_text(a) for a in rest]
    from ftcli.config import register_configs
    from ftcli.help import register_help_resolver

    register_configs()
    register_help_resolver()  # --help lists groups through ${ftcli_groups:} (configs/hydra/help/ftcli.yaml)
    return resume_into_run_dir(rest) if command == "train" else rest


def with_sweep_dir(command: str, rest: list[str], overrides: list[str]) -> tuple[list[str], str]:
    """A multirun's arguments with ftcli's resumable sweep dir and short trial dir names; that sweep dir."""
    from ftcli.sweep import multirun_args

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

    from ftcli.config import config_dir

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


def _flag_value(args: list[str], *flags: str) -> str | None:
    for i, a in enumerate(args[:-1]):
        if a in flags:
            return args[i + 1]
    return None


def show_trainable(overrides: list[str], search: list[str] | None = None) -> None:
    """Build the model and strategy of ``ftcli train`` (trainer.dry_run) and print trainable parameters."""
    import tempfile

    from hydra import compose, initialize_config_dir

    from ftcli.config import FtcliError, config_dir
    from ftcli.progress import quiet_libraries

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


if __name__ == "__main__":
    main()
