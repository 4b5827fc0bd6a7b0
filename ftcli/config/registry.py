"""Where configs live and how they are registered: the config tree, the schemas in Hydra's ConfigStore, the
schema of a group's node, and a saved config typed again."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from omegaconf import OmegaConf

from ftcli.config.schemas import (
    ChatConfig,
    DatasetConfig,
    EvalConfig,
    ExportConfig,
    HardwareConfig,
    ModelConfig,
    PredictConfig,
    Schema,
    StrategyConfig,
    TaskConfig,
    TrainConfig,
)
from ftcli.config.tasks.text_classification import TextClassificationConfig

T = TypeVar("T")


PACKAGE_DIR = Path(__file__).resolve().parents[1]  # ftcli/


ASSETS_DIR = PACKAGE_DIR / "assets"


def config_dir() -> Path:
    """The config tree: inside the package for a wheel install, ``./configs`` for an editable one."""
    packaged = PACKAGE_DIR / "configs"
    return packaged if packaged.is_dir() else PACKAGE_DIR.parent / "configs"


def subclasses(base: type[T]) -> list[type[T]]:
    """Every subclass of ``base``, depth first, each once: how schemas and implementations are registered."""
    found: list[type[T]] = []
    for sub in base.__subclasses__():
        found += [sub, *subclasses(sub)]
    return list(dict.fromkeys(found))


# config group → the schema of its options; an option with keys of its own has a subclass (``option``)
GROUPS: dict[str, type[Schema]] = {
    "task": TaskConfig,
    "model": ModelConfig,
    "strategy": StrategyConfig,
    "dataset": DatasetConfig,
    "hardware": HardwareConfig,
}


def schema_of(group: str, node: Any) -> Any:
    """The schema of a group's node: its own type when composed by Hydra, else the subclass its name
    (the option) names — a saved config.yaml has lost its types."""
    base = GROUPS[group]
    own = OmegaConf.get_type(node) if OmegaConf.is_config(node) else None
    if isinstance(own, type) and issubclass(own, base):
        return own
    name = OmegaConf.select(node, "name") if OmegaConf.is_config(node) else None
    return next((s for s in subclasses(base) if s.option and s.option == name), base)


def train_metric(cfg: Any) -> str:
    """``trainer.metric``, or the task's own default (accuracy for classification, pearson for regression)."""
    schema: type[TaskConfig] = schema_of("task", cfg.task)
    return str(cfg.trainer.metric or schema.metrics[0])


def typed_train_config(saved: Any) -> Any:
    """A saved, resolved train config under its typed schema again: each group's own schema included
    (lp_ft's lp_epochs, lora's rank, a task's keys), which the generic group schema would reject."""
    schema = OmegaConf.structured(TrainConfig)
    if OmegaConf.select(saved, "task") is None:  # a run saved before tasks existed: text classification
        saved = OmegaConf.merge({"task": {"name": TextClassificationConfig.option}}, saved)
    for group in GROUPS:
        node = OmegaConf.select(saved, group)
        if node is not None:
            schema[group] = OmegaConf.structured(schema_of(group, node))
    return OmegaConf.merge(schema, saved)


def register_configs() -> None:
    """Put the schemas in Hydra's ConfigStore; each group option names its schema in its defaults."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="eval_schema", node=EvalConfig)
    cs.store(name="predict_schema", node=PredictConfig)
    cs.store(name="export_schema", node=ExportConfig)
    cs.store(name="chat_schema", node=ChatConfig)
    for group, schema in GROUPS.items():
        cs.store(group=group, name="schema", node=schema)
        for sub in subclasses(schema):  # <option>_schema: the option's YAML lists it in its defaults
            cs.store(group=group, name=f"{sub.option}_schema", node=sub)
    if not OmegaConf.has_resolver("asset"):
        # ${asset:sst2/train.tsv} → the copy shipped inside the package (works offline).
        OmegaConf.register_new_resolver("asset", lambda rel: str(ASSETS_DIR / rel))
