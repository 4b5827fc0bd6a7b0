"""The clip cache: every clip of a split decoded, mixed to mono, resampled and cut once, stored as int16 in one
memory-mapped file written atomically, keyed by the clips' identity and everything the samples depend on.

int16 holds what most audio files hold (16-bit PCM: a 16-bit WAV round-trips exactly) at half the size of
float32; a cached hour of 16 kHz audio is 115 MB.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ftcli.config.errors import FtcliError
from ftcli.data.audio.decode import RESAMPLER, decode, fit
from ftcli.runtime.files import sha256_of

CHUNK = 32  # clips per decode task: spread over threads (soundfile and soxr release the GIL)
FORMAT = 1  # bumped when the stored layout changes, so old entries are rebuilt instead of misread
SCALE = 32768.0  # float ↔ int16, as soundfile reads 16-bit PCM


@dataclass
class Clips:
    """The cached samples of a split's readable clips and what became of the others."""

    samples: np.ndarray  # int16, every kept clip end to end (memory-mapped)
    offsets: np.ndarray  # [len(kept) + 1]: clip i is samples[offsets[i]:offsets[i + 1]]
    kept: np.ndarray  # positions (in the split) of the clips stored
    skipped: list[str]  # "<where>: <why>" for every clip left out (bad_audio=skip)
    cut: np.ndarray  # positions (in the split) of the clips cut to max_seconds
    seconds_cut: float  # audio dropped by those cuts
    rate: int
    key: str
    hit: bool

    def __len__(self) -> int:
        return len(self.kept)

    @property
    def lengths(self) -> np.ndarray:
        """Samples per stored clip."""
        return np.diff(self.offsets)

    def clip(self, i: int) -> np.ndarray:
        """Stored clip ``i`` (not split row ``i``: see ``kept``) as float32 in [-1, 1)."""
        return self.samples[self.offsets[i] : self.offsets[i + 1]].astype(np.float32) / np.float32(SCALE)


def identity_of(sources: list[Any], content: bool = False) -> str:
    """A key for a split's clips: each path with its size and modification time (``content``: a hash of its
    bytes, which survives a copy or a touch but reads every file), or a hash of embedded bytes or arrays."""
    h = hashlib.sha256()
    for s in sources:
        if isinstance(s, dict) and s.get("array") is not None:
            h.update(np.ascontiguousarray(s["array"]).tobytes() + str(s["sampling_rate"]).encode())
        elif isinstance(s, dict) and s.get("bytes") is not None:
            h.update(hashlib.sha256(s["bytes"]).digest())
        elif isinstance(s, (bytes, bytearray)):
            h.update(hashlib.sha256(s).digest())
        else:
            path = s.get("path") if isinstance(s, dict) else s
            h.update(f"{path}\0{_file_identity(str(path), content)}\n".encode())
    return h.hexdigest()[:20]


def _file_identity(path: str, content: bool) -> str:
    try:
        if content:
            return sha256_of(Path(path))
        st = os.stat(path)
        return f"{st.st_size}\0{st.st_mtime_ns}"
    except OSError:
        return "missing"


def to_int16(audio: np.ndarray) -> np.ndarray:
    # Resampling can overshoot full scale by a hair; such samples are clipped, not wrapped around.
    return np.clip(np.round(audio * SCALE), -32768, 32767).astype(np.int16)


def decode_all(
    sources: list[Any],
    where: Callable[[int], str],
    rate: int,
    cache: Path,
    identity: str,
    max_seconds: float | None,
    truncate: bool,
    skip: bool,
) -> Clips:
    """Every clip of a split at ``rate`` Hz within ``max_seconds``, from the cache or decoded now (on threads)
    and stored atomically.

    Args:
        sources: paths, bytes or datasets Audio values, one per row.
        where: how errors name row i (its file, or the table row it came from).
        rate: the model's sampling rate.
        cache: the cache folder (entries go under ``audio/``).
        identity: :func:`identity_of` the sources.
        max_seconds: the longest clip kept (None: any).
        truncate: cut longer clips to their first ``max_seconds`` (counted) instead of stopping.
        skip: leave unreadable or empty clips out (counted) instead of stopping.

    Raises:
        FtcliError: one line naming the first bad clip (unless ``skip``) or the first too long one (unless
            ``truncate``).
    """
    recipe = f"{identity}-{rate}-{max_seconds}-{truncate}-{RESAMPLER}-{FORMAT}"
    key = hashlib.sha256(recipe.encode()).hexdigest()[:20]
    data, meta = cache / "audio" / f"{key}.i16", cache / "audio" / f"{key}.json"
    found = _load(data, meta, key)
    if found is not None:
        if found.skipped and not skip:  # cached under bad_audio=skip; this run stops at the first bad clip
            raise _stop(found.skipped[0])
        return found
    return _build(sources, where, rate, data, meta, key, max_seconds, truncate, skip)


def _stop(why: str) -> FtcliError:
    return FtcliError(f"{why}; fix or remove it, or set dataset.bad_audio=skip to leave such clips out")


def _load(data: Path, meta: Path, key: str) -> Clips | None:
    if not (data.is_file() and meta.is_file()):
        return None
    try:
        info = json.loads(meta.read_text())
        offsets = np.asarray(info["offsets"], dtype=np.int64)
        if data.stat().st_size != 2 * offsets[-1]:
            raise ValueError("size")
        samples = np.memmap(data, dtype=np.int16, mode="r") if offsets[-1] else np.zeros(0, np.int16)
        kept, cut = np.asarray(info["kept"], dtype=np.int64), np.asarray(info["cut"], dtype=np.int64)
        return Clips(samples, offsets, kept, info["skipped"], cut, info["seconds_cut"], info["rate"], key, True)
    except (OSError, ValueError, KeyError, TypeError):  # a damaged entry is rebuilt, not trusted
        meta.unlink(missing_ok=True)
        return None


def _decode_chunk(
    sources: list[Any],
    start: int,
    where: Callable[[int], str],
    rate: int,
    max_seconds: float | None,
    truncate: bool,
    skip: bool,
) -> list[tuple[int, np.ndarray | None, str, int]]:
    """(row, int16 clip or None, why it was skipped, samples cut) for a chunk of rows."""
    out: list[tuple[int, np.ndarray | None, str, int]] = []
    for i in range(start, min(start + CHUNK, len(sources))):
        try:
            audio = decode(sources[i], rate, where(i))
        except FtcliError as e:
            if not skip:
                raise _stop(str(e)) from None
            out.append((i, None, str(e), 0))
            continue
        kept, was_cut = fit(audio, rate, max_seconds, truncate, where(i))
        out.append((i, to_int16(kept), "", len(audio) - len(kept) if was_cut else 0))
    return out


def _in_order(pool: ThreadPoolExecutor, window: int, n: int, task: Callable[[int], Any]) -> Iterator[Any]:
    """Chunk results in order with at most ``window`` chunks in flight: memory holds a few chunks, not the
    split, and a failure leaves only those to finish."""
    pending: list[Future] = []
    for start in range(0, n, CHUNK):
        pending.append(pool.submit(task, start))
        if len(pending) >= window:
            yield pending.pop(0).result()
    for f in pending:
        yield f.result()


def _build(
    sources: list[Any],
    where: Callable[[int], str],
    rate: int,
    data: Path,
    meta: Path,
    key: str,
    max_seconds: float | None,
    truncate: bool,
    skip: bool,
) -> Clips:
    data.parent.mkdir(parents=True, exist_ok=True)
    tmp_data, tmp_meta = (p.with_suffix(f"{p.suffix}.tmp{os.getpid()}") for p in (data, meta))
    offsets, kept, cut, skipped, dropped = [0], [], [], [], 0

    def task(start: int) -> list[tuple[int, np.ndarray | None, str, int]]:
        return _decode_chunk(sources, start, where, rate, max_seconds, truncate, skip)

    try:
        threads = min(8, os.cpu_count() or 1)
        with open(tmp_data, "wb") as f, ThreadPoolExecutor(max_workers=threads) as pool:
            for chunk in _in_order(pool, 2 * threads, len(sources), task):
                for i, clip, why, n_cut in chunk:
                    if clip is None:
                        skipped.append(why)
                        continue
                    f.write(clip.tobytes())
                    offsets.append(offsets[-1] + len(clip))
                    kept.append(i)
                    if n_cut:
                        cut.append(i)
                        dropped += n_cut
        info = {"rate": rate, "offsets": offsets, "kept": kept, "skipped": skipped, "cut": cut}
        tmp_meta.write_text(json.dumps({**info, "seconds_cut": dropped / rate}))
        os.replace(tmp_data, data)
        os.replace(tmp_meta, meta)  # the entry counts once its metadata lands: data and metadata never disagree
    finally:
        tmp_data.unlink(missing_ok=True)
        tmp_meta.unlink(missing_ok=True)
    found = _load(data, meta, key)
    assert found is not None, "a cache entry just written could not be read back"
    return Clips(found.samples, found.offsets, found.kept, skipped, found.cut, found.seconds_cut, rate, key, False)
