"""Audio inputs: decoding (mixdown, resampling, errors naming the file), the clip cache, batches, augmentation."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ftcli.config.errors import FtcliError
from ftcli.data.audio.augment import AudioAugment, add_noise, augment, change_speed, time_shift
from ftcli.data.audio.batches import attention_mask, normalise, pad
from ftcli.data.audio.cache import decode_all, identity_of
from ftcli.data.audio.decode import decode, fit

RATE = 16000


def tone(freq: float, seconds: float, rate: int, phase: float = 0.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(round(seconds * rate)) / rate + phase)).astype(np.float32)


def write(path: Path, audio: np.ndarray, rate: int, subtype: str = "PCM_16") -> str:
    sf.write(path, audio, rate, subtype=subtype)
    return str(path)


def one_line_error(fn, *args, match: str) -> str:  # noqa: ANN001 - any callable
    with pytest.raises(FtcliError, match=match) as e:
        fn(*args)
    assert "\n" not in str(e.value)
    return str(e.value)


# ----------------------------------------------------------------------------------------------
# decoding


def test_resampling_keeps_a_tone_and_its_duration(tmp_path: Path) -> None:
    path = write(tmp_path / "a.flac", tone(440, 2.0, 44100), 44100)
    out = decode(path, RATE)
    assert out.dtype == np.float32 and len(out) == 2 * RATE
    mid = slice(1000, -1000)  # the resampler's filter settles at the ends
    err = out[mid] - tone(440, 2.0, RATE)[mid]
    assert 10 * np.log10(np.mean(tone(440, 2.0, RATE)[mid] ** 2) / np.mean(err**2)) > 40  # 16-bit source: ~60 dB


def test_stereo_is_the_mean_of_its_channels(tmp_path: Path) -> None:
    left, right = tone(300, 0.5, RATE), tone(700, 0.5, RATE, phase=1.0)
    path = write(tmp_path / "st.wav", np.stack([left, right], axis=1), RATE, subtype="FLOAT")
    np.testing.assert_allclose(decode(path, RATE), (left + right) / 2, atol=1e-7)


def test_16_bit_pcm_at_the_model_rate_is_read_exactly(tmp_path: Path) -> None:
    ints = np.random.default_rng(0).integers(-32768, 32767, 4000, dtype=np.int16)
    path = write(tmp_path / "pcm.wav", ints, RATE)
    np.testing.assert_array_equal(decode(path, RATE), ints.astype(np.float32) / 32768)


def test_embedded_and_decoded_sources(tmp_path: Path) -> None:
    audio = tone(500, 0.25, 8000)
    path = write(tmp_path / "e.wav", audio, 8000, subtype="FLOAT")
    from_path = decode(path, RATE)
    np.testing.assert_array_equal(decode({"bytes": Path(path).read_bytes(), "path": "e.wav"}, RATE), from_path)
    np.testing.assert_array_equal(decode({"array": audio, "sampling_rate": 8000}, RATE), from_path)


def test_bad_clips_stop_in_one_line_naming_the_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "gone.wav")
    assert missing in one_line_error(decode, missing, RATE, match="no such audio file")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF not really a wave file" * 10)
    assert str(junk) in one_line_error(decode, str(junk), RATE, match="not a readable audio file")
    empty = write(tmp_path / "empty.wav", np.zeros(0, np.float32), RATE)
    assert empty in one_line_error(decode, empty, RATE, match="empty audio")
    slow = write(tmp_path / "slow.wav", tone(50, 1.0, 500), 500)
    assert slow in one_line_error(decode, slow, RATE, match="500 Hz cannot be resampled to 16000 Hz")
    nan = tone(300, 0.1, RATE)
    nan[10] = np.nan
    bad = write(tmp_path / "nan.wav", nan, RATE, subtype="FLOAT")
    assert bad in one_line_error(decode, bad, RATE, match="NaN")


def test_long_clips_are_cut_or_refused() -> None:
    audio = np.ones(3 * RATE, np.float32)
    kept, cut = fit(audio, RATE, 2.0, truncate=True, where="long.wav")
    assert cut and len(kept) == 2 * RATE
    kept, cut = fit(audio, RATE, 3.0, truncate=False, where="long.wav")
    assert not cut and len(kept) == 3 * RATE  # exactly at the limit is within it
    assert fit(audio, RATE, None, truncate=False, where="long.wav")[1] is False
    msg = one_line_error(fit, audio, RATE, 2.5, False, "long.wav", match="3.00 s of audio is longer than")
    assert msg.startswith("long.wav: ")


# ----------------------------------------------------------------------------------------------
# the cache


def _clips(tmp_path: Path, n: int = 5) -> list[str]:
    rng = np.random.default_rng(1)
    return [write(tmp_path / f"c{i}.wav", tone(200 + 50 * i, rng.uniform(0.2, 1.5), 22050), 22050) for i in range(n)]


def _decode_all(paths: list, cache: Path, **kw: object) -> object:
    args = {"max_seconds": None, "truncate": False, "skip": False, **kw}
    return decode_all(paths, lambda i: str(paths[i]), RATE, cache, identity_of(paths), **args)  # type: ignore[arg-type]


def test_the_cache_stores_what_decoding_gives_and_is_hit_the_second_time(tmp_path: Path) -> None:
    paths, cache = _clips(tmp_path), tmp_path / "cache"
    first = _decode_all(paths, cache)
    assert not first.hit and len(first) == len(paths)
    for i, p in enumerate(paths):  # int16 storage: within half a step of the decoded floats
        np.testing.assert_allclose(first.clip(i), decode(p, RATE), atol=0.5 / 32768 + 1e-9)
    again = _decode_all(paths, cache)
    assert again.hit and again.key == first.key
    np.testing.assert_array_equal(again.offsets, first.offsets)
    np.testing.assert_array_equal(np.asarray(again.samples), np.asarray(first.samples))
    assert sorted(os.listdir(cache / "audio")) == sorted([f"{first.key}.i16", f"{first.key}.json"])  # no debris
    assert _decode_all(paths, cache, max_seconds=1.0, truncate=True).key != first.key  # the limit is in the key


def test_a_changed_file_misses_and_a_touched_one_misses_only_by_metadata(tmp_path: Path) -> None:
    paths = _clips(tmp_path, 2)
    by_meta, by_content = identity_of(paths), identity_of(paths, content=True)
    st = os.stat(paths[0])
    os.utime(paths[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert identity_of(paths) != by_meta and identity_of(paths, content=True) == by_content
    write(Path(paths[0]), -sf.read(paths[0], dtype="float32")[0], 22050)  # same size, other samples
    assert identity_of(paths, content=True) != by_content


def test_cuts_are_counted(tmp_path: Path) -> None:
    paths = _clips(tmp_path)
    lengths = [sf.info(p).duration for p in paths]
    clips = _decode_all(paths, tmp_path / "cache", max_seconds=0.5, truncate=True)
    long = [i for i, d in enumerate(lengths) if d > 0.5]
    assert clips.cut.tolist() == long and long  # the set has clips both sides of the limit
    assert clips.lengths.max() == RATE // 2
    assert clips.seconds_cut == pytest.approx(sum(lengths[i] - 0.5 for i in long), abs=1e-3)
    with pytest.raises(FtcliError, match=f"{paths[long[0]]}: .* longer than dataset.max_seconds=0.5"):
        _decode_all(paths, tmp_path / "cache2", max_seconds=0.5, truncate=False)


def test_bad_clips_stop_the_build_or_are_skipped_and_counted(tmp_path: Path) -> None:
    paths = _clips(tmp_path, 4)
    (tmp_path / "bad.wav").write_bytes(b"\0" * 100)
    paths.insert(2, str(tmp_path / "bad.wav"))
    cache = tmp_path / "cache"
    with pytest.raises(FtcliError, match="bad.wav: not a readable audio file.*bad_audio=skip"):
        _decode_all(paths, cache)
    assert not any(cache.glob("audio/*"))  # a failed build leaves no entry and no temporary file
    clips = _decode_all(paths, cache, skip=True)
    assert clips.kept.tolist() == [0, 1, 3, 4] and len(clips.skipped) == 1 and "bad.wav" in clips.skipped[0]
    np.testing.assert_allclose(clips.clip(2), decode(paths[3], RATE), atol=0.5 / 32768 + 1e-9)
    with pytest.raises(FtcliError, match="bad.wav"):  # the entry made under skip does not excuse the file
        _decode_all(paths, cache, skip=False)


def test_a_damaged_entry_is_rebuilt(tmp_path: Path) -> None:
    paths, cache = _clips(tmp_path, 2), tmp_path / "cache"
    first = _decode_all(paths, cache)
    (cache / "audio" / f"{first.key}.json").write_text("{not json")
    rebuilt = _decode_all(paths, cache)
    assert not rebuilt.hit
    np.testing.assert_array_equal(rebuilt.clip(1), first.clip(1))
    data = cache / "audio" / f"{first.key}.i16"
    data.write_bytes(data.read_bytes()[:-2])  # a short data file does not pass either
    assert not _decode_all(paths, cache).hit


# ----------------------------------------------------------------------------------------------
# batches


def test_normalise_matches_the_wav2vec2_feature_extractor_with_a_mask() -> None:
    from transformers import Wav2Vec2FeatureExtractor

    rng = np.random.default_rng(2)
    clips = [(rng.standard_normal(n) * s + m).astype(np.float32) for n, s, m in [(900, 0.3, 0.1), (400, 2.0, -1.0)]]
    fe = Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True, padding_value=0.0)
    ref = fe(clips, sampling_rate=RATE, padding=True, return_tensors="np")
    waves, lengths = pad(clips)
    np.testing.assert_allclose(normalise(waves, lengths).numpy(), ref["input_values"], atol=2e-5)
    np.testing.assert_array_equal(attention_mask(lengths, waves.shape[1]).numpy(), ref["attention_mask"])
    alone = fe(clips[1], sampling_rate=RATE, return_tensors="np")["input_values"][0]  # as a pipeline sees it
    np.testing.assert_allclose(normalise(waves, lengths)[1, :400].numpy(), alone, atol=2e-5)


# ----------------------------------------------------------------------------------------------
# augmentation


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    return pad([tone(440, 1.0, RATE), tone(1000, 0.5, RATE), tone(250, 0.75, RATE)])


def _peak_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / RATE)[spectrum.argmax()])


def test_speed_resamples_each_clip_by_its_own_factor() -> None:
    waves, lengths = _batch()
    same, same_len = change_speed(waves, lengths, torch.ones(3))
    torch.testing.assert_close(same, waves)
    assert same_len.tolist() == lengths.tolist()
    factors = torch.tensor([2.0, 0.8, 1.1], dtype=torch.float64)
    out, new = change_speed(waves, lengths, factors)
    for i, f in enumerate(factors.tolist()):  # numpy's linear interpolation, clip by clip
        n = int(lengths[i])
        expect = np.interp(np.arange(int(new[i])) * f, np.arange(n), waves[i, :n].numpy())
        np.testing.assert_allclose(out[i, : int(new[i])].numpy(), expect, atol=1e-6)
        assert float(out[i, int(new[i]) :].abs().sum()) == 0.0
    assert new.tolist() == [8000, 9999, 10909]  # floor((n - 1) / f) + 1: 15999/2, 7999/0.8, 11999/1.1
    assert _peak_hz(out[0, :8000].numpy()) == pytest.approx(880, abs=4)  # twice as fast: an octave up


def test_shift_moves_each_clip_within_its_length() -> None:
    waves, lengths = _batch()
    out = time_shift(waves, lengths, torch.tensor([100, -50, 0]))
    for i, s in enumerate([100, -50, 0]):
        n, x = int(lengths[i]), waves[i].numpy()
        expect = np.zeros(waves.shape[1], np.float32)
        expect[:n] = np.concatenate([np.zeros(s), x[: n - s]]) if s >= 0 else np.concatenate([x[-s:n], np.zeros(-s)])
        np.testing.assert_array_equal(out[i].numpy(), expect)


def test_noise_lands_at_the_snr_asked_for_and_not_on_padding() -> None:
    waves, lengths = _batch()
    snr = torch.tensor([0.0, 10.0, 20.0], dtype=torch.float64)
    out = add_noise(waves, lengths, snr, torch.Generator().manual_seed(0))
    for i in range(3):
        n = int(lengths[i])
        noise = (out[i, :n] - waves[i, :n]).double()
        measured = 10 * np.log10(float((waves[i, :n].double() ** 2).mean() / (noise**2).mean()))
        assert measured == pytest.approx(float(snr[i]), abs=0.15)
        assert float(out[i, n:].abs().sum()) == 0.0
    silent = add_noise(torch.zeros(1, 100), torch.tensor([100]), torch.tensor([10.0]), torch.Generator())
    assert float(silent.abs().sum()) == 0.0


def test_a_batch_augments_the_same_from_the_same_seed() -> None:
    waves, lengths = _batch()
    aug = AudioAugment(speed=(0.9, 1.1), shift_seconds=0.05, gain_db=(-6.0, 6.0), snr_db=(10.0, 30.0))
    a, la = augment(waves, lengths, aug, RATE, torch.Generator().manual_seed(7))
    b, lb = augment(waves, lengths, aug, RATE, torch.Generator().manual_seed(7))
    c, _ = augment(waves, lengths, aug, RATE, torch.Generator().manual_seed(8))
    torch.testing.assert_close(a, b)
    assert torch.equal(la, lb) and not torch.equal(a, c)
    assert a.shape[1] == int(la.max()) and all(float(a[i, int(la[i]) :].abs().sum()) == 0.0 for i in range(3))
    assert all(abs(int(la[i]) / int(lengths[i]) - 1) <= 0.1 + 1e-3 for i in range(3))
    off = AudioAugment(speed=(1.0, 1.0), shift_seconds=0.0, gain_db=(0.0, 0.0), snr_db=None)
    same, same_len = augment(waves, lengths, off, RATE, torch.Generator().manual_seed(7))
    assert torch.equal(same, waves) and torch.equal(same_len, lengths)


def test_gain_scales_by_decibels() -> None:
    waves, lengths = _batch()
    aug = AudioAugment(speed=(1.0, 1.0), shift_seconds=0.0, gain_db=(-6.0, -6.0), snr_db=None)
    out, _ = augment(waves, lengths, aug, RATE, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, waves * 10 ** (-6 / 20))


def test_metadata_is_json_a_person_can_read(tmp_path: Path) -> None:
    paths = _clips(tmp_path, 2)
    clips = _decode_all(paths, tmp_path / "cache")
    info = json.loads((tmp_path / "cache" / "audio" / f"{clips.key}.json").read_text())
    assert info["rate"] == RATE and info["kept"] == [0, 1] and info["offsets"][-1] == int(clips.lengths.sum())
