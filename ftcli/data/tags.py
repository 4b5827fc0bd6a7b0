"""Reading tags: which prefixes each scheme writes, every tag checked against the scheme the data says it uses,
sentences read as IOB2 and their tags as ids, with errors that name the file and the line or row."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ftcli.config.errors import FtcliError
from ftcli.config.tasks.token_classification import TAG_SCHEMES
from ftcli.data.conll import LINE
from ftcli.data.labels import LabelError
from ftcli.data.tables import Raw
from ftcli.metrics.entities import split_tag, to_iob2

PREFIXES = {"IOB1": "BI", "IOB2": "BI", "BIOES": "BIES", "auto": "BIES"}  # what each scheme may write


def check_tag(tag: str, scheme: str, where: str) -> None:
    """A tag the scheme cannot write names itself, where it is, and what the scheme allows."""
    prefix, _ = split_tag(tag)
    allowed = PREFIXES[scheme]
    if prefix == "O" or prefix in allowed:
        return
    shape = ", ".join(f"{p}-<type>" for p in allowed)
    which = f"task.tag_scheme={scheme}" if scheme != "auto" else f"any of {', '.join(TAG_SCHEMES)}"
    raise FtcliError(f"tag {tag!r} {where} is not a tag of {which} (O, {shape}); fix the data or task.tag_scheme")


def _place(ds: Any, i: int, where: str) -> str:
    """Where sentence ``i`` is, as its user finds it: the line of a CoNLL file, else the row."""

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
