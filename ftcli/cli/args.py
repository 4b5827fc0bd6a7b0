"""Reading ftcli's command line before Hydra does: which arguments are overrides, free text quoted for Hydra,
sweeps expanded for the up-front check, and the one-line answer to a mistake."""

from __future__ import annotations

import re
import sys
from typing import NoReturn

from ftcli.config.inputs import ONE_INPUT

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


# Keys whose values are paths (or free text): ftcli quotes them for Hydra, whose override grammar takes only ASCII
# letters, digits and $%*+-./:?@\\_| unquoted (café, "a, b", ~/x fail to parse).
PATH_KEYS = frozenset(
    {
        "dataset.train_file",
        "dataset.validation_file",
        "dataset.test_file",
        "dataset.data_dir",
        "dataset.path",
        "model.name_or_path",
        "checkpoint",
        "input",
        "output",
        "image",
        "audio",
        "cache_dir",
        "output_dir",
        "resume",
        "hydra.run.dir",
        "hydra.sweep.dir",
        "hydra.sweep.subdir",
    }
)
# always quoted: a sentence with commas is one text
FREE_TEXT = frozenset({"text", "text_pair", "question", "context", "prompt", "task.system_prompt"})
UNQUOTED = re.compile(r"[0-9A-Za-z${}%*+\-./:?@\\_|]*")  # what Hydra reads unquoted (${…} too)
SWEEP_FUNCTION = re.compile(r"\w+\(.*\)")  # glob(*.csv), range(1,3) …: Hydra's, left alone


def quote_free_text(arg: str, keys: frozenset[str] = FREE_TEXT | PATH_KEYS, multirun: bool = False) -> str:
    """``text=it's great, really``, ``dataset.data_dir=photos/café, été`` → a Hydra-quoted value, so commas, quotes
    and non-ASCII characters in free text and paths just work. Paths are quoted only when Hydra could not read them
    as they are; under ``-m`` a comma separates values (a sweep over files), each quoted on its own."""
    key, sep, value = arg.partition("=")
    if not sep or key not in keys or value[:1] in ("'", '"'):
        return arg
    if key in FREE_TEXT:
        return f"{key}={_quoted(value)}"
    if value[:1] == "[" or UNQUOTED.fullmatch(value) or (multirun and SWEEP_FUNCTION.fullmatch(value)):
        return arg  # a list, a sweep function, or nothing Hydra cannot read
    parts = value.split(",") if multirun else [value]
    return f"{key}=" + ",".join(p if UNQUOTED.fullmatch(p) else _quoted(p) for p in parts)


def _quoted(value: str) -> str:
    # Hydra unescapes a backslash only before a quote or at the end of a quoted value
    escaped = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), value)
    return f"'{escaped}'"


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
    """Commands that only print an answer: ``predict`` with one input (``text=...``, ``image=`` …), ``chat`` and
    ``train trainer.dry_run=true``."""
    values = dict(o.lstrip("+~").split("=", 1) for o in overrides)
    if command == "chat":
        return True
    if command == "predict":
        return any(k in values for k in ONE_INPUT) and values.get("input", "null") == "null"
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


def _flag_value(args: list[str], *flags: str) -> str | None:
    for i, a in enumerate(args[:-1]):
        if a in flags:
            return args[i + 1]
    return None
