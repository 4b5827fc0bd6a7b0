#!/usr/bin/env python
"""Build ftcli's shipped synthetic speech (ftcli/assets/speech) with the espeak-ng synthesiser.

    apt-get install -y espeak-ng            # only this script needs it; the clips ship in the package
    python scripts/make_speech.py           # rewrites ftcli/assets/speech (deterministic)

Two sets, 16 kHz mono Ogg/Opus (~15 kbit/s; soundfile/libsndfile and FFmpeg both decode it):

- ``keywords/<split>/<word>/<voice>_<n>.ogg``: one of 20 words (the ten digits and ten commands, as in
  Speech Commands) per clip, laid out as an audio folder. ``keywords/metadata.csv`` lists every clip with
  its voice, speed, pitch, noise and SNR.
- ``phrases/<split>/<n>.ogg`` with ``phrases/<split>.csv`` (``path``, ``transcript``, voice …): 2–4 words
  drawn from a 30-word vocabulary that spells all 26 letters, for character CTC; ``phrases/more/<n>.ogg`` are
  4,800 more training phrases, listed with the 1,200 in ``phrases/train_large.csv`` (``dataset=speech_phrases_large``).

A voice is an espeak-ng accent (8 English ones) with a voice variant (m1…m8, f1…f5, klatt, whisper, croak …,
101 in espeak-ng 1.51). Validation uses variants that training never hears (held-out voices, every accent);
each clip draws its speed, pitch, word gaps, loudness, silence margins and background noise (white, pink,
brown or mains hum, at an SNR from 10 to 30 dB). Every draw comes from one seeded generator per set, and the
Ogg stream serial numbers (which libsndfile picks at random) are replaced by a fixed one, so a rerun writes
identical bytes on the same espeak-ng and libopus versions.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "ftcli" / "assets" / "speech"
RATE = 16000
SEED = 27
OPUS_LEVEL = 0.97  # libsndfile's 0–1 compression level; 0.97 ≈ 15 kbit/s: 1.0 (≈11) smears the spectrum

KEYWORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
KEYWORDS += ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
# The keywords plus ten words that bring in the letters they lack (a b c j k m q), so CTC sees every letter.
VOCAB = KEYWORDS + ["back", "jump", "play", "music", "quick", "light", "red", "blue", "green", "wait"]
ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029", "en-us-nyc"]
KEYWORD_CLIPS = {"train": 250, "validation": 30}  # per word
PHRASES = {"train": 1200, "validation": 300}
MORE_PHRASES = 4800  # dataset=speech_phrases_large: train.csv's 1,200 and these (phrases/train_large.csv)
HELD_OUT = 0.2  # share of voice variants kept for validation
SNR_DB = (10.0, 30.0)  # 5 dB white noise buries short words for a tiny model (validation 0.68 there)
NOISES = ("white", "pink", "brown", "hum")


@dataclass
class Take:
    """Everything one clip was drawn with (the metadata columns)."""

    text: str
    accent: str
    variant: str
    speed: int  # words per minute (espeak-ng's default is 175)
    pitch: int  # 0–99 (default 50)
    gap: int  # extra pause between words, in 10 ms units
    noise: str
    snr_db: float
    peak: float  # the clip's final peak amplitude

    @property
    def voice(self) -> str:
        return f"{self.accent}+{self.variant}"


def espeak_variants() -> list[str]:
    """The variant names espeak-ng ships (its voices/!v folder), sorted for a stable order."""
    data = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout
    folder = Path(data.split("Data at:")[-1].strip()) / "voices" / "!v"
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def split_variants(variants: list[str], rng: np.random.Generator) -> dict[str, list[str]]:
    order = [variants[i] for i in rng.permutation(len(variants))]
    cut = round(HELD_OUT * len(order))
    return {"validation": sorted(order[:cut]), "train": sorted(order[cut:])}


def synthesise(take: Take) -> np.ndarray:
    """The words as float32 at 16 kHz, trimmed to the speech (espeak-ng pads its output with silence)."""
    import soundfile as sf
    import soxr

    # -a 60 instead of 100: several variants clip at full amplitude.
    cmd = ["espeak-ng", "-v", take.voice, "-s", str(take.speed), "-p", str(take.pitch), "-g", str(take.gap)]
    wav = subprocess.run([*cmd, "-a", "60", "--stdout", take.text], capture_output=True, check=True).stdout
    audio, rate = sf.read(io.BytesIO(wav), dtype="float32")
    audio = soxr.resample(audio, rate, RATE).astype(np.float32)
    loud = np.flatnonzero(np.abs(audio) > 0.01 * np.abs(audio).max())  # -40 dB below the peak
    return audio[loud[0] : loud[-1] + 1]


def noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-power background noise: white, pink (1/f), brown (1/f²) or mains hum with harmonics."""
    if kind == "hum":
        t = np.arange(n) / RATE
        base = rng.choice([50.0, 60.0])
        harmonics = (
            rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * base * k * t + rng.uniform(0, 6.3)) for k in range(1, 8)
        )
        out = sum(harmonics)
        out = out + 0.1 * rng.standard_normal(n)
    else:
        spectrum = np.fft.rfft(rng.standard_normal(n))
        f = np.fft.rfftfreq(n, 1 / RATE)
        alpha = {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind]
        spectrum *= np.where(f < 20, 0.0, np.maximum(f, 20.0) ** (-alpha / 2))  # nothing below 20 Hz: no DC drift
        out = np.fft.irfft(spectrum, n)
    return (out / np.sqrt(np.mean(out**2))).astype(np.float32)


def render(take: Take, rng: np.random.Generator) -> np.ndarray:
    """Speech in random silence margins, noise at the take's SNR (over the speech's power), scaled to its peak."""
    speech = synthesise(take)
    lead, tail = (int(rng.uniform(0.05, 0.15) * RATE) for _ in range(2))
    clip = np.concatenate([np.zeros(lead, np.float32), speech, np.zeros(tail, np.float32)])
    power = np.mean(speech**2)
    clip += noise(take.noise, len(clip), rng) * np.sqrt(power / 10 ** (take.snr_db / 10))
    return (clip * (take.peak / np.abs(clip).max())).astype(np.float32)


def draw(text: str, variants: list[str], rng: np.random.Generator, gap: bool) -> Take:
    return Take(
        text=text,
        accent=str(rng.choice(ACCENTS)),
        variant=str(rng.choice(variants)),
        speed=int(rng.integers(120, 231)),
        pitch=int(rng.integers(20, 81)),
        gap=int(rng.integers(0, 9)) if gap else 0,
        noise=str(rng.choice(NOISES)),
        snr_db=round(float(rng.uniform(*SNR_DB)), 1),
        peak=round(float(10 ** (rng.uniform(-20, -1) / 20)), 3),
    )


# libsndfile's Ogg output carries a random stream serial number and pads its OpusTags header with ~800 zero
# bytes (more than a keyword's audio). Rewriting the pages with a fixed serial and the padding cut (RFC 7845
# lets a comment header end after its last comment) makes reruns identical and the set ~35% smaller.
_CRC = np.zeros(256, dtype=np.uint32)
for _i in range(256):
    _r = _i << 24
    for _ in range(8):
        _r = ((_r << 1) ^ 0x04C11DB7) if _r & 0x80000000 else (_r << 1)
    _CRC[_i] = _r & 0xFFFFFFFF
_CRC_TABLE = [int(c) for c in _CRC]


def _ogg_crc(page: bytes) -> int:
    crc = 0
    for byte in page:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[((crc >> 24) ^ byte) & 0xFF]
    return crc


def _without_padding(tags: bytes) -> bytes:
    """An OpusTags packet cut after its last user comment."""
    end = 8 + 4 + int.from_bytes(tags[8:12], "little")  # magic, vendor length, vendor
    count = int.from_bytes(tags[end : end + 4], "little")
    end += 4
    for _ in range(count):
        end += 4 + int.from_bytes(tags[end : end + 4], "little")
    return tags[:end]


def tidy_ogg(ogg: bytes, serial: int = 0x46544331) -> bytes:
    """The Ogg stream with a fixed serial number and an unpadded OpusTags page (each page's CRC redone)."""
    out, pos = bytearray(), 0
    while pos < len(ogg):
        assert ogg[pos : pos + 4] == b"OggS", "not an Ogg page"
        n_seg = ogg[pos + 26]
        lacing = ogg[pos + 27 : pos + 27 + n_seg]
        body = ogg[pos + 27 + n_seg : pos + 27 + n_seg + sum(lacing)]
        header = bytearray(ogg[pos : pos + 27])
        pos += 27 + n_seg + sum(lacing)
        if body.startswith(b"OpusTags") and lacing[-1] < 255:  # the whole packet on this one page
            body = _without_padding(body)
            lacing = bytes([255] * (len(body) // 255) + [len(body) % 255])
            header[26] = len(lacing)
        header[14:18] = serial.to_bytes(4, "little")
        header[22:26] = b"\0\0\0\0"
        page = bytes(header) + lacing + body
        out += page[:22] + _ogg_crc(page).to_bytes(4, "little") + page[26:]
    return bytes(out)


def write_opus(path: Path, audio: np.ndarray) -> None:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, audio, RATE, format="OGG", subtype="OPUS", compression_level=OPUS_LEVEL)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tidy_ogg(buf.getvalue()))


def slug(variant: str) -> str:
    return variant.lower().replace(" ", "-")


def make_keywords(voices: dict[str, list[str]], rng: np.random.Generator) -> list[dict]:
    rows = []
    for split, per_word in KEYWORD_CLIPS.items():
        for word in KEYWORDS:
            for n in range(per_word):
                take = draw(word, voices[split], rng, gap=False)
                rel = f"{split}/{word}/{take.accent}+{slug(take.variant)}_{n:03d}.ogg"
                write_opus(OUT / "keywords" / rel, render(take, rng))
                rows.append({"path": rel, "label": word, "split": split, **_columns(take)})
    return rows


def make_phrases(voices: dict[str, list[str]], rng: np.random.Generator) -> dict[str, list[dict]]:
    tables: dict[str, list[dict]] = {}
    for split, count in PHRASES.items():
        tables[split] = []
        for n in range(count):
            tables[split].append(phrase(rng, voices[split], f"{split}/{n:04d}.ogg"))
    return tables


def phrase(rng: np.random.Generator, variants: list[str], rel: str) -> dict:
    """2–4 words in one of ``variants``, written to ``phrases/<rel>``; its table row."""
    words = rng.choice(VOCAB, size=int(rng.integers(2, 5)))
    take = draw(" ".join(words), variants, rng, gap=True)
    write_opus(OUT / "phrases" / rel, render(take, rng))
    return {"path": rel, "transcript": take.text, **_columns(take)}


def _more_phrase(n: int, variants: list[str]) -> dict:
    """Extra training phrase ``n``: its own seeded generator (so clips can be made in parallel, byte for byte)."""
    return phrase(np.random.default_rng([SEED, 3, n]), variants, f"more/{n:04d}.ogg")


def make_more_phrases(voices: dict[str, list[str]]) -> list[dict]:
    """MORE_PHRASES further training phrases in the training voices (``phrases/more/``), two at a time."""
    from concurrent.futures import ProcessPoolExecutor
    from functools import partial

    with ProcessPoolExecutor(2) as pool:
        return list(pool.map(partial(_more_phrase, variants=voices["train"]), range(MORE_PHRASES), chunksize=50))


def _columns(take: Take) -> dict:
    return {k: getattr(take, k) for k in ("accent", "variant", "speed", "pitch", "gap", "noise", "snr_db", "peak")}


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    variants = espeak_variants()
    voices = split_variants(variants, np.random.default_rng(SEED))
    held_out = ", ".join(voices["validation"])
    print(f"{len(variants)} variants × {len(ACCENTS)} accents; held out for validation: {held_out}")
    for sub in ("keywords", "phrases"):
        shutil.rmtree(OUT / sub, ignore_errors=True)
    keyword_rows = make_keywords(voices, np.random.default_rng([SEED, 1]))
    write_csv(OUT / "keywords" / "metadata.csv", keyword_rows)
    phrase_rows = make_phrases(voices, np.random.default_rng([SEED, 2]))
    for split, rows in phrase_rows.items():
        write_csv(OUT / "phrases" / f"{split}.csv", rows)
    write_csv(OUT / "phrases" / "train_large.csv", phrase_rows["train"] + make_more_phrases(voices))
    for sub in ("keywords", "phrases"):
        files = list((OUT / sub).rglob("*.ogg"))
        size = sum(p.stat().st_size for p in files)
        print(f"{sub}: {len(files)} clips, {size / 1e6:.2f} MB → {OUT / sub}")


if __name__ == "__main__":
    main()
