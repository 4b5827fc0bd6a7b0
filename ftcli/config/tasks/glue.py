"""The ``task=glue`` schema: the nine GLUE tasks, each scored by its official metric."""

from __future__ import annotations

from dataclasses import dataclass

from ftcli.config.schemas import GLUE_TASKS, TaskConfig, opt


@dataclass
class GlueTaskConfig(TaskConfig):
    option = "glue"
    # score: the benchmark's official number for the task (CoLA: MCC; STS-B: mean of Pearson and Spearman;
    # MRPC, QQP: mean of F1 and accuracy; MNLI: matched accuracy; the others: accuracy)
    metrics = ("score", "accuracy", "f1", "mcc", "pearson", "spearman", "loss")
    benchmark: str | None = opt(None, choices=GLUE_TASKS)  # which GLUE task (configs/task/glue.yaml: dataset.task)
