"""Extractive question answering data: SQuAD-style rows in, token windows and start/end positions out, and
answers back out of the model's start/end logits.

Rows are flat dicts, the layout of the hub's SQuAD datasets::

    {"id": "q1", "title": "", "context": "...", "question": "...",
     "answers": {"text": ["Helix"], "answer_start": [25]}}     # empty lists: an unanswerable question (v2)

Files (``read_qa_file``):

- ``.json`` — SQuAD's nested layout ``{"data": [{"title", "paragraphs": [{"context", "qas": [{"id",
  "question", "answers": [{"text", "answer_start"}], "is_impossible"?}]}]}]}``, or a list of flat rows (also
  under a top-level ``"data"`` key). ``.jsonl`` — one flat row per line.
- ``.csv`` / ``.tsv`` — columns ``context``, ``question`` (``id``, ``title`` optional) and the answers either
  as an ``answers`` column holding the JSON of ``{"text": [...], "answer_start": [...]}`` (several answers),
  or as ``answer_text`` and ``answer_start`` columns (one answer; both cells empty: unanswerable).

Every row is checked: a question or context that is missing or empty, an answer whose text is not found
at its ``answer_start``, ``is_impossible`` contradicting the answers, a repeated id — one FtcliError line
naming the file and row.

The model side follows transformers' run_qa.py: the question first, the context cut into windows of
``max_length`` tokens that overlap by ``doc_stride`` tokens (``truncation="only_second"``); a window that
does not hold the whole answer is labelled with its CLS position; decoding looks at the ``n_best`` highest
start and end logits of each window, keeps spans inside the context of at most ``max_answer_length``
tokens, and maps the best one over all windows back to the context's characters. For unanswerable
questions (v2), the null score of an example is the lowest CLS start + end logit over its windows, and the
example abstains when null score − best span score is above a threshold.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import DatasetConfig
from ftcli.data.rows import placed_rows
from ftcli.data.tables import SPLITS, Raw, load_raw
from ftcli.data.text import tokenizer_fingerprint
from ftcli.data.words import collate

QA_FORMATS = (".json", ".jsonl", ".csv", ".tsv")
ROW = datasets.Features(
    {
        "id": datasets.Value("string"),
        "title": datasets.Value("string"),
        "context": datasets.Value("string"),
        "question": datasets.Value("string"),
        "answers": {
            "text": datasets.Sequence(datasets.Value("string")),
            "answer_start": datasets.Sequence(datasets.Value("int64")),
        },
    }
)
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
NO_OFFSET = (-1, -1)  # a question or special token in a stored window (Arrow holds no None inside a list)


# ---------------------------------------------------------------- reading


def read_qa_file(path: str | Path, labelled: bool = True) -> list[dict[str, Any]]:
    """Checked flat rows from a SQuAD-style file (nested or flat JSON, JSONL, CSV/TSV).

    Args:
        path: the file.
        labelled: whether every row must carry its answers (training, evaluation); predict input needs not.
    """
    path = Path(path)
    placed = placed_rows(path, QA_FORMATS, "questions")
    first = placed[0][0]
    if isinstance(first, dict) and "paragraphs" in first:  # SQuAD's own nesting
        placed = _squad_rows([r for r, _ in placed], path)
    elif path.suffix.lower() in (".csv", ".tsv"):
        placed = _csv_answers(placed)
    if not placed:
        raise FtcliError(f"{path}: has no questions")
    return _check_all([(_as_dict(r, place), place) for r, place in placed], labelled)


def check_qa_rows(rows: Iterable[Mapping[str, Any]], where: str, labelled: bool = True) -> list[dict[str, Any]]:
    """Checked flat rows from any source (a hub split, a list): errors name ``row N of {where}``."""
    return _check_all([(dict(r), f"row {i} of {where}") for i, r in enumerate(rows, 1)], labelled)


def _check_all(placed: list[tuple[dict[str, Any], str]], labelled: bool) -> list[dict[str, Any]]:
    rows, seen = [], dict[str, str]()
    for n, (raw, place) in enumerate(placed, 1):
        row = check_qa_row(raw, place, labelled, default_id=str(n))
        if row["id"] in seen:
            raise FtcliError(f"{place}: id {row['id']!r} is already the id of {seen[row['id']]}; ids must be unique")
        seen[row["id"]] = place
        rows.append(row)
    return rows


def _squad_rows(articles: list[Any], path: Path) -> list[tuple[dict[str, Any], str]]:
    """SQuAD's nesting flattened: each question carries its paragraph's context and its article's title."""
    placed = []
    for a, article in enumerate(articles):
        for p, paragraph in enumerate(_as_dict(article, f"data[{a}] of {path}").get("paragraphs") or []):
            paragraph = _as_dict(paragraph, f"data[{a}].paragraphs[{p}] of {path}")
            for q, qa in enumerate(paragraph.get("qas") or []):
                at = f"data[{a}].paragraphs[{p}].qas[{q}]"
                qa = _as_dict(qa, f"{at} of {path}")
                place = f"question {qa['id']!r} ({at}) of {path}" if "id" in qa else f"{at} of {path}"
                row = {**qa, "context": paragraph.get("context"), "title": article.get("title", "")}
                placed.append((row, place))
    return placed


def _csv_answers(placed: list[tuple[Any, str]]) -> list[tuple[Any, str]]:
    """A table's answers: a JSON ``answers`` cell, or one ``answer_text`` / ``answer_start`` pair (or none)."""
    columns = placed[0][0].keys()
    if "answers" in columns:
        for row, place in placed:
            row["answers"] = _json_cell(row["answers"], place)
    elif "answer_text" in columns or "answer_start" in columns:
        for row, _ in placed:
            text, start = row.pop("answer_text", "") or "", row.pop("answer_start", "") or ""
            row["answers"] = {"text": [text] if text or start else [], "answer_start": [start] if text or start else []}
    return placed


def _json_cell(cell: str | None, place: str) -> Any:
    if not cell or not cell.strip():
        return {"text": [], "answer_start": []}
    try:
        return json.loads(cell)
    except json.JSONDecodeError as e:
        raise FtcliError(
            f'{place}: the answers cell is not JSON ({e.msg}); write {{"text": [...], "answer_start": [...]}}'
        ) from e


def _as_dict(value: Any, place: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FtcliError(f"{place}: expected an object with question, context and answers, got {value!r:.60}")
    return value


# ---------------------------------------------------------------- checking one row


def check_qa_row(row: Mapping[str, Any], place: str, labelled: bool = True, default_id: str = "") -> dict[str, Any]:
    """One row as ``{id, title, context, question, answers: {text, answer_start}}``, or a one-line error.

    Args:
        row: a flat row; ``answers`` as ``{text: [...], answer_start: [...]}`` or a list of
            ``{text, answer_start}``; ``is_impossible`` optional.
        place: where the row is, for errors ("row 3 of dev.csv").
        labelled: whether the row must carry its answers.
        default_id: the id of a row that has none.
    """
    question, context = row.get("question"), row.get("context")
    if not isinstance(question, str) or not question.strip():
        raise FtcliError(f"{place}: the question is {'missing' if question is None else 'empty'}")
    if not isinstance(context, str) or not context.strip():
        raise FtcliError(f"{place}: a question with no context; give the passage that holds its answer")
    texts, starts = _answers(row, place, labelled)
    for text, start in zip(texts, starts, strict=True):
        _check_answer(text, start, context, place)
    impossible = row.get("is_impossible")
    if impossible is True and texts:
        raise FtcliError(f"{place}: is_impossible is true but answers are given; empty them or set it false")
    if impossible is False and not texts and labelled:
        raise FtcliError(f"{place}: is_impossible is false but no answer is given")
    rid = row.get("id")
    return {
        "id": str(rid) if rid not in (None, "") else default_id,
        "title": str(row.get("title") or ""),
        "context": context,
        "question": question,
        "answers": {"text": texts, "answer_start": starts},
    }


def _answers(row: Mapping[str, Any], place: str, labelled: bool) -> tuple[list[str], list[int]]:
    answers = row.get("answers")
    if answers is None:
        if labelled:
            raise FtcliError(
                f'{place}: no answers; give "answers": {{"text": [...], "answer_start": [...]}} '
                "(empty lists for an unanswerable question)"
            )
        return [], []
    if isinstance(answers, list):  # SQuAD's nested layout: [{text, answer_start}, ...]
        if not all(isinstance(a, dict) for a in answers):
            raise FtcliError(f'{place}: answers must be {{"text", "answer_start"}} objects, got {answers!r:.80}')
        answers = {"text": [a.get("text") for a in answers], "answer_start": [a.get("answer_start") for a in answers]}
    if not isinstance(answers, dict) or "text" not in answers or "answer_start" not in answers:
        raise FtcliError(f'{place}: answers must be {{"text": [...], "answer_start": [...]}}, got {answers!r:.80}')
    texts, starts = answers["text"], answers["answer_start"]
    texts, starts = (texts if isinstance(texts, list) else [texts]), (starts if isinstance(starts, list) else [starts])
    if len(texts) != len(starts):
        raise FtcliError(f"{place}: {len(texts)} answer texts but {len(starts)} answer_start values")
    return [_answer_text(t, place) for t in texts], [_answer_start(s, place) for s in starts]


def _answer_text(text: Any, place: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise FtcliError(f"{place}: an empty answer text; an unanswerable question has no answers at all")
    return text


def _answer_start(start: Any, place: str) -> int:
    if isinstance(start, str) and start.strip().lstrip("-").isdigit():  # CSV cells
        start = int(start)
    if isinstance(start, float) and start.is_integer():
        start = int(start)
    if not isinstance(start, (int, np.integer)) or isinstance(start, bool):
        raise FtcliError(f"{place}: answer_start={start!r} is not a character position")
    return int(start)


def _check_answer(text: str, start: int, context: str, place: str) -> None:
    if start >= 0 and context[start : start + len(text)] == text:
        return
    found = context.find(text)
    hint = f"; it occurs at {found}" if found >= 0 else "; the context does not contain it"
    if not 0 <= start < len(context):
        raise FtcliError(f"{place}: answer_start={start} is outside the context ({len(context)} characters){hint}")
    there = context[start : start + len(text)]
    raise FtcliError(
        f"{place}: answer {text!r} is not at answer_start={start} (the context there reads {there!r}){hint}"
    )


# ---------------------------------------------------------------- windows and positions


def tokenize_windows(
    tokenizer: Any, questions: Sequence[str], contexts: Sequence[str], max_length: int, doc_stride: int
) -> dict[str, list[Any]]:
    """Question + context windows: the question first, the context cut with ``doc_stride`` tokens of overlap.

    Returns the tokenizer's ``input_ids``, ``attention_mask`` (and ``token_type_ids`` if it makes them),
    and per window ``example_index`` (its row), ``offset_mapping`` (character spans of context tokens, None
    for the question and special tokens) and ``cls_index`` (the position unanswerable windows point at).
    """
    questions = [q.lstrip() for q in questions]  # leading spaces only take room from the context
    _check_room(tokenizer, questions, max_length, doc_stride)
    enc = tokenizer(
        questions,
        list(contexts),
        truncation="only_second",
        max_length=max_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    windows = {k: list(enc[k]) for k in enc if k not in ("overflow_to_sample_mapping", "offset_mapping")}
    windows["example_index"] = list(enc["overflow_to_sample_mapping"])
    windows["offset_mapping"] = [
        [tuple(o) if s == 1 else None for o, s in zip(enc["offset_mapping"][i], enc.sequence_ids(i), strict=True)]
        for i in range(len(enc["input_ids"]))
    ]
    cls = tokenizer.cls_token_id
    windows["cls_index"] = [ids.index(cls) if cls in ids else 0 for ids in enc["input_ids"]]
    return windows


def _check_room(tokenizer: Any, questions: list[str], max_length: int, doc_stride: int) -> None:
    """Each window must fit its question and more than ``doc_stride`` context tokens (the tokenizer panics)."""
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    if doc_stride < 0:
        raise FtcliError(f"doc_stride={doc_stride}: give the number of tokens windows overlap by (0 or more)")
    for i, ids in enumerate(tokenizer(questions, add_special_tokens=False)["input_ids"]):
        room = max_length - len(ids) - specials
        if room <= doc_stride:
            raise FtcliError(
                f"question {i + 1} ({questions[i][:40]!r}…) has {len(ids)} tokens: with {specials} special tokens it "
                f"leaves {room} for the context in max_length={max_length}, which must exceed doc_stride={doc_stride}; "
                "raise max_length, lower doc_stride, or shorten the question"
            )


def answer_positions(
    windows: Mapping[str, list[Any]], rows: Sequence[Mapping[str, Any]]
) -> tuple[list[int], list[int]]:
    """Training targets per window: the first answer's first and last token, or CLS where the window does
    not hold the whole answer (or the question has none)."""
    starts, ends = [], []
    for offsets, row_index, cls in _per_window(windows):
        answers = rows[row_index]["answers"]
        if not answers["text"]:
            starts.append(cls)
            ends.append(cls)
            continue
        start_char = answers["answer_start"][0]
        span = _token_span(offsets, start_char, start_char + len(answers["text"][0]))
        starts.append(span[0] if span else cls)
        ends.append(span[1] if span else cls)
    return starts, ends


def _per_window(windows: Mapping[str, list[Any]]) -> Iterable[tuple[list[Any], int, int]]:
    """(offsets, row, CLS position) of each window."""
    return zip(windows["offset_mapping"], windows["example_index"], windows["cls_index"], strict=True)


def _token_span(offsets: Sequence[tuple[int, int] | None], start_char: int, end_char: int) -> tuple[int, int] | None:
    """The context tokens that cover [start_char, end_char), or None when the window does not hold it all."""
    context = [(t, o) for t, o in enumerate(offsets) if o is not None]
    if not context or context[0][1][0] > start_char or context[-1][1][1] < end_char:
        return None
    # run_qa's rule: the last token starting at or before the answer, the first one ending at or after it
    first = max(t for t, (a, _) in context if a <= start_char)
    last = min(t for t, (_, b) in context if b >= end_char)
    return first, last


# ---------------------------------------------------------------- decoding


def decode_answers(
    windows: Mapping[str, list[Any]],
    start_logits: Sequence[Sequence[float]] | np.ndarray,
    end_logits: Sequence[Sequence[float]] | np.ndarray,
    contexts: Sequence[str],
    n_best: int = 20,
    max_answer_length: int = 30,
    null_threshold: float | None = None,
) -> list[dict[str, Any]]:
    """Each example's best answer over its windows, as text and character span of its context.

    Args:
        windows: what ``tokenize_windows`` returned.
        start_logits: per window, the start logits (a padded 2-D array or one sequence per window).
        end_logits: per window, the end logits.
        contexts: the examples' contexts, indexed by ``windows["example_index"]``.
        n_best: how many highest start and end logits per window to pair up, and candidates to keep.
        max_answer_length: the longest span, in tokens.
        null_threshold: for unanswerable questions (v2): abstain where score_diff is above it; None: never.

    Returns:
        Per example: ``answer`` (after the threshold), ``text`` / ``start`` / ``end`` / ``score`` of the best
        span ("" / -1 / -1 / -inf if no span is allowed), ``null_score`` (lowest CLS start + end logit over
        the windows), ``score_diff`` (null_score − score, the no-answer score a threshold is tuned on) and
        ``n_best`` (the best distinct spans: text, start, end, score).
    """
    spans: list[dict[tuple[int, int], float]] = [{} for _ in contexts]
    null = [np.inf] * len(contexts)
    for w, (offsets, row, cls) in enumerate(_per_window(windows)):
        start, end = np.asarray(start_logits[w], dtype=np.float64), np.asarray(end_logits[w], dtype=np.float64)
        null[row] = min(null[row], float(start[cls] + end[cls]))
        for span, score in _window_spans(offsets, start, end, n_best, max_answer_length):
            spans[row][span] = max(score, spans[row].get(span, -np.inf))  # overlapping windows find it twice
    return [_example_answer(c, s, n, n_best, null_threshold) for c, s, n in zip(contexts, spans, null, strict=True)]


def _window_spans(
    offsets: Sequence[tuple[int, int] | None], start: np.ndarray, end: np.ndarray, n_best: int, max_answer_length: int
) -> Iterable[tuple[tuple[int, int], float]]:
    """Allowed (character span, start + end logit) pairs among a window's n_best starts and ends."""
    n = min(len(offsets), len(start), len(end))  # logits may be padded past the window
    for s in np.argsort(-start[:n], kind="stable")[:n_best]:
        for e in np.argsort(-end[:n], kind="stable")[:n_best]:
            first, last = offsets[s], offsets[e]
            if first is None or last is None or e < s or e - s + 1 > max_answer_length:
                continue
            yield (first[0], last[1]), float(start[s] + end[e])


def _example_answer(
    context: str, spans: dict[tuple[int, int], float], null: float, n_best: int, threshold: float | None
) -> dict[str, Any]:
    ranked = sorted(spans.items(), key=lambda kv: (-kv[1], kv[0]))[:n_best]
    candidates = [{"text": context[a:b], "start": a, "end": b, "score": score} for (a, b), score in ranked]
    best = candidates[0] if candidates else {"text": "", "start": -1, "end": -1, "score": -np.inf}
    diff = null - (ranked[0][1] if ranked else -np.inf)
    abstain = threshold is not None and diff > threshold
    return {
        "answer": "" if abstain else best["text"],
        **best,
        "null_score": null,
        "score_diff": float(diff),
        "n_best": candidates,
    }


# ---------------------------------------------------------------- splits, stored windows, batches


def load_qa(cfg: DatasetConfig) -> Raw:
    """Every configured split as checked SQuAD rows (files: :func:`read_qa_file`; hub datasets: their rows)."""
    if cfg.source != "files":
        raw = load_raw(cfg)
        rows = {s: check_qa_rows(ds, raw.where[s]) for s, ds in raw.splits.items()}
        return Raw({s: datasets.Dataset.from_list(r, features=ROW) for s, r in rows.items()}, raw.where)
    if not cfg.train_file:
        raise FtcliError("dataset.train_file is required for dataset=files")
    splits, where = {}, {}
    for split in SPLITS:
        path = getattr(cfg, f"{split}_file")
        if path:
            splits[split] = datasets.Dataset.from_list(read_qa_file(Path(path).expanduser()), features=ROW)
            where[split] = Path(path).name
    return Raw(splits, where)


def encode_windows(ds: Any, tokenizer: Any, max_length: int, doc_stride: int, answers: str = "answers") -> Any:
    """A split of rows → one row per window: model inputs, ``labels`` [start, end] (CLS where the window lacks the
    answer), and what decoding needs: ``example`` (the row), ``offsets``, ``cls_index``, ``context``, ``golds``."""
    key = f"{ds._fingerprint}-{tokenizer_fingerprint(tokenizer)}-{max_length}-{doc_stride}-qa"

    def encode(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        rows = [{"answers": a} for a in batch[answers]]
        windows = tokenize_windows(tokenizer, batch["question"], batch["context"], max_length, doc_stride)
        starts, ends = answer_positions(windows, rows)
        out = {k: windows[k] for k in MODEL_INPUTS if k in windows}
        out["labels"] = [[s, e] for s, e in zip(starts, ends, strict=True)]
        out["example"] = [indices[i] for i in windows["example_index"]]
        out["offsets"] = [[list(o) if o else list(NO_OFFSET) for o in w] for w in windows["offset_mapping"]]
        out["cls_index"] = windows["cls_index"]
        out["context"] = [batch["context"][i] for i in windows["example_index"]]
        out["golds"] = [batch[answers][i]["text"] for i in windows["example_index"]]
        return out

    return ds.map(
        encode,
        batched=True,
        with_indices=True,
        batch_size=1000,
        remove_columns=ds.column_names,
        new_fingerprint=hashlib.sha256(key.encode()).hexdigest()[:16],
        desc="question windows",
    )


def stored_windows(ds: Any) -> tuple[dict[str, list[Any]], list[str], list[list[str]]]:
    """What :func:`decode_answers` reads, from a split of stored windows: (windows with examples renumbered from 0,
    each example's context, each example's gold answers)."""
    examples = list(ds["example"])
    order = {e: i for i, e in enumerate(dict.fromkeys(examples))}
    contexts: list[str] = [""] * len(order)
    golds: list[list[str]] = [[] for _ in order]
    for e, context, gold in zip(examples, ds["context"], ds["golds"], strict=True):
        contexts[order[e]], golds[order[e]] = context, list(gold)
    windows: dict[str, list[Any]] = {
        "offset_mapping": [[tuple(o) if o[0] >= 0 else None for o in w] for w in ds["offsets"]],
        "example_index": [order[e] for e in examples],
        "cls_index": list(ds["cls_index"]),
    }
    return windows, contexts, golds


def collate_windows(tokenizer: Any, keep: tuple[str, ...] = ()) -> Any:
    """Pad windows to the longest (right); ``labels`` [start, end] stacked; ``keep``: more integer columns."""
    return collate(tokenizer, keep, tag_labels=False)


def window_batches(tokenizer: Any, windows: Mapping[str, list[Any]], batch_size: int) -> Iterable[dict[str, Any]]:
    """Padded batches of windows made on the fly (``ftcli predict``), each with ``idx``, in window order."""
    collate = collate_windows(tokenizer)
    n = len(windows["input_ids"])
    for first in range(0, n, batch_size):
        idx = list(range(first, min(first + batch_size, n)))
        rows = [{k: windows[k][i] for k in MODEL_INPUTS if k in windows} for i in idx]
        yield {**collate(rows), "idx": torch.tensor(idx)}
