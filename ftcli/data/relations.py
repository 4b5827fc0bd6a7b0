"""Relation extraction data: a sentence with a subject and an object span and the relation between them,
read from files, checked, and marked with entity markers for the model.

A row gives the sentence in one of three ways:

- TACRED's tokens: ``token`` (or ``tokens``) a list of words, ``subj_start``/``subj_end`` and
  ``obj_start``/``obj_end`` token indices with the end **inclusive**, as in TACRED;
- text and character offsets: ``text``, ``subj_char_start``/``subj_char_end`` and
  ``obj_char_start``/``obj_char_end`` with the end **exclusive**, as Python slices;
- text with markers (the usual predict input): ``"[S]Maria Lopez[/S] joined [O]Helix[/O]"``, typed
  markers ``[S:PER]…[/S:PER]`` giving the entity types.

``subj_type``/``obj_type`` name the entity types (typed markers need them); the label is ``relation`` (or
``label``), ``no_relation`` when the sentence states none. Files: ``.json`` (a list of rows, as TACRED
ships, or ``{"data": [...]}``), ``.jsonl``, ``.csv``/``.tsv`` (text rows; integer offset columns).
A span outside the sentence, an empty span, overlapping subject and object, or a missing label is one
FtcliError line naming the file and row.

Markers (``task.marker``): ``plain`` inserts ``[S] … [/S]`` and ``[O] … [/O]``; ``typed`` inserts
``[S:PER] … [/S:PER]`` and ``[O:ORG] … [/O:ORG]`` with the row's types. Either way they are new special
tokens, and the head pools the hidden states at the two start markers (the "entity start" recipe of
Baldini Soares et al. 2019; typed markers after Zhou & Chen 2022). ``marker_seed_text`` gives the words whose
embeddings a new marker starts from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import DatasetConfig
from ftcli.data.rows import placed_rows
from ftcli.data.tables import SPLITS, Raw, load_raw

NO_RELATION = "no_relation"
MARKER_STYLES = ("typed", "plain")
RELATION_FORMATS = (".json", ".jsonl", ".csv", ".tsv")
MARKER = re.compile(r"\[(/?)([SO])(?::([^\]\s:]+))?\]")  # [S] [/S] [O:ORG] [/O:ORG]
TYPE = re.compile(r"[^\]\s:\[]+")  # a type must fit inside a marker


@dataclass(frozen=True)
class Span:
    """An entity: characters [start, end) of the text, and its type if known."""

    start: int
    end: int
    type: str | None = None


@dataclass(frozen=True)
class RelationExample:
    """One checked row. ``text`` always holds the sentence (token rows: the tokens joined by spaces) and the
    spans are character spans of it; token rows keep their tokens and inclusive token spans too."""

    id: str
    text: str
    subj: Span
    obj: Span
    relation: str | None
    where: str
    tokens: tuple[str, ...] | None = None
    subj_tokens: tuple[int, int] | None = None
    obj_tokens: tuple[int, int] | None = None


@dataclass(frozen=True)
class Marked:
    """A sentence with markers inserted; ``subj_at``/``obj_at`` index the start markers (characters of
    ``text``, and for token rows, items of ``tokens``)."""

    text: str
    subj_at: int
    obj_at: int
    tokens: tuple[str, ...] | None = None
    subj_token: int | None = None
    obj_token: int | None = None


# ---------------------------------------------------------------- reading


def read_relation_file(path: str | Path, labelled: bool = True) -> list[RelationExample]:
    """Checked examples from a ``.json``, ``.jsonl``, ``.csv`` or ``.tsv`` file of relation rows."""
    placed = placed_rows(path, RELATION_FORMATS, "rows")
    if Path(path).suffix.lower() in (".csv", ".tsv"):  # an empty cell is a key not given
        placed = [({k: v for k, v in r.items() if v not in (None, "")}, place) for r, place in placed]
    return [check_relation_row(row, place, labelled, default_id=str(n)) for n, (row, place) in enumerate(placed, 1)]


def check_relation_rows(rows: Iterable[Mapping[str, Any]], where: str, labelled: bool = True) -> list[RelationExample]:
    """Checked examples from any source (a hub split, a list): errors name ``row N of {where}``."""
    return [check_relation_row(r, f"row {n} of {where}", labelled, default_id=str(n)) for n, r in enumerate(rows, 1)]


# ---------------------------------------------------------------- checking one row


def check_relation_row(
    row: Mapping[str, Any], place: str, labelled: bool = True, default_id: str = ""
) -> RelationExample:
    """One row (tokens with token spans, text with character spans, or text with markers) as an example.

    Args:
        row: the row; see the module docstring for its keys.
        place: where the row is, for errors ("line 3 of dev.jsonl").
        labelled: whether the row must carry its relation.
        default_id: the id of a row that has none.
    """
    if not isinstance(row, Mapping):
        raise FtcliError(f"{place}: expected an object with a sentence, two spans and a relation, got {row!r:.60}")
    relation = row.get("relation", row.get("label"))
    if relation is not None and (not isinstance(relation, str) or not relation.strip()):
        raise FtcliError(f"{place}: the relation {relation!r} is not a name (use {NO_RELATION} for none)")
    if relation is None and labelled:
        raise FtcliError(f'{place}: no relation; give "relation" (use {NO_RELATION} when the sentence states none)')
    rid = str(row["id"]) if row.get("id") not in (None, "") else default_id
    if "token" in row or "tokens" in row:
        return _token_example(row, place, rid, relation)
    text = row.get("text")
    if not isinstance(text, str) or not text.strip():
        raise FtcliError(f"{place}: no sentence; give tokens (with token spans) or text (with offsets or markers)")
    if any(k in row for k in ("subj_char_start", "obj_char_start")):
        subj = Span(*_ints(row, ("subj_char_start", "subj_char_end"), place), _type(row, "subj_type", place))
        obj = Span(*_ints(row, ("obj_char_start", "obj_char_end"), place), _type(row, "obj_type", place))
    else:
        text, subj, obj = parse_marked_text(text, place)
    _check_spans(text, subj, obj, place)
    return RelationExample(rid, text, subj, obj, relation, place)


def _token_example(row: Mapping[str, Any], place: str, rid: str, relation: str | None) -> RelationExample:
    tokens = row.get("token", row.get("tokens"))
    if not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens):
        raise FtcliError(f"{place}: the tokens must be a list of non-empty words, got {tokens!r:.60}")
    if not tokens:
        raise FtcliError(f"{place}: an empty sentence (no tokens)")
    s0, s1 = _ints(row, ("subj_start", "subj_end"), place)
    o0, o1 = _ints(row, ("obj_start", "obj_end"), place)
    for name, (a, b) in (("subject", (s0, s1)), ("object", (o0, o1))):
        if b < a:
            raise FtcliError(f"{place}: the {name} span {a}..{b} is empty (token ends are inclusive, as in TACRED)")
        if a < 0 or b >= len(tokens):
            raise FtcliError(f"{place}: the {name} span {a}..{b} is outside the sentence's tokens 0..{len(tokens) - 1}")
    if s0 <= o1 and o0 <= s1:
        raise FtcliError(f"{place}: the subject (tokens {s0}..{s1}) and the object (tokens {o0}..{o1}) overlap")
    starts = np.cumsum([0] + [len(t) + 1 for t in tokens])  # character start of each token in the joined text
    subj = Span(int(starts[s0]), int(starts[s1] + len(tokens[s1])), _type(row, "subj_type", place))
    obj = Span(int(starts[o0]), int(starts[o1] + len(tokens[o1])), _type(row, "obj_type", place))
    return RelationExample(rid, " ".join(tokens), subj, obj, relation, place, tuple(tokens), (s0, s1), (o0, o1))


def _ints(row: Mapping[str, Any], keys: tuple[str, str], place: str) -> tuple[int, int]:
    values = []
    for key in keys:
        v = row.get(key)
        if isinstance(v, str) and v.strip().lstrip("-").isdigit():  # CSV cells
            v = int(v)
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            raise FtcliError(f"{place}: {key}={v!r} is not a position" if v is not None else f"{place}: no {key}")
        values.append(int(v))
    return values[0], values[1]


def _type(row: Mapping[str, Any], key: str, place: str) -> str | None:
    value = row.get(key)
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not TYPE.fullmatch(value):
        raise FtcliError(f"{place}: {key}={value!r} cannot name a marker; use a word without spaces, ':' or brackets")
    return value


def _check_spans(text: str, subj: Span, obj: Span, place: str) -> None:
    for name, span in (("subject", subj), ("object", obj)):
        if span.start < 0 or span.end > len(text):
            raise FtcliError(
                f"{place}: the {name} span [{span.start}, {span.end}) is outside the sentence ({len(text)} characters)"
            )
        if span.end <= span.start or not text[span.start : span.end].strip():
            raise FtcliError(f"{place}: the {name} span [{span.start}, {span.end}) is empty")
    if subj.start < obj.end and obj.start < subj.end:
        raise FtcliError(
            f"{place}: the subject [{subj.start}, {subj.end}) {text[subj.start : subj.end]!r} and the object "
            f"[{obj.start}, {obj.end}) {text[obj.start : obj.end]!r} overlap"
        )


def parse_marked_text(text: str, place: str = "input") -> tuple[str, Span, Span]:
    """Text with ``[S]…[/S]`` and ``[O]…[/O]`` (typed: ``[S:PER]…[/S:PER]``) → (plain text, subject, object).

    Spaces just inside the markers are not part of the spans.
    """
    spans: dict[str, Span] = {}
    plain, opened, last = [], None, 0
    for m in MARKER.finditer(text):
        plain.append(text[last : m.start()])
        last, at = m.end(), sum(len(p) for p in plain)
        closing, role, kind = m.group(1) == "/", m.group(2), m.group(3)
        name = "subject" if role == "S" else "object"
        if not closing:
            if opened or role in spans:
                why = f"inside the {opened[0]} span" if opened else f"a second {name}"
                raise FtcliError(f"{place}: {m.group(0)} at character {m.start()} opens {why}; mark one of each")
            opened = (name, role, kind, at)
        elif not opened or opened[1] != role or (kind and opened[2] and kind != opened[2]):
            raise FtcliError(f"{place}: {m.group(0)} at character {m.start()} closes no open [{role}] span")
        else:
            spans[role] = _trimmed("".join(plain), opened[3], at, opened[2] or kind)
            opened = None
    plain.append(text[last:])
    if opened:
        raise FtcliError(f"{place}: the {opened[0]} span opened by [{opened[1]}…] is never closed")
    missing = [f"[{r}]…[/{r}]" for r in "SO" if r not in spans]
    if missing:
        raise FtcliError(f"{place}: no {' or '.join(missing)} in {text!r:.80}; mark the subject and the object")
    return "".join(plain), spans["S"], spans["O"]


def _trimmed(text: str, start: int, end: int, kind: str | None) -> Span:
    inner = text[start:end]
    return Span(start + len(inner) - len(inner.lstrip()), end - len(inner) + len(inner.rstrip()), kind)


# ---------------------------------------------------------------- markers


def markers(style: str, subj_type: str | None = None, obj_type: str | None = None) -> tuple[str, str, str, str]:
    """The four markers for a pair: subject open/close, object open/close."""
    if style not in MARKER_STYLES:
        raise FtcliError(f"marker={style}: choose one of {', '.join(MARKER_STYLES)}")
    if style == "plain":
        return "[S]", "[/S]", "[O]", "[/O]"
    return f"[S:{subj_type}]", f"[/S:{subj_type}]", f"[O:{obj_type}]", f"[/O:{obj_type}]"


def marker_vocabulary(examples: Iterable[RelationExample], style: str) -> list[str]:
    """Every marker the examples need, sorted: the special tokens to add to the tokenizer."""
    found: set[str] = set()
    for ex in examples:
        _need_types(ex, style)
        found.update(markers(style, ex.subj.type, ex.obj.type))
    return sorted(found)


def marker_seed_text(marker: str) -> str:
    """Words whose token embeddings, averaged, start a new marker's: "@" for subject markers, "#" for object
    markers (Zhou & Chen's punctuation markers), and the type's words for typed start markers."""
    m = MARKER.fullmatch(marker)
    if not m:
        raise ValueError(f"{marker!r} is not an entity marker")
    symbol = "@" if m.group(2) == "S" else "#"
    kind = m.group(3)
    return f"{symbol} {kind.lower().replace('_', ' ')}" if kind and not m.group(1) else symbol


def _need_types(ex: RelationExample, style: str) -> None:
    if style == "typed" and (ex.subj.type is None or ex.obj.type is None):
        raise FtcliError(
            f"{ex.where}: typed markers need the entity types; give subj_type and obj_type, or [S:TYPE]…[/S:TYPE] "
            "markers, or use marker=plain"
        )


def mark(ex: RelationExample, style: str) -> Marked:
    """The sentence with markers around both spans (a space each side of a marker), and where the start
    markers are."""
    _need_types(ex, style)
    names = markers(style, ex.subj.type, ex.obj.type)
    pieces, at, cursor = [], {}, 0
    for role, span, opening, closing in sorted(
        [("S", ex.subj, names[0], names[1]), ("O", ex.obj, names[2], names[3])], key=lambda x: x[1].start
    ):
        pieces.append(ex.text[cursor : span.start])
        at[role] = sum(len(p) for p in pieces)
        pieces.append(f"{opening} {ex.text[span.start : span.end]} {closing}")
        cursor = span.end
    text = "".join(pieces) + ex.text[cursor:]
    if ex.tokens is None or ex.subj_tokens is None or ex.obj_tokens is None:
        return Marked(text, at["S"], at["O"])
    tokens, subj_token, obj_token = _mark_tokens(ex.tokens, ex.subj_tokens, ex.obj_tokens, names)
    return Marked(text, at["S"], at["O"], tokens, subj_token, obj_token)


def _mark_tokens(
    tokens: Sequence[str], subj: tuple[int, int], obj: tuple[int, int], names: tuple[str, str, str, str]
) -> tuple[tuple[str, ...], int, int]:
    """Markers as tokens of their own before each span's first token and after its last (inclusive) one."""
    before, after = {subj[0]: names[0], obj[0]: names[2]}, {subj[1]: names[1], obj[1]: names[3]}
    out: list[str] = []
    at: dict[str, int] = {}
    for i, token in enumerate(tokens):
        if i in before:
            at[before[i]] = len(out)
            out.append(before[i])
        out.append(token)
        if i in after:
            out.append(after[i])
    return tuple(out), at[names[0]], at[names[2]]


def start_marker_positions(tokens: Sequence[str]) -> tuple[int, int] | None:
    """Where the subject and object start markers are among a tokenizer's tokens (``convert_ids_to_tokens``);
    None when truncation cut one off."""
    subj = next((i for i, t in enumerate(tokens) if t.startswith("[S") and MARKER.fullmatch(t)), None)
    obj = next((i for i, t in enumerate(tokens) if t.startswith("[O") and MARKER.fullmatch(t)), None)
    return None if subj is None or obj is None else (subj, obj)


# ---------------------------------------------------------------- splits as flat rows


ROW = datasets.Features(
    {
        "id": datasets.Value("string"),
        "text": datasets.Value("string"),
        "subj_start": datasets.Value("int64"),
        "subj_end": datasets.Value("int64"),
        "subj_type": datasets.Value("string"),
        "obj_start": datasets.Value("int64"),
        "obj_end": datasets.Value("int64"),
        "obj_type": datasets.Value("string"),
        "relation": datasets.Value("string"),
        "where": datasets.Value("string"),
    }
)
COLUMNS = tuple(k for k in ROW if k != "relation")  # what a checked example keeps besides its relation


def flat_row(ex: RelationExample) -> dict[str, Any]:
    """A checked example as one flat row: the sentence, character spans (end exclusive), types, relation."""
    return {
        "id": ex.id,
        "text": ex.text,
        "subj_start": ex.subj.start,
        "subj_end": ex.subj.end,
        "subj_type": ex.subj.type,
        "obj_start": ex.obj.start,
        "obj_end": ex.obj.end,
        "obj_type": ex.obj.type,
        "relation": ex.relation,
        "where": ex.where,
    }


def example_of(row: Mapping[str, Any]) -> RelationExample:
    """A flat row back as an example (to mark it)."""
    subj = Span(int(row["subj_start"]), int(row["subj_end"]), row.get("subj_type"))
    obj = Span(int(row["obj_start"]), int(row["obj_end"]), row.get("obj_type"))
    return RelationExample(str(row["id"]), str(row["text"]), subj, obj, row.get("relation"), str(row["where"]))


def load_relations(cfg: DatasetConfig) -> Raw:
    """Every configured split as checked flat rows (files: :func:`read_relation_file`; hub datasets: their rows)."""
    if cfg.source != "files":
        raw = load_raw(cfg)
        examples = {s: check_relation_rows(ds, raw.where[s]) for s, ds in raw.splits.items()}
        where = raw.where
    else:
        if not cfg.train_file:
            raise FtcliError("dataset.train_file is required for dataset=files")
        paths = {s: getattr(cfg, f"{s}_file") for s in SPLITS if getattr(cfg, f"{s}_file")}
        examples = {s: read_relation_file(Path(p).expanduser()) for s, p in paths.items()}
        where = {s: Path(p).name for s, p in paths.items()}
    return Raw(
        {s: datasets.Dataset.from_list([flat_row(e) for e in ex], features=ROW) for s, ex in examples.items()}, where
    )
