"""The transcription objective: a transcript per clip, spelled in characters; CTC loss with transformers' conventions
(blank = pad = id 0, ``|`` between words, labels padded with -100), greedy decoding, corpus-level CER and WER.

The label names are the character vocabulary (``<pad>``, ``<unk>``, ``|``, then every character the training
transcripts use, sorted): the model's outputs in order, saved in its config and its tokenizer's vocab.json. A
character outside it (in validation, in ``ftcli predict``'s transcripts) becomes ``<unk>``, said once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import DatasetConfig
from ftcli.data.tables import Raw, require_columns
from ftcli.metrics.asr import cer as corpus_cer
from ftcli.metrics.asr import chars, edit_distance, words
from ftcli.metrics.asr import wer as corpus_wer
from ftcli.metrics.calibration import bootstrap_ci
from ftcli.models.audio import PAD, UNK, WORD
from ftcli.reporting.progress import console
from ftcli.runtime.inference import RAGGED_PAD, model_inputs
from ftcli.tasks.task import Evaluation, Labelled

_SPACES = re.compile(r"\s+")
BLANK = 0  # the pad token's id: CTC's blank


class Transcription:
    """A transcript per clip; a CTC head with one output per vocabulary character."""

    problem_type = ""  # transformers names none for CTC

    def __init__(self, cfg: Any) -> None:
        self.lowercase = bool(cfg.lowercase)  # transcripts and vocabulary in lower case

    def normal(self, text: str) -> str:
        """A transcript as the model learns it: whitespace runs as one space, trimmed (lower case unless off)."""
        text = _SPACES.sub(" ", text).strip()
        return text.lower() if self.lowercase else text

    def labels(self, raw: Raw, dataset: DatasetConfig, inputs: list[tuple[str, str | None]]) -> Labelled:
        """Every split with ``labels``: each transcript's character ids; the vocabulary from the training
        transcripts (or ``dataset.label_names``: a checkpoint's, under ``ftcli eval``)."""
        column = dataset.label_column
        require_columns(raw, [*inputs, ("dataset.label_column", column)])
        texts = {s: self._texts(ds[column], raw.where[s], column) for s, ds in raw.splits.items()}
        names = list(dataset.label_names or vocabulary(texts["train"]))
        splits = {}
        for split, ds in raw.splits.items():
            ids, unknown = encode(texts[split], names)
            if unknown:
                say_unknown(unknown, raw.where[split])
            keep = ds.remove_columns([c for c in ("labels",) if c in ds.column_names])
            splits[split] = keep.add_column("labels", ids)
        return Labelled(splits, names)

    def _texts(self, values: list[Any], where: str, column: str) -> list[str]:
        for i, v in enumerate(values):
            if not isinstance(v, str):
                raise FtcliError(f"row {i + 1} of {where}: {column} is {v!r}, not a transcript (text)")
        return [self.normal(v) for v in values]

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        """transformers' own CTC loss (log-softmax in fp32, blank = pad, -100 positions ignored, mean over clips
        of each clip's loss over its transcript's length)."""
        return model(**model_inputs(batch), labels=batch["labels"]).loss

    def metric_error(self, metric: str, names: list[str]) -> str | None:
        return None

    def metrics(self, outputs: np.ndarray, labels: np.ndarray, names: list[str]) -> dict[str, Any]:
        """CER and WER over the corpus (jiwer's), and the CTC loss: ``outputs`` [clips, frames, vocab] logits with
        -100 past each clip's frames, ``labels`` character ids (-100 padding)."""
        refs = [text_of(ids, names) for ids in rows_of(labels)]
        hyps = transcripts(outputs, names)
        return {
            "cer": corpus_cer(refs, hyps),
            "wer": corpus_wer(refs, hyps),
            "loss": ctc_loss(outputs, labels),
            "examples": len(refs),
        }

    def extras(self, outputs: np.ndarray, labels: np.ndarray, names: list[str], how: Evaluation) -> dict[str, Any]:
        """95% bootstrap intervals of CER and WER, resampling clips (their edits over their reference lengths)."""
        if how.options.bootstrap <= 0 or not len(labels):
            return {}
        refs = [text_of(ids, names) for ids in rows_of(labels)]
        hyps = transcripts(outputs, names)
        per_clip = np.array(
            [
                [edit_distance(chars(r), chars(h)), len(chars(r)), edit_distance(words(r), words(h)), len(words(r))]
                for r, h in zip(refs, hyps, strict=True)
            ],
            dtype=np.float64,
        )

        def rate(a: int, b: int) -> Any:
            return lambda c, _: float(c[:, a].sum() / max(c[:, b].sum(), 1.0))

        ci = bootstrap_ci(
            per_clip, per_clip, {"cer": rate(0, 1), "wer": rate(2, 3)}, how.options.bootstrap, 0.95, how.seed
        )
        return {"ci95": {k: list(v) for k, v in ci.items()}}

    def predictions(self, outputs: np.ndarray, names: list[str]) -> list[dict[str, Any]]:
        return [{"transcript": t} for t in transcripts(outputs, names)]

    def gold(self, values: list[Any], names: list[str]) -> np.ndarray | None:
        """Reference transcripts (``ftcli predict`` on a table that has them) as character ids; characters outside
        the vocabulary count as ``<unk>``, said once. None when a value is not text."""
        if not all(isinstance(v, str) for v in values):
            return None
        ids, unknown = encode([self.normal(v) for v in values], names)
        if unknown:
            say_unknown(unknown, "the input's transcripts")
        out = np.empty(len(ids), dtype=object)
        out[:] = ids
        return out

    def describe(self, kind: str, labels: list[str] | None) -> str:
        size = f" over {len(labels)} symbols" if labels else ""
        return f"speech recognition (character CTC{size}, greedy decoding)"


def vocabulary(texts: Sequence[str]) -> list[str]:
    """``<pad>`` (the blank), ``<unk>``, ``|`` (between words), then every other character of ``texts``, sorted."""
    found = sorted({c for t in texts for c in t} - {" "})
    if not found:
        raise FtcliError("the training transcripts are all empty: there is nothing to learn to spell")
    return [PAD, UNK, WORD, *found]


def encode(texts: Sequence[str], names: list[str]) -> tuple[list[list[int]], dict[str, int]]:
    """Each text's character ids (a space → ``|``), and the characters outside ``names`` with their counts."""
    index = {c: i for i, c in enumerate(names)}
    unk, word = index.get(UNK, 1), index.get(WORD, 2)
    unknown: dict[str, int] = {}
    out = []
    for text in texts:
        ids = []
        for c in text:
            if c == " ":
                ids.append(word)
            elif c in index:
                ids.append(index[c])
            else:
                unknown[c] = unknown.get(c, 0) + 1
                ids.append(unk)
        out.append(ids)
    return out, unknown


def say_unknown(unknown: dict[str, int], where: str) -> None:
    shown = ", ".join(f"{c!r} ×{n}" for c, n in sorted(unknown.items(), key=lambda kv: -kv[1])[:8])
    console.print(f"[yellow]{where}: characters outside the vocabulary read as {UNK}[/]: {shown}", highlight=False)


def rows_of(labels: Any) -> list[list[int]]:
    """Label rows as id lists: -100 padding (or an object array of lists) read back."""
    return [[int(i) for i in row if int(i) >= 0] for row in labels]


def text_of(ids: Sequence[int], names: list[str]) -> str:
    """Ids spelled out: ``|`` as a space, whitespace runs as one."""
    return _SPACES.sub(" ", "".join(" " if names[i] == WORD else names[i] for i in ids)).strip()


def greedy(frames: np.ndarray) -> list[int]:
    """Best path: each frame's most likely symbol, repeats merged, blanks dropped (frames of -100 are padding)."""
    real = frames[~(frames == RAGGED_PAD).all(-1)]
    best = real.argmax(-1)
    merged = best[np.r_[True, best[1:] != best[:-1]]] if len(best) else best
    return [int(i) for i in merged if i != BLANK]


def transcripts(outputs: np.ndarray, names: list[str]) -> list[str]:
    """Each clip's greedy transcript (what transformers' ASR pipeline gives, whitespace runs as one)."""
    return [text_of(greedy(frames), names) for frames in outputs]


def ctc_loss(outputs: np.ndarray, labels: Any) -> float:
    """Mean over clips of each clip's CTC loss over its transcript's length (transformers' ``mean``); a clip too
    short for its transcript counts 0, as training's ``ctc_zero_infinity``."""
    if not len(outputs):
        return float("nan")
    logits = torch.from_numpy(np.asarray(outputs, dtype=np.float32))
    frames = (~(logits == RAGGED_PAD).all(-1)).sum(1)
    targets = rows_of(labels)
    flat = torch.tensor([i for t in targets for i in t], dtype=torch.long)
    lengths = torch.tensor([len(t) for t in targets], dtype=torch.long)
    log_probs = torch.log_softmax(logits, -1).transpose(0, 1)
    loss = torch.nn.functional.ctc_loss(
        log_probs, flat, frames, lengths, blank=BLANK, reduction="mean", zero_infinity=True
    )
    return float(loss)
