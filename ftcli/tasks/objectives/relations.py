"""The relation objective: one relation per (subject, object) pair, softmax + cross-entropy, scored as TACRED's
official scorer does (micro precision/recall/F1 leaving ``task.negative`` out), with macro F1, accuracy and a
per-relation table; bootstrap intervals and calibration in ``ftcli eval``; a relation with probabilities per
prediction."""

from __future__ import annotations

from typing import Any

import numpy as np

from ftcli.config.schemas import DatasetConfig
from ftcli.config.tasks.relation_extraction import RelationExtractionConfig
from ftcli.data.labels import class_names, encode_class_labels
from ftcli.data.tables import Raw, require_columns
from ftcli.metrics.calibration import bootstrap_ci
from ftcli.metrics.classification import classification_metrics
from ftcli.metrics.relations import micro_f1, relation_table, tacred_scores
from ftcli.tasks.objectives.classification import Classification
from ftcli.tasks.task import Evaluation, Labelled

RELATION = "relation"  # the label column of relation rows (``data/relations.py``)


class Relations:
    """One relation (or ``task.negative``) per row: the head has one output per relation."""

    problem_type = "single_label_classification"

    def __init__(self, cfg: RelationExtractionConfig) -> None:
        self.negative = str(cfg.negative)
        self.classes = Classification()  # the loss, calibration and predictions are a classifier's

    def labels(self, raw: Raw, dataset: DatasetConfig, inputs: list[tuple[str, str | None]]) -> Labelled:
        """Every split with integer ``labels``: relation names in ``dataset.label_names``' order, else sorted."""
        require_columns(raw, [*inputs, ("relation rows", RELATION)])
        if dataset.label_names:
            names = [str(n) for n in dataset.label_names]
        else:  # relation names are text: read as written
            names, _ = class_names(raw.splits["train"], RELATION, raw.where["train"])
        return Labelled(
            {s: encode_class_labels(ds, RELATION, names, raw.where[s]) for s, ds in raw.splits.items()}, names
        )

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        return self.classes.loss(model, batch)

    def metric_error(self, metric: str, names: list[str]) -> str | None:
        return None

    def negative_id(self, names: list[str]) -> int:
        """The id of ``task.negative`` (-1 when the data has no such label: every relation counts)."""
        return names.index(self.negative) if self.negative in names else -1

    def metrics(self, outputs: np.ndarray, labels: np.ndarray, names: list[str]) -> dict[str, Any]:
        """TACRED's micro P/R/F1 without the negative label, macro F1, accuracy, loss, a per-relation table."""
        base = classification_metrics(labels, outputs, names)
        gold, guess = [names[i] for i in labels], [names[i] for i in outputs.argmax(-1)]
        table = relation_table(gold, guess, self.negative)
        return {
            **tacred_scores(gold, guess, self.negative),
            **{k: base[k] for k in ("accuracy", "loss", "confusion_matrix", "most_confused", "examples")},
            "per_label": {
                r["relation"]: {k: r[k] for k in ("precision", "recall", "f1")} | {"support": r["gold"]} for r in table
            },
        }

    def extras(self, outputs: np.ndarray, labels: np.ndarray, names: list[str], how: Evaluation) -> dict[str, Any]:
        """Calibration (ECE over the softmax) and 95% bootstrap intervals of the micro F1 and accuracy."""
        options = how.options
        extras = self.classes.extras(outputs, labels, names, how)
        if options.bootstrap > 0 and len(labels):
            preds = outputs.argmax(-1)
            fns = {"f1": micro_f1(self.negative_id(names)), "accuracy": lambda t, p: float((t == p).mean())}
            ci = bootstrap_ci(labels, preds, fns, options.bootstrap, 0.95, how.seed)
            extras["ci95"] = {**extras.get("ci95", {}), **{k: list(v) for k, v in ci.items()}}
        return extras

    def predictions(self, outputs: np.ndarray, names: list[str]) -> list[dict[str, Any]]:
        return [
            {"relation": p["label"], "probabilities": p["probabilities"]}
            for p in self.classes.predictions(outputs, names)
        ]

    def gold(self, values: list[Any], names: list[str]) -> np.ndarray | None:
        return self.classes.gold(values, names)

    def describe(self, kind: str, labels: list[str] | None) -> str:
        names = ": " + ", ".join(f"`{n}`" for n in labels) if labels else ""
        return f"relation extraction (a subject and an object span of a sentence, entity markers){names}"
