"""Before Hydra starts: every job's config composed and validated, the run dir checked, a resumed run's dir named:
mistakes fail in one line, early."""

from __future__ import annotations

import sys
from pathlib import Path

from ftcli.cli.args import _flag_value, expand_sweeps, fail, split_overrides


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


def preflight(config_name: str, args: list[str]) -> None:
    """Before Hydra starts, compose and validate every job's config and check that the run (or sweep)
    directory can be made: mistakes fail in one line, early."""
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from ftcli.cli.sweep import is_multirun
    from ftcli.config.errors import FtcliError
    from ftcli.config.registry import config_dir
    from ftcli.config.validate import explain, validate
    from ftcli.runtime.installed import check_runtime

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
    value = next((a.split("=", 1)[1] for a in args if a.startswith("resume=")), None)
    if value in (None, "", "null"):
        return args
    from ftcli.config.errors import FtcliError
    from ftcli.training.state import find_run, finished  # torch: only when a run resumes (not for train --help)

    try:
        run = find_run(value)
    except FtcliError as e:
        fail(str(e))
    done = finished(run)
    if done:  # a finished run's checkpoints and metrics stay as they are
        print(f"ftcli: {done}", file=sys.stderr)
        raise SystemExit(0)
    ignored = [a for a in args if _ignored_by_resume(a, run)]
    if ignored:
        print(f"ftcli: note: resume= trains with the run's own config; ignored: {', '.join(ignored)}", file=sys.stderr)
    kept = [a for a in args if not a.startswith(("resume=", "hydra.run.dir=", "hydra.output_subdir="))]
    kept = [a for a in kept if a not in ignored]
    return [*kept, f"resume={run}", f"hydra.run.dir={run}", "hydra.output_subdir=null"]


def _ignored_by_resume(arg: str, run: Path) -> bool:
    """An override a resumed run does not take: all but where this process runs (hardware's machine rank and main
    process address, taken from the resuming command) and the run dir it names itself."""
    from ftcli.training.state import PLACEMENT

    key, sep, value = arg.lstrip("+~").partition("=")
    if arg.startswith("-") or not sep or key in ("resume", "hydra.output_subdir"):
        return False
    if key == "hydra.run.dir":
        return Path(value).expanduser().resolve() != run
    return key not in {f"hardware.{k}" for k in PLACEMENT}


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
