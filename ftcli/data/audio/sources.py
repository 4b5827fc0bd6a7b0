"""Where a split's clips are and how they become model inputs: an audio folder's files, or a table's audio column of
paths (made absolute, relative to the table that lists them) or of embedded audio (a hub set's Audio feature); every
clip decoded, mixed to mono, resampled to the model's rate and held to ``dataset.max_seconds`` once, into the clip
cache (``cache.py``), the bad-audio policy applied, and what was cut said."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import DatasetConfig
from ftcli.data.audio.cache import Clips, decode_all, identity_of
from ftcli.data.audio.decode import AUDIO_SUFFIXES, describe
from ftcli.data.images.folder import scan_folder
from ftcli.data.tables import Raw, load_raw
from ftcli.reporting.progress import console

AUDIO = "audio"  # the column an audio folder's rows and predict's rows hold their clip in
STRINGS = ("string", "large_string")  # a column of paths, as datasets types it


def audio_splits(dataset: DatasetConfig) -> Raw:
    """An audio folder's files, or a table's / hub split's audio column: paths made absolute (relative to the file
    that lists them), embedded audio kept undecoded (decoded once, when cached)."""
    if dataset.source == "audiofolder":
        return _folder(dataset)
    raw = load_raw(dataset)
    column = dataset.audio_column or AUDIO
    for split, ds in raw.splits.items():
        if column not in ds.column_names:
            continue  # require_columns names it
        base = Path(getattr(dataset, f"{split}_file") or ".").expanduser().resolve().parent
        raw.splits[split] = _absolute(_undecoded(ds, column), column, base)
    return raw


def _folder(dataset: DatasetConfig) -> Raw:
    if not dataset.data_dir:
        raise FtcliError(f"dataset.data_dir is required for dataset={dataset.name} (an audio folder)")
    folder = scan_folder(dataset.data_dir, AUDIO_SUFFIXES, "audio file")
    column, label = dataset.audio_column or AUDIO, dataset.label_column
    splits = {s: datasets.Dataset.from_dict({column: p, label: y}) for s, (p, y) in folder.splits.items()}
    if folder.ignored:
        shown = ", ".join(Path(p).name for p in folder.ignored[:3])
        console.print(f"{dataset.data_dir}: {len(folder.ignored)} files that are not audio left out ({shown} …)")
    return Raw(splits, folder.where)


def _undecoded(ds: Any, column: str) -> Any:
    """An Audio feature as {bytes, path} (decoded once, by the cache, with ftcli's own resampler)."""
    feature = ds.features.get(column)
    return ds.cast_column(column, datasets.Audio(decode=False)) if isinstance(feature, datasets.Audio) else ds


def _absolute(ds: Any, column: str, base: Path) -> Any:
    """Relative audio paths in a table are relative to the table's folder."""
    if getattr(ds.features[column], "dtype", None) not in STRINGS:
        return ds

    def fix(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        return {column: [v if v is None else str(base / os.path.expanduser(v)) for v in batch[column]]}

    key = hashlib.sha256(f"{ds._fingerprint}-{base}-{column}".encode()).hexdigest()[:16]
    return ds.map(fix, batched=True, new_fingerprint=key, desc="audio paths")


def sources_of(ds: Any, column: str) -> tuple[list[Any], bool]:
    """The column's clips (paths, or embedded {bytes, path} / {array, sampling_rate}) and whether embedded."""
    if getattr(ds.features[column], "dtype", None) in STRINGS:
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
