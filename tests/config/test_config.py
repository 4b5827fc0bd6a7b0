"""Every shipped config composes and validates; bad input fails early with one clear line."""

from __future__ import annotations

import pytest
from helpers.runs import ROOT, ftcli

from ftcli.config.errors import FtcliError
from ftcli.config.validate import validate

GROUPS = {
    g: sorted(p.stem for p in (ROOT / "configs" / g).glob("*.yaml"))
    for g in ("model", "strategy", "dataset", "hardware")
}
REQUIRED = {"dataset=files": ["dataset.train_file=x.csv"], "dataset=hub": ["dataset.path=x"]}


@pytest.mark.parametrize("override", [f"{g}={o}" for g, opts in GROUPS.items() for o in opts])
def test_every_shipped_option_composes_and_validates(compose, override: str) -> None:
    cfg = compose(override, *REQUIRED.get(override, []))
    validate(cfg)  # raises on any out-of-range value or missing required key
    group, option = override.split("=")
    assert cfg[group].name == option


def test_eval_config_composes(compose) -> None:
    cfg = compose("checkpoint=somewhere", config="eval")
    validate(cfg)
    assert cfg.eval.split == "validation"


def test_full_strategy_takes_the_models_learning_rate(compose) -> None:
    assert compose("model=minilm", "strategy=full").strategy.lr == pytest.approx(1e-4)
    assert compose("model=bert", "strategy=full").strategy.lr == pytest.approx(3e-5)
    assert compose("model=bert", "strategy=full", "strategy.lr=1e-5").strategy.lr == pytest.approx(1e-5)


def test_validate_names_every_bad_key_at_once(compose) -> None:
    cfg = compose("strategy.lr=-1", "trainer.batch_size=0", "trainer.metric=acc")
    with pytest.raises(FtcliError) as err:
        validate(cfg)
    msg = str(err.value)
    assert "strategy.lr=-1.0: must be > 0" in msg
    assert "trainer.batch_size=0: must be >= 1" in msg
    assert "did you mean 'accuracy'" in msg


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["strategy=ful"],
            "strategy=ful: no such option; choose one of bitfit, feature_extract, full, "
            "gradual_unfreeze, lora, lp_ft, partial (did you mean 'full'?)",
        ),
        (["strategy=lora", "strategy.rr=3"], "unknown key 'strategy.rr' (did you mean 'r'?)"),
        (["strategy.lrr=1"], "unknown key 'strategy.lrr' (did you mean 'lr'?)"),
        (["trainer.epochs=abc"], "trainer.epochs: Value 'abc' of type 'str' could not be converted to Integer"),
        (["strategy.lr=0"], "strategy.lr=0.0: must be > 0.0"),
        (["trainer.batch_size=0"], "trainer.batch_size=0: must be >= 1"),
        (["-m", "strategy.lr=1e-3,-1"], "strategy.lr=-1.0: must be > 0.0"),
        (["model=nope"], "model=nope: no such option"),
        (["hardware.mixed_precision=fp8"], "hardware.mixed_precision=fp8: must be one of auto, no, fp16, bf16"),
    ],
)
def test_cli_rejects_bad_input_in_one_line(args: list[str], expected: str, tmp_path) -> None:
    r = ftcli("train", *args, f"hydra.run.dir={tmp_path}/run", f"hydra.sweep.dir={tmp_path}/sweep")
    assert r.returncode == 2
    assert expected in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()  # nothing started, nothing that looks like a run


def test_unknown_command() -> None:
    r = ftcli("trian")
    assert r.returncode == 2 and "unknown command 'trian'" in r.stderr


def test_help_is_fast_and_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys; from ftcli.cli.main import main; main(['--help']); print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert "ftcli train" in r.stdout
    assert r.stdout.strip().endswith("False")


def test_cfg_job_prints_the_config_without_running(tmp_path) -> None:
    r = ftcli("train", "model=tiny", f"hydra.run.dir={tmp_path}/run", "--cfg", "job")
    assert r.returncode == 0, r.stderr
    assert "name: tiny" in r.stdout and "trainer:" in r.stdout
    assert not (tmp_path / "run").exists()


def _schema_defaults(schema: type) -> dict:
    import dataclasses

    from omegaconf import MISSING

    out = {}
    for f in dataclasses.fields(schema):
        if f.default is not dataclasses.MISSING and f.default is not MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _option_schema(group: str, data: dict) -> type:
    """The schema an option's YAML names in its defaults (``<option>_schema``), else its group's."""
    from ftcli.config.registry import GROUPS, subclasses

    named = [d for d in data.get("defaults", []) if isinstance(d, str) and d.endswith("_schema")]
    options = {s.option: s for s in subclasses(GROUPS[group])}
    return options[named[0].removesuffix("_schema")] if named else GROUPS[group]


@pytest.mark.parametrize("group", ["task", "model", "strategy", "dataset", "hardware"])
def test_each_default_lives_in_one_place(group: str) -> None:
    """An option's YAML sets only what differs from its schema's defaults: a default written twice drifts."""
    import yaml

    twice = []
    for path in sorted((ROOT / "configs" / group).glob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        values = data.get(group, {}) if "@package _global_" in path.read_text() else data
        defaults = _schema_defaults(_option_schema(group, data))
        read = {k for k in values if "${." + k in path.read_text()}  # the file's own interpolations read these
        twice += [f"{path.name}: {k}={v!r}" for k, v in values.items() if k in defaults and defaults[k] == v]
        twice = [t for t in twice if t.split(": ", 1)[1].split("=")[0] not in read]
    assert twice == [], "these repeat the schema's default (config/schemas.py): delete them from the YAML"


def test_the_trainer_defaults_live_in_the_schema_alone() -> None:
    import yaml

    assert "trainer" not in yaml.safe_load((ROOT / "configs" / "train.yaml").read_text())
