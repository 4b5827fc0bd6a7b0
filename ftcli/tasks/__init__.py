"""Tasks: one module per task; a task is registered by being a :class:`Task` subclass with a ``schema``.

Adding one: a schema subclassing ``TaskConfig`` in ``config.py`` (its ``option`` and ``metrics``), a
module here whose class combines an inputs and an objective class and names that schema, its import
below, and ``configs/task/<option>.yaml``. Nothing else changes: the loop only calls the interface.
"""

from __future__ import annotations

from typing import Any

from ftcli.config.errors import FtcliError
from ftcli.config.registry import schema_of, subclasses
from ftcli.tasks import (  # noqa: F401  (each import registers its tasks)
    clip_classification,
    clip_contrastive,
    glue,
    image_classification,
    text_classification,
    text_multilabel,
    text_regression,
    token_classification,
)
from ftcli.tasks.base import Task, TaskData

__all__ = ["Task", "TaskData", "build_task"]


def build_task(cfg: Any) -> Task:
    """The Task for a ``task`` config node, chosen by its schema (a saved config: by its name)."""
    schema = schema_of("task", cfg)
    for task in subclasses(Task):
        if task.__dict__.get("schema") is schema:  # its own, not inherited
            return task(cfg)
    raise FtcliError(f"task={cfg.name}: no such task; choose one of {', '.join(task_names())}")


def task_names() -> list[str]:
    return sorted(t.schema.option for t in subclasses(Task) if "schema" in t.__dict__)
