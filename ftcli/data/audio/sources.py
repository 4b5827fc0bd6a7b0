"""Where a split's clips are and how they become model inputs: an audio folder's files, or a table's audio column of
paths (made absolute, relative to the table that lists them) or of embedded audio (a hub set's Audio feature); every
clip decoded, mixed to mono, resampled to the model's rate and held to ``dataset.max_seconds`` once, into the clip
cache (``cache.py``), the bad-audio policy applied, and what was cut said."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from ftcli.config.schemas import DatasetConfig
from ftcli.data.audio.cache import Clips, decode_all, identity_of
from ftcli.data.audio.decode import AUDIO_SUFFIXES, describe
from ftcli.data.media import file_splits, is_paths
from ftcli.data.tables import Raw
from ftcli.reporting.progress import console

AUDIO = "audio"  # the column an audio folder's rows and predict's rows hold their clip in


def audio_splits(dataset: DatasetConfig) -> Raw:
    """An audio folder's files, or a table's / hub split's audio column: paths made absolute (relative to the file
    that lists them), embedded audio kept undecoded (decoded once, when cached, with ftcli's own resampler)."""
    return file_splits(dataset, dataset.audio_column or AUDIO, datasets.Audio, AUDIO_SUFFIXES, "audio file")


def sources_of(ds: Any, column: str) -> tuple[list[Any], bool]:
    """The column's clips (paths, or embedded {bytes, path} / {array, sampling_rate}) and whether embedded."""
    if is_paths(ds, column):
        return [v if v is not None else "" for v in ds[column]], False
    return list(ds[column]), True


def where_of(sources: list[Any], i: int) -> str:
    """How a message names clip i: its path, else its row."""
    name = describe(sources[i])
    return name if name != "embedded audio" else f"audio clip {i + 1} of the split"


def cached_clips(ds: Any, column: str, rate: int, cache_dir: Path, dataset: DatasetConfig) -> Clips:
    """A split's clips at ``rate`` Hz within ``dataset.max_seconds``, from the cache (or decoded now and cached);
    what was skipped (``bad_audio=skip``) or cut (``truncate``) is said on the terminal."""
    sources, _ = sources_of(ds, column)
    identity = identity_of(sources, content=True)  # files by their bytes (a copy with the same mtime is caught)
    start = time.perf_counter()
    clips = decode_all(
        sources,
        lambda i: where_of(sources, i),
        rate,
        cache_dir,
        identity,
        dataset.max_seconds,
        bool(dataset.truncate),
        dataset.bad_audio == "skip",
    )
    seconds = float(clips.lengths.sum()) / rate
    how = "cache hit" if clips.hit else f"decoded in {time.perf_counter() - start:.1f} s"
    console.print(f"audio: {len(clips):,} clips, {seconds / 60:.1f} min at {rate} Hz ({how})", highlight=False)
    if clips.skipped:
        shown = "; ".join(clips.skipped[:3]) + (" …" if len(clips.skipped) > 3 else "")
        console.print(f"[yellow]skipped {len(clips.skipped)} unreadable clips[/] (dataset.bad_audio=skip): {shown}")
    if len(clips.cut):
        console.print(
            f"[yellow]cut {len(clips.cut)} clips to their first {dataset.max_seconds:g} s[/] (dataset.truncate=true): "
            f"{clips.seconds_cut:.1f} s of audio dropped, e.g. {where_of(sources, int(clips.cut[0]))}"
        )
    return clips


def kept_labels(labels: Any, clips: Clips) -> np.ndarray:
    """The labels of the clips kept (an object array for token-id lists)."""
    rows = list(labels)
    if rows and isinstance(rows[0], (list, tuple, np.ndarray)):
        out = np.empty(len(clips.kept), dtype=object)
        out[:] = [list(rows[int(i)]) for i in clips.kept]
        return out
    return np.asarray(rows, dtype=np.int64)[clips.kept]
