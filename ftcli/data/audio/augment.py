"""Training augmentation of waveforms as whole-batch tensor operations (no per-clip Python), drawn from one
seeded generator per batch: speed (tempo and pitch, by resampling), time shift, gain, noise at an SNR.

A batch is ``waves`` [B, T] float32, zero-padded past each clip's ``lengths`` [B]; every operation keeps the
padding zero and returns the new lengths, so a model's attention mask (or its feature extractor's
normalisation) still sees only the clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class AudioAugment:
    """Ranges each clip's draw comes from (uniform); a range of one value applies that value to every clip."""

    speed: tuple[float, float]  # playback rate: 1.1 is 10% faster and higher; (1, 1): off
    shift_seconds: float  # the clip moves by up to this, either way, zeros filling in; 0: off
    gain_db: tuple[float, float]  # (0, 0): off
    snr_db: tuple[float, float] | None  # white noise at this SNR over the clip's own power; None: off


def change_speed(waves: Any, lengths: Any, factors: Any) -> tuple[Any, Any]:
    """Each clip played ``factors[i]`` times as fast: resampled by linear interpolation, so its length becomes
    ``(len - 1) / factor + 1`` samples. Linear interpolation aliases a little of the top band when speeding up
    (above 8 kHz / factor at 16 kHz), where speech carries little energy; Kaldi's sox-based speed perturbation
    filters it, at a cost per clip."""
    import torch

    new_lengths = torch.floor((lengths - 1).double() / factors.double()).long() + 1
    new_lengths = torch.where(lengths > 0, new_lengths, 0)
    t_out = int(new_lengths.max()) if len(lengths) else 0
    pos = torch.arange(t_out, dtype=torch.float64)[None, :] * factors.double()[:, None]  # source positions
    lo = pos.floor().long()
    frac = (pos - lo).to(waves.dtype)
    last = (lengths - 1).clamp(min=0)[:, None]
    lo = torch.minimum(lo, last)
    hi = torch.minimum(lo + 1, last)
    out = waves.gather(1, lo) * (1 - frac) + waves.gather(1, hi) * frac
    return out * (torch.arange(t_out)[None, :] < new_lengths[:, None]), new_lengths


def time_shift(waves: Any, lengths: Any, shifts: Any) -> Any:
    """Each clip moved ``shifts[i]`` samples later (earlier if negative) within its own length: what moves
    past either end is lost, zeros fill the gap."""
    import torch

    idx = torch.arange(waves.shape[1])[None, :] - shifts[:, None]
    inside = (idx >= 0) & (idx < lengths[:, None]) & (torch.arange(waves.shape[1])[None, :] < lengths[:, None])
    return waves.gather(1, idx.clamp(0, max(waves.shape[1] - 1, 0))) * inside


def add_noise(waves: Any, lengths: Any, snr_db: Any, gen: Any) -> Any:
    """White Gaussian noise over each clip's samples (not its padding) at ``snr_db[i]`` dB below the clip's mean
    power; a silent clip stays silent."""
    import torch

    inside = torch.arange(waves.shape[1])[None, :] < lengths[:, None]
    power = (waves.double() ** 2).sum(1) / lengths.clamp(min=1)
    scale = torch.sqrt(power / 10 ** (snr_db.double() / 10)).to(waves.dtype)
    noise = torch.randn(waves.shape, generator=gen, dtype=waves.dtype)
    return waves + noise * scale[:, None] * inside


def augment(waves: Any, lengths: Any, aug: AudioAugment, rate: int, gen: Any) -> tuple[Any, Any]:
    """A training batch augmented: speed, then shift, gain and noise (last, so its SNR is over the final clip).
    Every draw comes from ``gen`` in a fixed order: the same generator state gives the same batch.

    Args:
        waves: [B, T] float32, zero past each clip's length.
        lengths: [B] int64 samples per clip.
        aug: the ranges to draw from.
        rate: samples per second (for the shift in seconds).
        gen: a ``torch.Generator`` seeded for this batch.

    Returns:
        The augmented batch and its lengths (speed changes them).
    """
    import torch

    b = waves.shape[0]

    def uniform(lo: float, hi: float) -> Any:
        return torch.empty(b, dtype=torch.float64).uniform_(lo, hi, generator=gen)

    if aug.speed != (1.0, 1.0):
        waves, lengths = change_speed(waves, lengths, uniform(*aug.speed))
    if aug.shift_seconds > 0:
        most = round(aug.shift_seconds * rate)
        waves = time_shift(waves, lengths, torch.randint(-most, most + 1, (b,), generator=gen))
    if aug.gain_db != (0.0, 0.0):
        waves = waves * (10 ** (uniform(*aug.gain_db) / 20)).to(waves.dtype)[:, None]
    if aug.snr_db is not None:
        waves = add_noise(waves, lengths, uniform(*aug.snr_db), gen)
    return waves, lengths
