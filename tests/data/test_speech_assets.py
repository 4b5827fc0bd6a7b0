"""The shipped synthetic speech (scripts/make_speech.py): layout, held-out voices, transcripts, and clips that
decode to 16 kHz mono speech."""

from __future__ import annotations

import csv
import string
from pathlib import Path

import numpy as np
import pytest

from ftcli.data.audio.decode import decode

SPEECH = Path(__file__).resolve().parents[2] / "ftcli" / "assets" / "speech"
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
WORDS = [*DIGITS, "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]


def _table(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_keywords_are_an_audio_folder_with_held_out_voices() -> None:
    meta = _table(SPEECH / "keywords" / "metadata.csv")
    for split, per_word in (("train", 250), ("validation", 30)):
        folders = sorted(p.name for p in (SPEECH / "keywords" / split).iterdir())
        assert folders == sorted(WORDS)
        assert {len(list((SPEECH / "keywords" / split / w).glob("*.ogg"))) for w in WORDS} == {per_word}
    assert sorted(r["path"] for r in meta) == sorted(
        p.relative_to(SPEECH / "keywords").as_posix() for p in (SPEECH / "keywords").rglob("*.ogg")
    )
    assert all(r["path"].split("/")[1] == r["label"] for r in meta)
    variants = {s: {r["variant"] for r in meta if r["split"] == s} for s in ("train", "validation")}
    assert variants["train"].isdisjoint(variants["validation"]) and len(variants["validation"]) >= 15
    accents = {s: {r["accent"] for r in meta if r["split"] == s} for s in ("train", "validation")}
    assert accents["train"] == accents["validation"]  # held-out speakers, not held-out accents


def test_phrases_have_transcripts_spelling_every_letter() -> None:
    tables = {s: _table(SPEECH / "phrases" / f"{s}.csv") for s in ("train", "validation")}
    assert (len(tables["train"]), len(tables["validation"])) == (1200, 300)
    for rows in tables.values():
        assert all((SPEECH / "phrases" / r["path"]).is_file() for r in rows)
        assert all(set(r["transcript"]) <= set(string.ascii_lowercase + " ") for r in rows)
        assert all(2 <= len(r["transcript"].split()) <= 4 for r in rows)
    assert set("".join(r["transcript"] for r in tables["train"])) == set(string.ascii_lowercase + " ")
    train_voices = {r["variant"] for r in tables["train"]}
    assert train_voices.isdisjoint({r["variant"] for r in tables["validation"]})


def test_the_large_phrase_table_adds_training_phrases_in_training_voices_only() -> None:
    large = _table(SPEECH / "phrases" / "train_large.csv")
    train, validation = (_table(SPEECH / "phrases" / f"{s}.csv") for s in ("train", "validation"))
    assert len(large) == 6000 and large[: len(train)] == train  # the 1,200, then 4,800 more
    assert all((SPEECH / "phrases" / r["path"]).is_file() for r in large)
    assert len({r["path"] for r in large}) == 6000
    assert {r["variant"] for r in large}.isdisjoint({r["variant"] for r in validation})


def test_the_set_stays_small() -> None:
    """Keywords 5.7 MB, phrases 3.1 MB, the 4,800 extra training phrases 10 MB: a package people can install."""
    size = sum(p.stat().st_size for p in SPEECH.rglob("*") if p.is_file())
    assert size < 25_000_000


@pytest.mark.parametrize("sub", ["keywords", "phrases"])
def test_clips_decode_to_16_khz_mono_speech(sub: str) -> None:
    import soundfile as sf

    clips = sorted((SPEECH / sub).rglob("*.ogg"))[::97]  # a spread sample: decoding all takes a while
    for path in clips:
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.format, info.subtype) == (16000, 1, "OGG", "OPUS")
        audio = decode(str(path), 16000)
        assert 0.25 < len(audio) / 16000 < 4.0
        assert 0.05 < np.abs(audio).max() <= 1.0
        frames = audio[: len(audio) // 160 * 160].reshape(-1, 160)
        energy = 10 * np.log10((frames**2).mean(1) + 1e-12)
        assert energy.max() - np.median(energy[:3]) > 3  # the speech stands above the noise of the lead-in
