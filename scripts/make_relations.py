#!/usr/bin/env python
"""Make ftcli/assets/relations_demo: a small relation extraction set in TACRED's row format.

Sentences come from hand-written frames whose slots take made-up people, companies, cities and job titles.
Each frame says which ordered pairs of its entities stand in which relation; every other pair of types a
relation could join is ``no_relation`` (a frame may leave out a pair whose label would be a judgement call).
One row per (sentence, pair), as TACRED does, so one sentence gives rows with different labels: a model has
to look at the marked pair, not just the sentence. Relations whose direction follows word order or voice
("Helix acquired Apex" vs "Helix was acquired by Apex": org:subsidiaries vs org:parents), a birthplace beside
a home town, a company left beside one joined. Validation uses names training never sees, and about a
sixth of its frames are frames training never sees.

Rows: ``token``, ``subj_start``/``subj_end``/``obj_start``/``obj_end`` (token indices, ends inclusive),
``subj_type``/``obj_type`` (PERSON, ORGANIZATION, CITY, TITLE) and ``relation``. Deterministic; prints (and
writes into README.md) the label counts and trivial baselines on validation, scored by TACRED's rules:

    python scripts/make_relations.py     # → ftcli/assets/relations_demo/{train,dev}.jsonl, README.md
"""

from __future__ import annotations

import json
import random
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from ftcli.metrics.relations import NO_RELATION, tacred_scores  # noqa: E402

OUT = ROOT / "ftcli" / "assets" / "relations_demo"
SIZES = {"train": 3000, "dev": 500}
SEEDS = {"train": 261, "dev": 262}
TYPES = {"P": "PERSON", "O": "ORGANIZATION", "C": "CITY", "T": "TITLE"}
# the type pairs a relation can join (subject type, object type); other pairs are not rows
PAIRS = {("P", "O"), ("P", "C"), ("P", "T"), ("O", "P"), ("O", "C"), ("O", "O")}
EMP, BIRTH, HOME, TITLE = "per:employee_of", "per:city_of_birth", "per:cities_of_residence", "per:title"
FOUNDER, HQ, SUBS, PARENTS = "org:founded_by", "org:city_of_headquarters", "org:subsidiaries", "org:parents"

# (frame, {(subject slot, object slot): relation, or None for a pair left out}); unlisted pairs: no_relation
FRAMES: list[tuple[str, dict[tuple[str, str], str | None]]] = [
    ("{O1} acquired {O2} in 2015 .", {("O1", "O2"): SUBS, ("O2", "O1"): PARENTS}),
    ("{O2} was acquired by {O1} last year .", {("O1", "O2"): SUBS, ("O2", "O1"): PARENTS}),
    ("{O1} , the parent company of {O2} , reported higher profits .", {("O1", "O2"): SUBS, ("O2", "O1"): PARENTS}),
    ("{O1} is now a unit of {O2} .", {("O1", "O2"): PARENTS, ("O2", "O1"): SUBS}),
    ("{O1} and {O2} announced a partnership on Monday .", {}),
    ("{O1} sued {O2} over a patent .", {}),
    ("{O1} hired {P1} as {T1} .", {("P1", "O1"): EMP, ("P1", "T1"): TITLE}),
    ("{O1} was founded by {P1} in 1998 .", {("O1", "P1"): FOUNDER, ("P1", "O1"): None}),
    ("{P1} founded {O1} after leaving {O2} .", {("O1", "P1"): FOUNDER, ("P1", "O1"): None, ("P1", "O2"): None}),
    ("{P1} , the founder of {O1} , visited {C1} .", {("O1", "P1"): FOUNDER, ("P1", "O1"): None}),
    ("{P1} was born in {C1} and now lives in {C2} .", {("P1", "C1"): BIRTH, ("P1", "C2"): HOME}),
    ("{P1} lives in {C1} but was born in {C2} .", {("P1", "C1"): HOME, ("P1", "C2"): BIRTH}),
    ("{P1} , a native of {C1} , works for {O1} .", {("P1", "C1"): BIRTH, ("P1", "O1"): EMP}),
    ("{O1} , based in {C1} , hired {P1} .", {("O1", "C1"): HQ, ("P1", "O1"): EMP, ("P1", "C1"): None}),
    ("{O1} moved its headquarters from {C1} to {C2} .", {("O1", "C2"): HQ}),
    ("{P1} met {P2} of {O1} in {C1} .", {("P2", "O1"): EMP}),
    ("{P1} , {T1} of {O1} , said the deal was fair .", {("P1", "T1"): TITLE, ("P1", "O1"): EMP}),
    ("{P1} left {O1} to join {O2} as {T1} .", {("P1", "O2"): EMP, ("P1", "T1"): TITLE}),
    ("{P1} criticised {O1} for its plans in {C1} .", {}),
    ("{P1} visited {C1} last week with {P2} .", {}),
    ("{O1} opened a store in {C1} .", {}),
    ("{O1} is headquartered in {C1} .", {("O1", "C1"): HQ}),
    ("{C1} is home to {O1} , which employs {P1} .", {("O1", "C1"): HQ, ("P1", "O1"): EMP, ("P1", "C1"): None}),
    ("{P1} sold {O1} to {O2} .", {("O1", "O2"): PARENTS, ("O2", "O1"): SUBS, ("P1", "O1"): None}),
    ("{O2} bought {O1} from {P1} .", {("O1", "O2"): PARENTS, ("O2", "O1"): SUBS, ("P1", "O1"): None}),
    ("{P1} is {T1} at {O1} .", {("P1", "T1"): TITLE, ("P1", "O1"): EMP}),
    (
        "{P1} , who was born in {C1} , moved to {C2} to work for {O1} .",
        {("P1", "C1"): BIRTH, ("P1", "O1"): EMP, ("P1", "C2"): None, ("O1", "C2"): None},
    ),
    (
        "Before {P1} joined {O1} , she worked for {O2} in {C1} .",
        {("P1", "O1"): EMP, ("P1", "O2"): None, ("P1", "C1"): None},
    ),
    ("Shares of {O1} rose after {P1} praised its products .", {}),
    ("{P1} interviewed {P2} , {T1} of {O1} , in {C1} .", {("P2", "T1"): TITLE, ("P2", "O1"): EMP}),
]
NEW_FRAMES: list[tuple[str, dict[tuple[str, str], str | None]]] = [  # validation only
    ("In 2019 , {O1} took over {O2} .", {("O1", "O2"): SUBS, ("O2", "O1"): PARENTS}),
    ("{O2} became part of {O1} in 2011 .", {("O1", "O2"): SUBS, ("O2", "O1"): PARENTS}),
    ("{P1} , who grew up in {C1} , was born in {C2} .", {("P1", "C2"): BIRTH, ("P1", "C1"): None}),
    (
        "{O1} , which {P1} started in a garage , now employs {P2} .",
        {("O1", "P1"): FOUNDER, ("P2", "O1"): EMP, ("P1", "O1"): None},
    ),
    ("{P1} turned down an offer from {O1} and stayed at {O2} .", {("P1", "O2"): EMP}),
    ("The head office of {O1} is in {C1} , near the station .", {("O1", "C1"): HQ}),
]
NAMES = {  # (training names, validation names); the two never share a name
    "P": (
        "Maria Lopez,John Carter,Aiko Tanaka,Pierre Dubois,Olga Ivanova,Samuel Okafor,Hannah Schmidt,Rahul Mehta,"
        "Lucia Rossi,Tom Becker,Fatima Haddad,Erik Larsen,Grace Kim,David Cohen,Anna Kowalska,Miguel Santos,"
        "Chen Wei,Laura Brown,Ivan Petrov,Sofia Moreno,Kwame Mensah,Julia Fischer,Omar Farouk,Emma Wilson",
        "Ingrid Berg,Tariq Aziz,Mei Lin,Jacques Moreau,Elena Popescu,Daniel Osei,Clara Hoffmann,Vikram Singh,"
        "Giulia Conti,Lars Nilsson,Amara Diallo,Sarah Miller",
    ),
    "O": (
        "Northwind Traders,Helix Biotech,Apex Motors,Orion Airlines,Silverline Energy,Maple Insurance,"
        "Harbor Shipping,Atlas Mining,Blue River Foods,Kestrel Software,Sunrise Hotels,Vertex Capital,Nordic Steel,"
        "Crescent Media,Quantum Textiles,Pioneer Robotics,Redwood Pharma,Summit Glass,Beacon Analytics",
        "Polaris Telecom,Granite Bank,Summit Pharmaceuticals,Falcon Logistics,Evergreen Trust,Cobalt Robotics,"
        "Lighthouse Press,Aurora Dairy,Juniper Labs",
    ),
    "C": (
        "Paris,New York,Buenos Aires,Nairobi,Tokyo,Berlin,Cape Town,Oslo,Lima,Mumbai,Cairo,Toronto,Madrid,Hanoi,"
        "Warsaw,Rio de Janeiro,Sydney,Dublin,Lagos,Vienna,Istanbul,Chicago",
        "Lisbon,Seoul,Accra,Montreal,Prague,Quito,Helsinki,Manila,San Francisco,Kuala Lumpur",
    ),
    "T": (
        "chief executive,chief engineer,spokeswoman,general counsel,chairman,finance director,head of research,"
        "sales director,chief economist,press officer",
        "chief executive,chief engineer,spokeswoman,chairman,finance director,head of design,chief scientist",
    ),
}


def fill(frame: str, names: dict[str, list[str]], rng: random.Random) -> tuple[list[str], dict[str, tuple[int, int]]]:
    """A frame's tokens with distinct names in its slots; each slot's token span (end inclusive)."""
    tokens: list[str] = []
    spans: dict[str, tuple[int, int]] = {}
    slots = re.findall(r"\{(\w\d)\}", frame)
    chosen: dict[str, str] = {}
    for kind in sorted({s[0] for s in slots}):
        picks = rng.sample(names[kind], sum(1 for s in slots if s[0] == kind))
        chosen |= dict(zip(sorted(s for s in slots if s[0] == kind), picks, strict=True))
    for word in frame.split():
        m = re.fullmatch(r"\{(\w\d)\}", word)
        if not m:
            tokens.append(word)
            continue
        words = chosen[m.group(1)].split()
        spans[m.group(1)] = (len(tokens), len(tokens) + len(words) - 1)
        tokens += words
    return tokens, spans


def rows_of(frame: tuple[str, dict], names: dict[str, list[str]], rng: random.Random) -> list[dict]:
    """Every candidate pair of one filled frame as a TACRED row."""
    tokens, spans = fill(frame[0], names, rng)
    rows = []
    for a in sorted(spans):
        for b in sorted(spans):
            if a == b or (a[0], b[0]) not in PAIRS:
                continue
            relation = frame[1].get((a, b), NO_RELATION)
            if relation is None:  # a judgement call: left out
                continue
            rows.append(
                {
                    "token": tokens,
                    "subj_start": spans[a][0],
                    "subj_end": spans[a][1],
                    "obj_start": spans[b][0],
                    "obj_end": spans[b][1],
                    "subj_type": TYPES[a[0]],
                    "obj_type": TYPES[b[0]],
                    "relation": relation,
                }
            )
    return rows


def make_split(split: str) -> list[dict]:
    rng = random.Random(SEEDS[split])
    part = 0 if split == "train" else 1
    names = {k: v[part].split(",") for k, v in NAMES.items()}
    frames = FRAMES if split == "train" else FRAMES + NEW_FRAMES
    rows: list[dict] = []
    while len(rows) < SIZES[split]:
        rows += rows_of(rng.choice(frames), names, rng)
    rows = rows[: SIZES[split]]
    return [{"id": f"{split}-{i}", **r} for i, r in enumerate(rows)]


# ---------------------------------------------------------------- baselines

KEYWORDS = [  # (subject type, object type, words anywhere in the sentence, relation): the first match wins
    ("PERSON", "CITY", {"born", "native"}, BIRTH),
    ("PERSON", "CITY", {"lives"}, HOME),
    ("PERSON", "ORGANIZATION", {"joined", "join", "works", "hired", "employs", "at", "of"}, EMP),
    ("PERSON", "TITLE", set(), TITLE),
    ("ORGANIZATION", "PERSON", {"founded", "founder", "started"}, FOUNDER),
    ("ORGANIZATION", "CITY", {"based", "headquartered", "headquarters", "home", "office"}, HQ),
    ("ORGANIZATION", "ORGANIZATION", {"acquired", "bought", "parent", "unit", "sold", "over", "part"}, "order"),
]


def keyword_rule(row: dict) -> str:
    """Words anywhere in the sentence pick the relation for the pair's types; for two companies, the one
    named first is the buyer (which passive voice gets wrong)."""
    words = set(row["token"])
    for subj, obj, cue, relation in KEYWORDS:
        if (row["subj_type"], row["obj_type"]) == (subj, obj) and (not cue or words & cue):
            if relation == "order":
                return SUBS if row["subj_start"] < row["obj_start"] else PARENTS
            return relation
    return NO_RELATION


def baselines(train: list[dict], dev: list[dict]) -> dict[str, dict[str, float]]:
    golds = [r["relation"] for r in dev]
    by_types: dict[tuple[str, str], Counter] = {}
    for r in train:
        by_types.setdefault((r["subj_type"], r["obj_type"]), Counter())[r["relation"]] += 1
    majority = Counter(r["relation"] for r in train).most_common(1)[0][0]
    guesses = {
        f"majority class ({majority})": [majority] * len(dev),
        "most common label of the type pair in train": [
            by_types[(r["subj_type"], r["obj_type"])].most_common(1)[0][0] for r in dev
        ],
        "keyword rule (words in the sentence, first-named company is the buyer)": [keyword_rule(r) for r in dev],
    }
    out = {}
    for name, g in guesses.items():
        out[name] = tacred_scores(golds, g) | {"accuracy": sum(a == b for a, b in zip(golds, g, strict=True)) / len(g)}
    return out


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    splits = {split: make_split(split) for split in SIZES}
    lines = []
    for split, rows in splits.items():
        path = OUT / f"{split}.jsonl"
        path.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows))
        counts = Counter(r["relation"] for r in rows)
        sentences = len({" ".join(r["token"]) for r in rows})
        lines.append(
            f"{split}.jsonl: {len(rows)} rows from {sentences} sentences; "
            + ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
        )
    table = [
        "| baseline (dev) | micro P | micro R | micro F1 | macro F1 | accuracy |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, s in baselines(splits["train"], splits["dev"]).items():
        cells = " | ".join(f"{s[k]:.4f}" for k in ("precision", "recall", "f1", "macro_f1", "accuracy"))
        table.append(f"| {name} | {cells} |")
    text = "\n".join(lines) + "\n\n" + "\n".join(table)
    print(text)
    (OUT / "README.md").write_text(
        "# relations_demo\n\nMade-up sentences in TACRED's row format, written by `scripts/make_relations.py` "
        "(deterministic; its docstring tells how). Micro P/R/F1 leave `no_relation` out, as TACRED's scorer "
        "does; accuracy counts it.\n\n" + "\n".join(f"- {line}" for line in lines) + "\n\n" + "\n".join(table) + "\n"
    )


if __name__ == "__main__":
    main()
