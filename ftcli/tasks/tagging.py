"""The tagging objective: one tag per word (named entities), cross-entropy over words, entity-level
precision/recall/F1 with seqeval's semantics and a per-type table, entity spans as predictions.

Tags are read in the data's scheme (IOB1, IOB2 or BIOES; ``task.tag_scheme``) and learned as IOB2 (the
same entities, B- on the first word): that is what transformers' token-classification pipeline groups, so
a checkpoint's entities are the same in ftcli and in plain transformers. Sentences of the same split are
scored together, as seqeval scores a list of sentences.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import DatasetConfig, TokenClassificationConfig
from ftcli.data.labels import LabelError
from ftcli.data.tables import Raw
from ftcli.data.tags import check_tag
from ftcli.metrics.entities import counts, entity_metrics, iob2_names, split_tag, to_iob2
from ftcli.tasks.base import OtherSplit, Task, TaskData

IGNORE = -100  # a sub-word position without a label (torch's cross_entropy ignore_index)


class Tagging(Task):
    problem_type = ""  # transformers names none for token classification
    cfg: TokenClassificationConfig
    _names: list[str] = []  # the tags of the last metrics() call

    def load_data(self, dataset: DatasetConfig, seed: int) -> TaskData:
        """Every split with ``labels``: one IOB2 tag id per word; bad sentences name their file and line/row."""
        from ftcli.data.conll import load_tagged
        from ftcli.data.tables import finish_splits, require_columns

        raw = load_tagged(dataset)
        words, tags = dataset.text_column, dataset.label_column
        require_columns(raw, [("text_column", words), ("label_column", tags)])
        iob2 = {s: read_sentences(raw, s, words, tags, self.cfg.tag_scheme, dataset.label_names) for s in raw.splits}
        types = sorted({split_tag(t)[1] for sentence in iob2["train"] for t in sentence if t != "O"})
        if not types and not dataset.label_names:
            raise FtcliError(f"the tags of {raw.where['train']} mark no entity (every tag is O): nothing to learn")
        names = list(dataset.label_names or iob2_names(types))
        splits = {s: with_tag_ids(ds, iob2[s], names, raw, s) for s, ds in raw.splits.items()}
        return TaskData(finish_splits(splits, dataset, seed, [words, "labels"]), names, [words])

    def criterion(self, outputs: Any, labels: Any) -> Any:
        """Cross-entropy over the labelled sub-words (each word's first); 0 for a batch that has none."""
        import torch

        flat, gold = outputs.float().flatten(0, 1), labels.flatten()
        if not bool((gold != IGNORE).any()):
            return flat.sum() * 0.0
        return torch.nn.functional.cross_entropy(flat, gold, ignore_index=IGNORE)

    def metrics(self, outputs: np.ndarray, labels: np.ndarray, names: list[str]) -> dict[str, Any]:
        """Entity metrics over sentences: ``outputs`` holds each sentence's [words, tags] logits, ``labels``
        its tag ids (see :meth:`WordsTask.outputs`)."""
        self._names = list(names)  # eval_extras, which is not told them, reads tags by name
        gold = [[names[i] for i in sentence] for sentence in labels]
        pred = [[names[i] for i in sentence.argmax(-1)] for sentence in outputs]
        return {**entity_metrics(gold, pred), "loss": word_nll(outputs, labels)}

    def eval_extras(
        self, outputs: np.ndarray, labels: np.ndarray, options: Any, seed: int, other: OtherSplit | None = None
    ) -> dict[str, Any]:
        """95% bootstrap intervals of entity F1, precision and recall, resampling sentences."""
        from ftcli.metrics.calibration import bootstrap_ci

        if options.bootstrap <= 0 or not len(labels):
            return {}
        names = self._names
        per_sentence = np.zeros((len(labels), 3))  # true positives, predicted, true entities
        for i, (out, gold) in enumerate(zip(outputs, labels, strict=True)):
            parts = counts([names[t] for t in gold], [names[t] for t in out.argmax(-1)])
            per_sentence[i] = [sum(p.values()) for p in parts]

        def ratio(a: int, b: int) -> Any:
            return lambda c, _: float(c[:, a].sum() / max(c[:, b].sum(), 1e-12)) if c[:, b].sum() > 0 else 0.0

        def f1(c: np.ndarray, _: Any) -> float:
            return float(2 * c[:, 0].sum() / max(c[:, 1].sum() + c[:, 2].sum(), 1e-12))

        fns = {"f1": f1, "precision": ratio(0, 1), "recall": ratio(0, 2)}
        ci = bootstrap_ci(per_sentence, per_sentence, fns, options.bootstrap, 0.95, seed)
        return {"ci95": {k: list(v) for k, v in ci.items()}}

    def predictions(self, outputs: np.ndarray, names: list[str]) -> list[dict[str, Any]]:
        """Entity spans per row (``WordsTask.predict_outputs`` found them on the raw text)."""
        return [{"entities": list(found)} for found in outputs]

    def card_task(self, labels: list[str] | None) -> str:
        types = sorted({split_tag(t)[1] for t in labels or [] if t != "O"})
        kinds = ": " + ", ".join(f"`{t}`" for t in types) if types else ""
        return f"{self.inputs} classification (named-entity recognition, IOB2 tags){kinds}"


def word_nll(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy of every word's tag (what training minimises, over first sub-words)."""
    total, words = 0.0, 0
    for out, gold in zip(outputs, labels, strict=True):
        z = out.astype(np.float64)
        top = z.max(-1, keepdims=True)
        log_norm = (top + np.log(np.exp(z - top).sum(-1, keepdims=True)))[:, 0]
        total += float((log_norm - z[np.arange(len(gold)), gold]).sum())
        words += len(gold)
    return total / max(words, 1)


# ---- reading tags ---------------------------------------------------------------------------------------


def _place(ds: Any, i: int, where: str) -> str:
    """Where sentence ``i`` is, as its user finds it: the line of a CoNLL file, else the row."""
    from ftcli.data.conll import LINE

    return f"the sentence at line {ds[i][LINE]} of {where}" if LINE in ds.column_names else f"row {i + 1} of {where}"


def _id_names(ds: Any, column: str, label_names: list[str] | None) -> list[str] | None:
    """The tag of each integer id: the dataset's own class names (hub datasets), else dataset.label_names."""
    feature = getattr(ds.features.get(column), "feature", None)
    return list(getattr(feature, "names", None) or label_names or []) or None


def _sentence(ds: Any, i: int, words: Any, tags: Any, ids: list[str] | None, where: str) -> list[str]:
    """One row's tags as strings, checked against its tokens."""
    if not isinstance(words, list) or not isinstance(tags, list):
        what = "tokens" if not isinstance(words, list) else "tags"
        raise FtcliError(
            f"{_place(ds, i, where)}: the {what} are {words if what == 'tokens' else tags!r}, not a list; token "
            "classification reads a list of tokens and a list of tags per row, or a CoNLL file"
        )
    if not words:
        raise FtcliError(f"{_place(ds, i, where)}: an empty sentence (no tokens); remove it or fix the data")
    if len(tags) != len(words):
        raise FtcliError(f"{_place(ds, i, where)}: {len(words)} tokens but {len(tags)} tags")
    if tags and not isinstance(tags[0], str):
        if ids is None:
            raise FtcliError(f"the tags of {where} are numbers and nothing names them: set dataset.label_names")
        try:
            return [ids[int(t)] for t in tags]
        except (IndexError, ValueError, TypeError) as e:
            raise FtcliError(f"tag ids {tags} in {_place(ds, i, where)}: not all of them name a tag of {ids}") from e
    return [str(t) for t in tags]


def read_sentences(
    raw: Raw, split: str, words: str, tags: str, scheme: str, label_names: list[str] | None
) -> list[list[str]]:
    """Every sentence's tags in IOB2, after checking tokens against tags and each tag against the scheme."""
    ds, where = raw.splits[split], raw.where[split]
    ids = _id_names(ds, tags, label_names)
    seen: set[str] = set()
    out = []
    for i, (w, t) in enumerate(zip(ds[words], ds[tags], strict=True)):
        sentence = _sentence(ds, i, w, t, ids, where)
        for tag in set(sentence) - seen:
            check_tag(tag, scheme, f"in {_place(ds, i, where)}")
            seen.add(tag)
        out.append(to_iob2(sentence))
    return out


def with_tag_ids(ds: Any, sentences: list[list[str]], names: list[str], raw: Raw, split: str) -> Any:
    """A ``labels`` column of tag ids; a tag outside the label set (an entity type the model does not know)
    names its sentence."""
    index = {n: i for i, n in enumerate(names)}
    rows = []
    for i, sentence in enumerate(sentences):
        unknown = [t for t in sentence if t not in index]
        if unknown:
            raise LabelError(
                f"tag {unknown[0]!r} in {_place(ds, i, raw.where[split])} is outside the label set {names}; "
                "set dataset.label_names, or fix the data"
            )
        rows.append([index[t] for t in sentence])
    key = json.dumps([ds._fingerprint, names, "iob2-ids"])
    return ds.map(
        lambda _, idx: {"labels": [rows[i] for i in idx]},
        with_indices=True,
        batched=True,
        desc=f"tags ({raw.where[split]})",
        new_fingerprint=hashlib.sha256(key.encode()).hexdigest()[:16],
    )
