"""One clip: a path, bytes or decoded array → float32 mono at the model's sample rate, within a maximum length.

soundfile (libsndfile) decodes WAV, FLAC, Ogg Vorbis/Opus, MP3, AIFF and the rest of libsndfile's formats, with
no FFmpeg; soxr resamples (any ratio, HQ: ~73 dB against an analytic signal where scipy's ``resample_poly``
reaches 48 dB, and faster). Every failure is one line naming the file.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from ftcli.config.errors import FtcliError, first_line

# The suffixes soundfile reads (libsndfile 1.1+), for finding clips in a folder.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".caf", ".w64")
# Rates ftcli resamples from: below 1 kHz there is no speech to keep; above 768 kHz is no audio format's.
MIN_RATE, MAX_RATE = 1_000, 768_000
RESAMPLER = "soxr-HQ"  # part of the cache key: another resampler gives other samples


def describe(source: Any) -> str:
    """A source as a person finds it: its path, or the path its bytes came from."""
    if isinstance(source, dict):
        return str(source.get("path") or "embedded audio")
    return str(source) if isinstance(source, (str, Path)) else "embedded audio"


def read(source: Any, where: str) -> tuple[np.ndarray, int]:
    """The samples as float32 [frames, channels] and their rate, from a path, bytes, or a datasets Audio value
    (``{"bytes", "path"}``, or ``{"array", "sampling_rate"}`` already decoded).

    Raises:
        FtcliError: the file is missing or soundfile cannot decode it.
    """
    import soundfile as sf

    if isinstance(source, dict) and source.get("array") is not None:
        return _as_frames(np.asarray(source["array"], dtype=np.float32)), int(source["sampling_rate"])
    if isinstance(source, dict):
        data = source.get("bytes")
        source = io.BytesIO(data) if data is not None else source.get("path")
    elif isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    if isinstance(source, (str, Path)) and not Path(source).is_file():
        raise FtcliError(f"{where}: no such audio file")
    try:
        audio, rate = sf.read(source, dtype="float32", always_2d=True)
    except Exception as e:  # soundfile's LibsndfileError, RuntimeError or TypeError for what it cannot parse
        raise FtcliError(
            f"{where}: not a readable audio file ({first_line(e)}); soundfile reads WAV, FLAC, OGG/Opus, MP3 and "
            "AIFF: convert others first (e.g. ffmpeg -i clip.m4a clip.flac)"
        ) from None
    return audio, int(rate)


def _as_frames(array: np.ndarray) -> np.ndarray:
    """An already decoded array as [frames, channels]: 1-D is mono; 2-D puts the short axis on channels."""
    if array.ndim == 1:
        return array[:, None]
    if array.ndim == 2:
        return array if array.shape[0] >= array.shape[1] else array.T
    raise FtcliError(f"audio arrays are 1-D (mono) or 2-D (channels), not {array.ndim}-D")


def to_mono(audio: np.ndarray) -> np.ndarray:
    """[frames, channels] → [frames]: the mean of the channels (what transformers' pipelines do with stereo)."""
    return audio[:, 0] if audio.shape[1] == 1 else audio.mean(axis=1, dtype=np.float32)


def resample(audio: np.ndarray, rate: int, target: int, where: str) -> np.ndarray:
    """Mono float32 audio from ``rate`` to ``target`` Hz (soxr, HQ).

    Raises:
        FtcliError: the source rate lies outside 1 kHz–768 kHz.
    """
    if rate == target:
        return audio
    if not MIN_RATE <= rate <= MAX_RATE:
        raise FtcliError(
            f"{where}: sample rate {rate} Hz cannot be resampled to {target} Hz "
            f"(ftcli takes {MIN_RATE}–{MAX_RATE} Hz audio)"
        )
    import soxr

    return soxr.resample(audio, rate, target, quality="HQ").astype(np.float32, copy=False)


def decode(source: Any, rate: int, where: str | None = None) -> np.ndarray:
    """A clip as float32 mono samples at ``rate`` Hz.

    Args:
        source: a path, bytes, or a datasets Audio value (see :func:`read`).
        rate: the model's sampling rate (its feature extractor's ``sampling_rate``).
        where: how errors name the clip (default: its path).

    Raises:
        FtcliError: one line naming the clip: missing, unreadable, empty, not finite, or at a rate that
            cannot be resampled.
    """
    where = where or describe(source)
    audio, source_rate = read(source, where)
    if audio.shape[0] == 0 or audio.shape[1] == 0:
        raise FtcliError(f"{where}: empty audio (no samples)")
    mono = to_mono(audio)
    if not np.isfinite(mono).all():  # float WAVs can hold NaN; one would poison a whole batch's loss
        raise FtcliError(f"{where}: the audio holds NaN or infinite samples")
    return resample(mono, source_rate, rate, where)


def fit(audio: np.ndarray, rate: int, max_seconds: float | None, truncate: bool, where: str) -> tuple[np.ndarray, bool]:
    """The clip within ``max_seconds`` (None: any length): its start kept when ``truncate``, else an error.
    Returns the clip and whether it was cut.

    Raises:
        FtcliError: the clip is longer than the limit and truncation is off.
    """
    if max_seconds is None or len(audio) <= round(max_seconds * rate):
        return audio, False
    if not truncate:
        raise FtcliError(
            f"{where}: {len(audio) / rate:.2f} s of audio is longer than dataset.max_seconds={max_seconds:g}; raise "
            "the limit, or set dataset.truncate=true to keep the first max_seconds of each long clip"
        )
    return audio[: round(max_seconds * rate)], True
