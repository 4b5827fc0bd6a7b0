"""The tagging objective: one tag per word (named entities), cross-entropy over words, entity-level
precision/recall/F1 with seqeval's semantics and a per-type table, entity spans as predictions.

Tags are read in the data's scheme (IOB1, IOB2 or BIOES; ``task.tag_scheme``) and learned as IOB2 (the same
entities, B- on the first word): that is what transformers' token-classification pipeline groups, so a checkpoint's
entities are the same in ftcli and in plain transformers. Sentences of the same split are scored together, as
seqeval scores a list of sentences. Outputs come per sentence (the words inputs put windows together again).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import DatasetConfig
from ftcli.config.tasks.token_classification import TokenClassificationConfig
from ftcli.data.tables import Raw, require_columns
from ftcli.data.tags import read_sentences, with_tag_ids
from ftcli.data.words import IGNORE
from ftcli.metrics.calibration import bootstrap_ci
from ftcli.metrics.entities import counts, entity_metrics, iob2_names, split_tag, word_nll
from ftcli.runtime.inference import logits_of
from ftcli.tasks.task import Evaluation, Labelled


class Tagging:
    """A tag per word; the architecture's token-classification head."""

    problem_type = ""  # transformers names none for token classification

    def __init__(self, cfg: TokenClassificationConfig) -> None:
        self.cfg = cfg

    def labels(self, raw: Raw, dataset: DatasetConfig, inputs: list[tuple[str, str | None]]) -> Labelled:
        """Every split with ``labels``: one IOB2 tag id per word; bad sentences name their file and line/row."""
        words, tags = dataset.text_column, dataset.label_column
        require_columns(raw, [*inputs, ("dataset.label_column", tags)])
        iob2 = {s: read_sentences(raw, s, words, tags, self.cfg.tag_scheme, dataset.label_names) for s in raw.splits}
        types = sorted({split_tag(t)[1] for sentence in iob2["train"] for t in sentence if t != "O"})
        if not types and not dataset.label_names:
            raise FtcliError(f"the tags of {raw.where['train']} mark no entity (every tag is O): nothing to learn")
        names = list(dataset.label_names or iob2_names(types))
        return Labelled({s: with_tag_ids(ds, iob2[s], names, raw, s) for s, ds in raw.splits.items()}, names)

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        """Cross-entropy over the labelled sub-words (each word's first); 0 for a batch that has none."""
        flat, gold = logits_of(model, batch).float().flatten(0, 1), batch["labels"].flatten()
        if not bool((gold != IGNORE).any()):
            return flat.sum() * 0.0
        return torch.nn.functional.cross_entropy(flat, gold, ignore_index=IGNORE)

    def metric_error(self, metric: str, names: list[str]) -> str | None:
        return None

    def metrics(self, outputs: np.ndarray, labels: np.ndarray, names: list[str]) -> dict[str, Any]:
        """Entity metrics over sentences: ``outputs`` holds each sentence's [words, tags] logits, ``labels`` its
        tag ids."""
        gold = [[names[i] for i in sentence] for sentence in labels]
        pred = [[names[i] for i in sentence.argmax(-1)] for sentence in outputs]
        return {**entity_metrics(gold, pred), "loss": word_nll(outputs, labels)}

    def extras(self, outputs: np.ndarray, labels: np.ndarray, names: list[str], how: Evaluation) -> dict[str, Any]:
        """95% bootstrap intervals of entity F1, precision and recall, resampling sentences."""
        if how.options.bootstrap <= 0 or not len(labels):
            return {}
        per_sentence = np.zeros((len(labels), 3))  # true positives, predicted, true entities
        for i, (out, gold) in enumerate(zip(outputs, labels, strict=True)):
            parts = counts([names[t] for t in gold], [names[t] for t in out.argmax(-1)])
            per_sentence[i] = [sum(p.values()) for p in parts]

        def ratio(a: int, b: int) -> Any:
            return lambda c, _: float(c[:, a].sum() / max(c[:, b].sum(), 1e-12)) if c[:, b].sum() > 0 else 0.0

        def f1(c: np.ndarray, _: Any) -> float:
            return float(2 * c[:, 0].sum() / max(c[:, 1].sum() + c[:, 2].sum(), 1e-12))

        fns = {"f1": f1, "precision": ratio(0, 1), "recall": ratio(0, 2)}
        ci = bootstrap_ci(per_sentence, per_sentence, fns, how.options.bootstrap, 0.95, how.seed)
        return {"ci95": {k: list(v) for k, v in ci.items()}}

    def predictions(self, outputs: np.ndarray, names: list[str]) -> list[dict[str, Any]]:
        """Entity spans per row (the words inputs found them on the raw text)."""
        return [{"entities": list(found)} for found in outputs]

    def gold(self, values: list[Any], names: list[str]) -> np.ndarray | None:
        return None  # predict's rows are raw text: there are no tags to compare with

    def describe(self, kind: str, labels: list[str] | None) -> str:
        types = sorted({split_tag(t)[1] for t in labels or [] if t != "O"})
        kinds = ": " + ", ".join(f"`{t}`" for t in types) if types else ""
        return f"{kind} classification (named-entity recognition, IOB2 tags){kinds}"
