"""Tagged sentences from files: CoNLL-style text (one token per line, its tag last, a blank line between
sentences) or anything :func:`ftcli.data.tables.load_raw` reads (JSON(L)/Parquet/hub rows with a list of tokens
and a list of tags). Errors name the file and the line or row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import DatasetConfig
from ftcli.data.tables import SPLITS, Raw, _load_file, load_raw

CONLL_SUFFIXES = (".conll", ".conll03", ".conllu", ".iob", ".iob1", ".iob2", ".bio", ".bioes", ".txt")
LINE = "line"  # CoNLL sentences remember the line they start on, for messages


def parse_conll(text: str, name: str) -> tuple[list[list[str]], list[list[str]], list[int]]:
    """(tokens, tags, first line) of every sentence; the token is the first column, the tag the last.
    ``-DOCSTART-`` lines separate documents and are skipped."""
    sentences: list[tuple[list[str], list[str], int]] = []
    width: int | None = None
    for n, raw in enumerate(text.splitlines(), 1):
        parts = raw.split()
        if not parts or parts[0] == "-DOCSTART-":  # a sentence ends (blank lines may repeat)
            if sentences and sentences[-1][0]:
                sentences.append(([], [], 0))
            continue
        width = width or len(parts)
        if len(parts) < 2 or len(parts) != width:
            before = f"where the lines before have {width}" if len(parts) != width else "(a token, then its tag)"
            raise FtcliError(
                f"line {n} of {name} has {len(parts)} column(s) {before}: a CoNLL file holds one token per line with "
                "its tag in the last column (whitespace-separated) and a blank line between sentences"
            )
        if not sentences or not sentences[-1][0]:
            sentences[-1:] = [([], [], n)]
        sentences[-1][0].append(parts[0])
        sentences[-1][1].append(parts[-1])
    kept = [s for s in sentences if s[0]]
    return [s[0] for s in kept], [s[1] for s in kept], [s[2] for s in kept]


def read_conll(path: str, split: str, text_column: str, label_column: str) -> Any:
    """A CoNLL file as a dataset of sentences: ``text_column`` (tokens), ``label_column`` (tags), ``line``."""

    file = Path(path).expanduser()
    if not file.is_file():
        raise FtcliError(f"dataset.{split}_file={path}: no such file")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise FtcliError(f"dataset.{split}_file={path}: cannot read ({e})") from e
    tokens, tags, starts = parse_conll(text, file.name)
    if not tokens:
        raise FtcliError(f"dataset.{split}_file={path}: has no sentences (a token and its tag per line)")
    return datasets.Dataset.from_dict({text_column: tokens, label_column: tags, LINE: starts})


def load_tagged(cfg: DatasetConfig) -> Raw:
    """Every configured split: CoNLL files by their suffix, other files and hub datasets as load_raw reads them."""

    if cfg.source != "files" or not any(_is_conll(getattr(cfg, f"{s}_file")) for s in SPLITS):
        return load_raw(cfg)
    if not cfg.train_file:
        raise FtcliError("dataset.train_file is required for dataset=files")
    splits: dict[str, Any] = {}
    where: dict[str, str] = {}
    for split in SPLITS:
        path = getattr(cfg, f"{split}_file")
        if not path:
            continue
        if _is_conll(path):
            splits[split] = read_conll(path, split, cfg.text_column, cfg.label_column)
        else:
            splits[split] = _load_file(path, split, cfg.quoting)
        where[split] = Path(path).name
    return Raw(splits, where)


def _is_conll(path: str | None) -> bool:
    return bool(path) and Path(str(path)).suffix.lower() in CONLL_SUFFIXES
