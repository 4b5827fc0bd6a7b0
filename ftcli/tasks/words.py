"""Word inputs for token classification: a sentence given as words, tokenised into sub-words, read by the
architecture's own token-classification head (``AutoModelForTokenClassification``).

Labels sit on each word's *first* sub-word; its other sub-words (and special tokens) get -100 and are
ignored by the loss and the metrics. A sentence longer than ``model.max_length`` is not cut: it is read in
windows of ``model.max_length`` tokens that overlap by ``task.stride`` tokens, and each word is labelled (and
scored) in the one window where it has the most context on both sides. Predictions on raw text group
sub-words into entities as transformers' ``pipeline("token-classification", aggregation_strategy="simple")``
does, with character offsets into the text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import ModelConfig, TokenClassificationConfig
from ftcli.tasks.base import Loaded, TaskData
from ftcli.tasks.text import TextTask

IGNORE = -100
SENTENCE = "sentence"  # each window's sentence (its row in the split), to put sentences together again


@dataclass
class Windows:
    """How a sentence's sub-words become model inputs: the special tokens around each window, how many
    sub-words a window holds, and how far the next one starts."""

    prefix: list[int]
    suffix: list[int]
    budget: int
    step: int
    types: bool  # the tokenizer gives token_type_ids

    def spans(self, n: int) -> list[tuple[int, int]]:
        """[start, end) of each window over ``n`` sub-words."""
        if n <= self.budget:
            return [(0, n)]
        out, start = [], 0
        while True:
            end = min(start + self.budget, n)
            out.append((start, end))
            if end == n:
                return out
            start += self.step

    def wrap(self, ids: list[int]) -> dict[str, list[int]]:
        """One window's sub-words with the special tokens around them."""
        full = [*self.prefix, *ids, *self.suffix]
        row = {"input_ids": full, "attention_mask": [1] * len(full)}
        if self.types:
            row["token_type_ids"] = [0] * len(full)
        return row


def windows_of(tokenizer: Any, max_length: int, stride: int) -> Windows:
    """The tokenizer's special tokens for one sequence (read off an encoded word) and the window sizes."""
    enc = tokenizer("a", return_special_tokens_mask=True)
    ids, special = enc["input_ids"], enc["special_tokens_mask"]
    first = special.index(0)
    last = len(special) - 1 - special[::-1].index(0)
    prefix, suffix = list(ids[:first]), list(ids[last + 1 :])
    budget = max_length - len(prefix) - len(suffix)
    if stride >= budget:
        raise FtcliError(
            f"task.stride={stride}: must be below the {budget} sub-words a window holds "
            f"(model.max_length={max_length} minus special tokens)"
        )
    return Windows(prefix, suffix, budget, budget - stride, "token_type_ids" in enc)


def owner(position: int, spans: list[tuple[int, int]]) -> int:
    """The window in which ``position`` has the most context on both sides (the first of equals)."""
    best, context = 0, -1
    for k, (start, end) in enumerate(spans):
        if start <= position < end and min(position - start, end - 1 - position) > context:
            best, context = k, min(position - start, end - 1 - position)
    return best


def _subwords(tokenizer: Any, sentences: list[list[str]]) -> list[tuple[list[int], list[int]]]:
    """(sub-word ids, word of each) per sentence; a word the tokenizer turns into nothing (a control
    character, an empty token) is read as the unknown token, so every word keeps a first sub-word."""
    enc = tokenizer(sentences, is_split_into_words=True, add_special_tokens=False)
    out = []
    for b, words in enumerate(sentences):
        ids, wids = list(enc["input_ids"][b]), list(enc.word_ids(b))
        if len(set(wids)) < len(words):
            present = set(wids)
            unk = tokenizer.unk_token or "?"
            fixed = [w if i in present else unk for i, w in enumerate(words)]
            again = tokenizer([fixed], is_split_into_words=True, add_special_tokens=False)
            ids, wids = list(again["input_ids"][0]), list(again.word_ids(0))
        out.append((ids, wids))
    return out


def encode_words(ds: Any, column: str, tokenizer: Any, max_length: int, stride: int) -> Any:
    """A split's sentences as windows of sub-words with ``labels`` on owned first sub-words and ``sentence``."""
    from ftcli.data.text import tokenizer_fingerprint

    layout = windows_of(tokenizer, max_length, stride)

    def encode(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        sentences = [[str(w) for w in words] for words in batch[column]]
        out: dict[str, list] = {}
        for (ids, wids), tags, sentence in zip(_subwords(tokenizer, sentences), batch["labels"], indices, strict=True):
            firsts = {w: p for p, w in reversed(list(enumerate(wids)))}  # word → its first sub-word
            spans = layout.spans(len(ids))
            for k, (start, end) in enumerate(spans):
                labels = [IGNORE] * (end - start)
                for w, p in firsts.items():
                    if start <= p < end and owner(p, spans) == k:
                        labels[p - start] = tags[w]
                row: dict[str, Any] = dict(layout.wrap(ids[start:end]))
                row["labels"] = [IGNORE] * len(layout.prefix) + labels + [IGNORE] * len(layout.suffix)
                row[SENTENCE] = sentence
                for key, value in row.items():
                    out.setdefault(key, []).append(value)
        return out

    key = f"{ds._fingerprint}-{tokenizer_fingerprint(tokenizer)}-{max_length}-{stride}-{column}-words1"
    return ds.map(
        encode,
        batched=True,
        with_indices=True,
        remove_columns=ds.column_names,
        new_fingerprint=hashlib.sha256(key.encode()).hexdigest()[:16],
        desc="tokenise words",
    )


def collate(tokenizer: Any, keep: tuple[str, ...] = ()) -> Any:
    """Pad a list of windows to the longest (right): pad ids, mask 0, labels -100; ``keep``: extra columns."""
    import torch

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    pads = {"input_ids": pad_id, "attention_mask": 0, "token_type_ids": 0, "labels": IGNORE}

    def fn(rows: list[dict[str, Any]]) -> dict[str, Any]:
        width = max(len(r["input_ids"]) for r in rows)
        batch = {
            k: torch.tensor([list(r[k]) + [pad] * (width - len(r[k])) for r in rows], dtype=torch.long)
            for k, pad in pads.items()
            if k in rows[0]
        }
        for k in keep:
            if k in rows[0]:
                batch[k] = torch.tensor([r[k] for r in rows], dtype=torch.long)
        return batch

    return fn


def sentences_of(logits: np.ndarray, labels: np.ndarray, sentence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Windows (in dataset order) → sentences: each sentence's [words, tags] logits and its tag ids, read at
    the positions that carry a label (each word's first sub-word, in the window that owns it)."""
    outs: dict[int, list[np.ndarray]] = {}
    golds: dict[int, list[np.ndarray]] = {}
    for row in range(len(sentence)):
        at = labels[row] != IGNORE
        outs.setdefault(int(sentence[row]), []).append(logits[row][at])
        golds.setdefault(int(sentence[row]), []).append(labels[row][at].astype(np.int64))
    order = sorted(outs)
    out, gold = np.empty(len(order), dtype=object), np.empty(len(order), dtype=object)
    for i, s in enumerate(order):
        out[i], gold[i] = np.concatenate(outs[s]), np.concatenate(golds[s])
    return out, gold


def _bi(label: str) -> tuple[str, str]:
    """transformers' TokenClassificationPipeline.get_tag: (B or I, entity type); other labels continue (I)."""
    if label.startswith(("B-", "I-")):
        return label[0], label[2:]
    return "I", label


def group_simple(labels: list[str], scores: list[float], offsets: list[tuple[int, int]], text: str) -> list[dict]:
    """Adjacent sub-words with the same type and no B- between them form an entity (the pipeline's "simple"
    aggregation); its type is its first label's, its score the mean; groups of O are dropped."""
    groups: list[list[int]] = []
    for i, label in enumerate(labels):
        bi, kind = _bi(label)
        if groups and kind == _bi(labels[groups[-1][-1]])[1] and bi != "B":
            groups[-1].append(i)
        else:
            groups.append([i])
    found = []
    for g in groups:
        kind = labels[g[0]].split("-", 1)[-1]
        if kind == "O":
            continue
        start, end = int(offsets[g[0]][0]), int(offsets[g[-1]][1])
        found.append(
            {
                "entity_group": kind,
                "score": float(np.mean([scores[i] for i in g])),
                "word": text[start:end],
                "start": start,
                "end": end,
            }
        )
    return found


class WordsTask(TextTask):
    """Inputs: the dataset's ``text_column`` as a list of words (CoNLL tokens); tags per word."""

    pipeline_tag = "token-classification"
    example_call = 'run("Maria Lopez joined Helix Biotech in Paris.")'
    auto_model = "AutoModelForTokenClassification"
    inputs = "token"
    cfg: TokenClassificationConfig

    def input_columns(self, dataset: Any) -> list[tuple[str, str | None]]:
        return [("text_column", dataset.text_column)]

    def load_processor(self, model: ModelConfig, cache_dir: Path, data: TaskData) -> Any:
        from ftcli.models.text import load_tokenizer

        words = data.splits["train"][data.columns[0]]
        tokenizer = load_tokenizer(model, cache_dir, (" ".join(map(str, w)) for w in words))
        if not getattr(tokenizer, "is_fast", False):
            raise FtcliError(
                f"model.name_or_path={model.name_or_path}: token classification needs a fast tokenizer "
                "(tokenizer.json: it maps sub-words to words and to characters)"
            )
        return tokenizer

    def encode(self, ds: Any, columns: list[str], processor: Any, model: ModelConfig) -> Any:
        return encode_words(ds, columns[0], processor, model.max_length, self.cfg.stride)

    def loader(self, ds: Any, batch_sampler: Any, processor: Any) -> Any:
        from torch.utils.data import DataLoader

        from ftcli.data.batching import seed_source

        return DataLoader(ds, batch_sampler=batch_sampler, collate_fn=collate(processor), generator=seed_source())

    def eval_loader(self, ds: Any, processor: Any, batch_size: int) -> Any:
        from torch.utils.data import DataLoader

        from ftcli.data.batching import sorted_batches
        from ftcli.data.text import lengths_of

        lengths = lengths_of(ds)
        ds = ds.add_column("idx", list(range(len(ds))))
        keep = collate(processor, keep=("idx", SENTENCE))
        return DataLoader(ds, batch_sampler=sorted_batches(lengths, batch_size), collate_fn=keep)

    def pooling(self, requested: str) -> tuple[str, str | None]:
        """Every token gets a tag from the architecture's token-classification head: no pooling applies."""
        note = (
            f"pooling={requested} is for sequence heads; token classification tags every token with the "
            "architecture's own head (AutoModelForTokenClassification)"
        )
        return "native", None if requested == "native" else note

    def build_model(self, model: ModelConfig, pooling: str, data: TaskData, processor: Any, seed: int) -> Any:
        from ftcli.models.text import build_model

        return build_model(model, "native", data.label_names, processor, seed, self.problem_type, self.auto_model)

    def outputs(self, model: Any, batches: Any, accelerator: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """(each sentence's [words, tags] logits, its tag ids), sentences in dataset order."""
        from ftcli.runtime.inference import infer, model_inputs

        def forward(batch: dict[str, Any]) -> dict[str, Any]:
            inputs = {k: v for k, v in model_inputs(batch).items() if k != SENTENCE}
            return {"logits": model(**inputs).logits.float(), SENTENCE: batch[SENTENCE]}

        model.eval()
        out = infer(forward, batches, accelerator)
        if not out:
            return np.empty(0, dtype=object), np.empty(0, dtype=object)
        return sentences_of(out["logits"], out["labels"], out[SENTENCE])

    # ---- predict: entities in raw text -----------------------------------------------------------------
    def single_input(self, cfg: Any) -> tuple[dict[str, Any], list[str]]:
        if cfg.text_pair is not None:
            raise FtcliError("text_pair: token classification tags one text; leave text_pair out")
        if not str(cfg.text).strip():
            raise FtcliError("text is empty: there is nothing to tag")
        return {"text": cfg.text}, ["text"]

    def input_columns_of(self, cfg: Any, dataset: Any, rows: list[dict[str, Any]], where: str) -> list[str]:
        """``text_column=``, else the training data's tokens column (its words are joined by spaces), else text."""
        wanted = [cfg.text_column] if cfg.text_column else [dataset.text_column if dataset else None, "text"]
        for column in wanted:
            if column and column in rows[0]:
                return [column]
        raise FtcliError(f"text_column={wanted[0] or 'text'}: no such column in {where}; it has {', '.join(rows[0])}")

    def predict_outputs(self, loaded: Loaded, rows: list[dict[str, Any]], columns: list[str], batch_size: int) -> Any:
        """Each row's entities (type, score, text, character offsets), as the pipeline's simple aggregation."""
        from ftcli.runtime.inference import infer, model_inputs

        model, processor, accelerator = loaded.model, loaded.processor, loaded.accelerator
        texts = [_text(r.get(columns[0])) for r in rows]
        enc = processor(texts, add_special_tokens=False, return_offsets_mapping=True)
        layout = windows_of(processor, loaded.model_cfg.max_length, self.cfg.stride)
        spans = [layout.spans(len(ids)) for ids in enc["input_ids"]]
        device = accelerator.device
        model.eval()

        def forward(batch: dict[str, Any]) -> dict[str, Any]:
            with accelerator.autocast():
                return {"logits": model(**{k: v.to(device) for k, v in model_inputs(batch).items()}).logits.float()}

        batches = _window_batches(processor, layout, enc["input_ids"], spans, batch_size)
        logits = infer(forward, batches).get("logits", np.zeros((0, 0, 0)))
        names = [model.config.id2label[i] for i in range(model.config.num_labels)]
        found, window = np.empty(len(rows), dtype=object), 0
        for r, text in enumerate(texts):
            n = len(enc["input_ids"][r])
            token_logits = _token_logits(logits, window, spans[r], n, len(layout.prefix))
            window += len(spans[r]) if n else 0  # an empty text has no window
            found[r] = _entities(token_logits, names, enc["offset_mapping"][r], text)
        return found


def _token_logits(logits: np.ndarray, first: int, spans: list[tuple[int, int]], n: int, shift: int) -> np.ndarray:
    """A text's [sub-words, tags] logits, each sub-word read in the window that owns it (windows ``first``…)."""
    rows = []
    for p in range(n):
        k = owner(p, spans)
        rows.append(logits[first + k][shift + p - spans[k][0]])
    return np.stack(rows) if rows else np.zeros((0, 0))


def _text(value: Any) -> str:
    if isinstance(value, list):  # a row of the training data: its tokens
        return " ".join(map(str, value))
    return "" if value is None else str(value)


def _entities(logits: np.ndarray, names: list[str], offsets: list[tuple[int, int]], text: str) -> list[dict]:
    if not len(logits):
        return []
    z = logits.astype(np.float32)  # the pipeline's softmax, in its precision
    scores = np.exp(z - z.max(-1, keepdims=True))
    scores /= scores.sum(-1, keepdims=True)
    best = scores.argmax(-1)
    labels = [names[int(i)] for i in best]
    return group_simple(labels, [float(scores[i, b]) for i, b in enumerate(best)], offsets, text)


def _window_batches(
    tokenizer: Any, layout: Windows, ids: list[list[int]], spans: list[list[tuple[int, int]]], batch_size: int
) -> Iterator[dict[str, Any]]:
    """Every text's windows (an empty text has none), longest first, each batch with ``idx``."""
    from ftcli.data.batching import sorted_batches

    windows = [layout.wrap(row[s:e]) for row, own in zip(ids, spans, strict=True) if row for s, e in own]
    if not windows:
        return
    lengths = np.fromiter((len(w["input_ids"]) for w in windows), dtype=np.int64, count=len(windows))
    pad = collate(tokenizer)
    for idx in sorted_batches(lengths, batch_size):
        yield {**pad([windows[i] for i in idx]), "idx": idx}
