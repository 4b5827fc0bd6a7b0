"""GLUE: the nine tasks of the benchmark (Wang et al., 2018), each scored by its official metric.

``dataset=glue dataset.task=<task>`` picks ``task=glue``; its ``benchmark`` (the GLUE task) chooses the
objective: regression for STS-B, classification for the others. Next to the objective's own metrics it
reports the task's official ones — CoLA: Matthews correlation; STS-B: Pearson and Spearman; MRPC, QQP: F1
of the positive class and accuracy; MNLI: accuracy on the matched and (``ftcli eval``) mismatched
validation sets; SST-2, QNLI, RTE, WNLI: accuracy — and ``score``, their mean (one number per task, as
GLUE's leaderboard averages them), which picks checkpoints/best by default.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import DatasetConfig, GlueTaskConfig
from ftcli.tasks.base import OtherSplit, Task, TaskData
from ftcli.tasks.classification import Classification
from ftcli.tasks.regression import Regression
from ftcli.tasks.text import TextTask

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


class TextGlue(TextTask):
    """The GLUE task the config names: an instance of :class:`GlueClassification` or :class:`GlueRegression`."""

    schema = GlueTaskConfig

    def __new__(cls, cfg: Any) -> Any:
        if cls is TextGlue:
            benchmark = cfg.benchmark
            if benchmark not in OFFICIAL:
                raise FtcliError(
                    f"task=glue: the GLUE task is {benchmark!r}; use dataset=glue dataset.task=<{'|'.join(OFFICIAL)}>"
                )
            cls = GlueRegression if benchmark == "stsb" else GlueClassification
        return object.__new__(cls)


class GlueScores(Task):
    """What GLUE adds to an objective: its official metrics, ``score``, and MNLI's mismatched set."""

    cfg: GlueTaskConfig

    @property
    def benchmark(self) -> str:
        return str(self.cfg.benchmark)

    def load_data(self, dataset: DatasetConfig, seed: int) -> TaskData:
        """The objective's splits; for MNLI from the hub also its mismatched validation set."""
        data = super().load_data(dataset, seed)
        extra = MISMATCHED.get(self.benchmark)
        found = _extra_split(dataset, extra, data, seed) if extra and dataset.source == "hub" else None
        if extra and found is not None:
            data.splits[extra] = found
        return data

    def metrics(self, outputs: np.ndarray, labels: np.ndarray, names: list[str]) -> dict[str, Any]:
        metrics = super().metrics(outputs, labels, names)
        if "f1" in OFFICIAL[self.benchmark]:
            metrics["f1"] = metrics["per_class"][names[POSITIVE]]["f1"]
        metrics["score"] = float(np.mean([metrics[k] for k in OFFICIAL[self.benchmark]]))
        return metrics

    def eval_extras(
        self, outputs: np.ndarray, labels: np.ndarray, options: Any, seed: int, other: OtherSplit | None = None
    ) -> dict[str, Any]:
        extras = super().eval_extras(outputs, labels, options, seed, other)
        extra = MISMATCHED.get(self.benchmark)
        if extra and other is not None and options.split == "validation":
            try:
                out, gold = other(extra)
            except FtcliError:  # not hub data (a file of MNLI rows, say): there is no mismatched set
                return extras
            names = [str(i) for i in range(out.shape[-1])]
            extras["accuracy_mismatched"] = super().metrics(out, gold, names)["accuracy"]
        return extras

    def card_task(self, labels: list[str] | None) -> str:
        return f"{super().card_task(labels)}; GLUE {self.benchmark.upper()}"


class GlueClassification(GlueScores, Classification, TextGlue):
    """CoLA, SST-2, MRPC, QQP, MNLI, QNLI, RTE, WNLI."""


class GlueRegression(GlueScores, Regression, TextGlue):
    """STS-B: a similarity score from 0 to 5."""


def _extra_split(dataset: DatasetConfig, name: str, data: TaskData, seed: int) -> Any:
    """Another split of the hub dataset, labelled and subsampled like the validation split; None without it."""
    import datasets

    from ftcli.data.labels import encode_class_labels

    where = f"the {name} split of {dataset.path}"
    try:
        ds = datasets.load_dataset(dataset.path, dataset.config_name, split=name)
    except Exception:  # a local copy without it: eval reports the matched set alone
        return None
    ds = encode_class_labels(ds, dataset.label_column, data.label_names, where)
    if dataset.max_eval_samples and dataset.max_eval_samples < len(ds):
        ds = ds.shuffle(seed=seed).select(range(dataset.max_eval_samples))
    keep = [*data.columns, "labels"]
    return ds.remove_columns([c for c in ds.column_names if c not in keep])
