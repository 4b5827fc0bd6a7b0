"""GLUE: the nine tasks of the benchmark (Wang et al., 2018), each scored by its official metric.

``dataset=glue dataset.task=<task>`` picks ``task=glue``; its ``benchmark`` (the GLUE task) chooses the objective
this one wraps: regression for STS-B, classification for the others. Next to that objective's own metrics it
reports the task's official ones — CoLA: Matthews correlation; STS-B: Pearson and Spearman; MRPC, QQP: F1 of the
positive class and accuracy; MNLI: accuracy on the matched and (``ftcli eval``) mismatched validation sets; SST-2,
QNLI, RTE, WNLI: accuracy — and ``score``, their mean (one number per task, as GLUE's leaderboard averages them),
which picks checkpoints/best by default.
"""

from __future__ import annotations

from typing import Any

import datasets
import numpy as np

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import DatasetConfig
from ftcli.config.tasks.glue import GlueTaskConfig
from ftcli.data.labels import encode_class_labels
from ftcli.data.tables import Raw
from ftcli.tasks.objectives.classification import Classification
from ftcli.tasks.objectives.regression import Regression
from ftcli.tasks.task import Evaluation, Labelled

OFFICIAL = {
    "cola": ("mcc",),
    "sst2": ("accuracy",),
    "mrpc": ("f1", "accuracy"),
    "stsb": ("pearson", "spearman"),
    "qqp": ("f1", "accuracy"),
    "mnli": ("accuracy",),
    "qnli": ("accuracy",),
    "rte": ("accuracy",),
    "wnli": ("accuracy",),
}
POSITIVE = 1  # MRPC's "equivalent", QQP's "duplicate": the class whose F1 GLUE reports
MISMATCHED = {"mnli": "validation_mismatched"}  # a second validation set, scored by ftcli eval


class Glue:
    """GLUE's official metrics, ``score`` and MNLI's mismatched set, on the objective the GLUE task needs."""

    def __init__(self, cfg: GlueTaskConfig) -> None:
        if cfg.benchmark not in OFFICIAL:
            raise FtcliError(
                f"task=glue: the GLUE task is {cfg.benchmark!r}; use dataset=glue dataset.task=<{'|'.join(OFFICIAL)}>"
            )
        self.benchmark = str(cfg.benchmark)
        self.base: Classification | Regression = Regression() if self.benchmark == "stsb" else Classification()
        self.problem_type = self.base.problem_type

    def labels(self, raw: Raw, dataset: DatasetConfig, inputs: list[tuple[str, str | None]]) -> Labelled:
        """The objective's splits; for MNLI from the hub also its mismatched validation set."""
        labelled = self.base.labels(raw, dataset, inputs)
        extra = MISMATCHED.get(self.benchmark)
        found = _extra_split(dataset, extra, labelled.names) if extra and dataset.source == "hub" else None
        if extra and found is not None:
            return Labelled({**labelled.splits, extra: found}, labelled.names)
        return labelled

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        return self.base.loss(model, batch)

    def metric_error(self, metric: str, names: list[str]) -> str | None:
        return self.base.metric_error(metric, names)

    def metrics(self, outputs: np.ndarray, labels: np.ndarray, names: list[str]) -> dict[str, Any]:
        metrics = self.base.metrics(outputs, labels, names)
        if "f1" in OFFICIAL[self.benchmark]:
            metrics["f1"] = metrics["per_class"][names[POSITIVE]]["f1"]
        metrics["score"] = float(np.mean([metrics[k] for k in OFFICIAL[self.benchmark]]))
        return metrics

    def extras(self, outputs: np.ndarray, labels: np.ndarray, names: list[str], how: Evaluation) -> dict[str, Any]:
        extras = self.base.extras(outputs, labels, names, how)
        extra = MISMATCHED.get(self.benchmark)
        if extra and how.other is not None and how.options.split == "validation":
            try:
                out, gold = how.other(extra)
            except FtcliError:  # not hub data (a file of MNLI rows, say): there is no mismatched set
                return extras
            extras["accuracy_mismatched"] = self.base.metrics(out, gold, names)["accuracy"]
        return extras

    def predictions(self, outputs: np.ndarray, names: list[str]) -> list[dict[str, Any]]:
        return self.base.predictions(outputs, names)

    def gold(self, values: list[Any], names: list[str]) -> np.ndarray | None:
        return self.base.gold(values, names)

    def describe(self, kind: str, labels: list[str] | None) -> str:
        return f"{self.base.describe(kind, labels)}; GLUE {self.benchmark.upper()}"


def _extra_split(dataset: DatasetConfig, name: str, label_names: list[str]) -> Any:
    """Another split of the hub dataset, labelled like the others (subsampled with them); None without it."""

    where = f"the {name} split of {dataset.path}"
    try:
        ds = datasets.load_dataset(dataset.path, dataset.config_name, split=name)
    except Exception:  # a local copy without it: eval reports the matched set alone
        return None
    return encode_class_labels(ds, dataset.label_column, label_names, where)
