#!/usr/bin/env python
"""Build ftcli's shipped sentence-pair regression set (ftcli/assets/sts_pairs) from SST-2's sentences.

    python scripts/make_sts_pairs.py            # rewrites train.tsv and dev.tsv (deterministic)

Each pair is a sentence and a copy of it with a random share of its words replaced by words of other
sentences; the score is 5 × the Jaccard overlap of the two sentences' word sets. The target is a known
function of the text (no annotator noise), so a model's Pearson measures what it learned, and
predicting the mean scores exactly 0 — the STS-B format (sentence1, sentence2, score 0–5) offline.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "ftcli" / "assets"
SIZES = {"train": 6000, "dev": 1000}
SOURCES = {"train": "train.tsv", "dev": "dev.tsv"}  # SST-2 splits: the two sets share no sentence


def sentences(split: str) -> list[str]:
    with (ASSETS / "sst2" / SOURCES[split]).open(newline="") as f:
        rows = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        return sorted({r["sentence"].strip() for r in rows if 6 <= len(r["sentence"].split()) <= 30})


def pair(a: str, pool: list[str], rng: random.Random) -> tuple[str, str, float]:
    words = a.split()
    share = rng.random()  # how much of the sentence changes
    swap = rng.sample(range(len(words)), round(share * len(words)))
    donor = rng.choice(pool).split()
    b = list(words)
    for i in swap:
        b[i] = rng.choice(donor)
    union = set(words) | set(b)
    score = 5 * len(set(words) & set(b)) / len(union)
    return a, " ".join(b), round(score, 4)


def main() -> None:
    out = ASSETS / "sts_pairs"
    out.mkdir(exist_ok=True)
    for split, n in SIZES.items():
        rng = random.Random(split)
        pool = sentences(split)
        rows = [pair(rng.choice(pool), pool, rng) for _ in range(n)]
        with (out / f"{split}.tsv").open("w", newline="") as f:
            w = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\", lineterminator="\n")
            w.writerow(["sentence1", "sentence2", "score"])
            w.writerows(rows)
        print(f"{out / f'{split}.tsv'}: {n} pairs")


if __name__ == "__main__":
    main()
