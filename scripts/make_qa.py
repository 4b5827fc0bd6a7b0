#!/usr/bin/env python
"""Make ftcli/assets/qa_demo and qa_demo_v2: small extractive QA sets in SQuAD's JSON layout.

Each paragraph tells facts about a few made-up people and companies (who founded what and when, where a
company is based, what it makes, how many people it employs, who works where as what, who was born where,
which company bought which), each fact in one of several wordings, mixed with sentences that only add
distractors (a person visiting a city, a year something else happened). Every paragraph holds several
entities of each type, so the answer is never "the only city in the text". Questions are paraphrases
("Who started X?" for "X was founded by Y"), of seven kinds (person, company, city, year, job, product,
number). The validation files use names that training never sees, and about one wording in five of both
statements and questions is held out of training.

qa_demo_v2 holds the same paragraphs and answerable questions plus unanswerable ones (SQuAD 2.0 style):
questions about a fact the paragraph does not state, about an entity it does name — "Where was Y born?"
beside other people's birthplaces, or "Which company bought X?" where X is the buyer.

Deterministic: running it again writes the same files, and prints (and writes into the README.md) two
trivial baselines on the validation questions, scored with SQuAD's official rules:

    python scripts/make_qa.py          # → ftcli/assets/qa_demo{,_v2}/{train,dev}.json, README.md
"""

from __future__ import annotations

import json
import random
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from ftcli.metrics.qa import squad_scores  # noqa: E402

ASSETS = ROOT / "ftcli" / "assets"
SIZES = {"train": 2000, "dev": 300}  # answerable questions; v2 adds about half as many unanswerable
SEEDS = {"train": 26, "dev": 27}
# slot → entity type; d, z, r, e, k, h, m are distractors: entities no fact (and no question) is about
KINDS = dict(p="PER", q="PER", r="PER", o="ORG", b="ORG", e="ORG", c="CITY", d="CITY", y="YEAR", z="YEAR")
KINDS |= dict(j="JOB", k="JOB", g="PRODUCT", h="PRODUCT", n="NUMBER", m="NUMBER")

# Each fact: its slots, its wordings ("says") and its questions by the slot they ask for ("asks"). The last
# wording of every list of four or more is held out of training (validation only).
FACTS: dict[str, dict] = {
    "founded": {
        "says": [
            "{p} founded {o} in {y}.",
            "{o} was founded by {p} in {y}.",
            "In {y}, {p} set up {o}.",
            "{p} established {o} in {y}.",
            "{o} was started in {y} by {p}.",
        ],
        "asks": {
            "p": [
                "Who founded {o}?",
                "Who was the founder of {o}?",
                "Which person started {o}?",
                "Who set up {o}?",
                "By whom was {o} created?",
            ],
            "y": ["When was {o} founded?", "In what year was {o} established?", "When did {p} start {o}?"],
            "o": ["Which company did {p} found?", "What did {p} set up?", "What organisation was started by {p}?"],
        },
    },
    "based": {
        "says": [
            "{o} is based in {c}.",
            "{o} has its headquarters in {c}.",
            "The head office of {o} is in {c}.",
            "{o} runs its business from {c}.",
        ],
        "asks": {
            "c": [
                "Where is {o} based?",
                "In which city is {o} headquartered?",
                "Where are the headquarters of {o}?",
                "What city is home to {o}?",
            ],
            "o": ["Which company is based in {c}?", "What firm has its head office in {c}?"],
        },
    },
    "makes": {
        "says": ["{o} makes {g}.", "{o} produces {g}.", "{g} are made by {o}.", "{o} is known for its {g}."],
        "asks": {
            "g": [
                "What does {o} make?",
                "What does {o} produce?",
                "What products come from {o}?",
                "What is {o} known for?",
            ],
            "o": ["Which company makes {g}?", "Who produces {g}?", "Where do the {g} come from?"],
        },
    },
    "staff": {
        "says": [
            "{o} employs {n} people.",
            "{o} has {n} employees.",
            "About {n} people work for {o}.",
            "{o} has a staff of {n}.",
        ],
        "asks": {
            "n": [
                "How many people work at {o}?",
                "How many employees does {o} have?",
                "How big is the workforce of {o}?",
                "How many people are on the payroll of {o}?",
            ]
        },
    },
    "born": {
        "says": [
            "{p} was born in {c}.",
            "{p} is a native of {c}.",
            "{c} is the birthplace of {p}.",
            "{p} comes from {c}.",
        ],
        "asks": {
            "c": [
                "Where was {p} born?",
                "What is the birthplace of {p}?",
                "Which city does {p} come from?",
                "Where is {p} from?",
            ],
            "p": ["Who was born in {c}?", "Which person is a native of {c}?"],
        },
    },
    "works": {
        "says": [
            "{p} works as a {j} at {o}.",
            "{p} is a {j} at {o}.",
            "{o} employs {p} as a {j}.",
            "At {o}, {p} has a job as a {j}.",
        ],
        "asks": {
            "j": [
                "What is the job of {p}?",
                "What does {p} do at {o}?",
                "What is the occupation of {p}?",
                "What work does {p} do?",
            ],
            "o": [
                "Where does {p} work?",
                "Which company employs {p}?",
                "Who is the employer of {p}?",
                "For whom does {p} work?",
            ],
            "p": ["Who works as a {j} at {o}?", "Who is the {j} at {o}?"],
        },
    },
    "acquired": {
        "says": [
            "{o} acquired {b} in {y}.",
            "{b} was bought by {o} in {y}.",
            "In {y}, {o} took over {b}.",
            "{b} became part of {o} in {y}.",
        ],
        "asks": {
            "o": [
                "Which company acquired {b}?",
                "Who bought {b}?",
                "Which firm took over {b}?",
                "Who is the owner of {b} now?",
            ],
            "b": ["Which company did {o} buy?", "What did {o} acquire?", "Which firm was taken over by {o}?"],
            "y": ["When did {o} buy {b}?", "In what year was {b} acquired?", "When was {b} taken over?"],
        },
    },
}
# Clauses that put an entity of the answer's type next to a fact's own entity, in the fact's sentence (joined
# by CONNECTORS) or alone: "Maria Lopez now lives in Oslo" beside "Maria Lopez was born in Lima".
TWISTS = {
    "born": ["{p} now lives in {d}", "{p} moved to {d} as a child", "{r} also grew up near {c}"],
    "based": [
        "{o} also has a small office in {d}",
        "{o} sells most of its products in {d}",
        "{e} has a warehouse in {c}",
    ],
    "makes": ["{o} stopped making {h} years ago", "{o} buys {h} from other firms", "{e} sells {g} in its shops"],
    "staff": ["{o} had {m} employees ten years ago", "{o} plans to hire {m} more people"],
    "founded": ["{p} had left {e} the year before", "{p} had finished school in {z}", "{r} joined {o} a year later"],
    "works": ["{p} used to be a {k}", "{p} previously worked for {e}", "{r} also works at {o} as a {k}"],
    "acquired": ["{o} had first tried to buy {b} in {z}", "{e} had also wanted {b}", "{o} sold {e} soon after"],
}
# half put the twist first, so the first entity of the answer's type in the sentence is often the wrong one
CONNECTORS = ["{fact}, and {twist}.", "{fact}, while {twist}.", "While {twist}, {fact_}.", "{twist}; {fact_}."]
FILLERS = [  # sentences no question is about, with entities of every type
    "{p} often visits {d}.",
    "In {z}, {o} moved into a larger building.",
    "{p} met {q} at a conference in {d}.",
    "{e} opened a small office in {d} in {z}.",
    "Last year {p} gave a talk about {h}.",
    "{p} and {r} studied together in {d}.",
]
PEOPLE = (
    "Maria Lopez,John Carter,Aiko Tanaka,Pierre Dubois,Olga Ivanova,Samuel Okafor,Hannah Schmidt,Rahul Mehta,"
    "Lucia Rossi,Tom Becker,Fatima Haddad,Erik Larsen,Grace Kim,David Cohen,Anna Kowalska,Miguel Santos,Chen Wei,"
    "Laura Brown,Ivan Petrov,Sofia Moreno,Kwame Mensah,Julia Fischer,Omar Farouk,Emma Wilson,Paolo Bianchi,"
    "Nadia Rahman,Peter Novak,Yuki Sato,Carlos Mendes,Helen Park,Isabel Cruz,Martin Weber,Leila Nasser,Oscar Lindqvist",
    "Ingrid Berg,Tariq Aziz,Mei Lin,Jacques Moreau,Elena Popescu,Daniel Osei,Clara Hoffmann,Vikram Singh,"
    "Giulia Conti,Lars Nilsson,Amara Diallo,Sarah Miller,Kenji Watanabe,Ana Ferreira,Nina Horvat,Rosa Delgado",
)
ORGS = (
    "Northwind Traders,Helix Biotech,Apex Motors,Orion Airlines,Silverline Energy,Maple Insurance,Harbor Shipping,"
    "Atlas Mining,Blue River Foods,Kestrel Software,Sunrise Hotels,Vertex Capital,Nordic Steel,Crescent Media,"
    "Quantum Textiles,Pioneer Robotics,Redwood Pharma,Summit Glass,Beacon Analytics,Ironclad Security,"
    "Lumen Optics,Cascade Water,Meridian Foods,Solstice Games,Tidewater Logistics",
    "Polaris Telecom,Granite Bank,Summit Pharmaceuticals,Falcon Logistics,Evergreen Trust,Cobalt Robotics,"
    "Lighthouse Press,Aurora Dairy,Copperfield Tools,Juniper Labs",
)
CITIES = (
    "Paris,New York,Buenos Aires,Nairobi,Tokyo,Berlin,Cape Town,Oslo,Lima,Mumbai,Cairo,Toronto,Madrid,Hanoi,"
    "Warsaw,Rio de Janeiro,Sydney,Dublin,Lagos,Vienna,Istanbul,Chicago,Melbourne,Bogota,Lyon,Hamburg,Osaka",
    "Lisbon,Seoul,Accra,Montreal,Prague,Quito,Helsinki,Manila,San Francisco,Kuala Lumpur,Reykjavik,Edinburgh",
)
JOBS = (  # none starts with a vowel: the wordings say "a {j}"
    "chemist,pilot,bookkeeper,nurse,designer,software engineer,lawyer,plumber,tailor,translator,"
    "data analyst,chef,mechanic,teacher,photographer,sales manager",
    "geologist,pharmacist,surveyor,surgeon,librarian,carpenter",
)
PRODUCTS = (
    "solar panels,electric bicycles,vaccines,running shoes,frozen pizzas,wind turbines,office chairs,"
    "mobile games,glass bottles,hearing aids,garden tools,kitchen knives,video cameras,wool sweaters,toys",
    "water filters,dental implants,ski boots,paper cups,smart watches",
)


@dataclass
class Mention:
    start: int
    end: int
    kind: str
    text: str


@dataclass
class Paragraph:
    """A context built sentence by sentence, with every entity mention and where each sentence is."""

    text: str = ""
    mentions: list[Mention] = field(default_factory=list)
    sentences: list[tuple[int, int]] = field(default_factory=list)

    def add(self, template: str, fill: dict[str, str]) -> dict[str, Mention]:
        """Append one sentence; the mentions of its slots by slot name."""
        if self.text:
            self.text += " "
        start, found = len(self.text), {}
        for i, piece in enumerate(re.split(r"\{(\w)\}", template)):
            if i % 2 == 0:
                self.text += piece[:1].upper() + piece[1:] if len(self.text) == start else piece
                continue
            value = fill[piece]
            if len(self.text) == start:
                value = value[:1].upper() + value[1:]
            found[piece] = Mention(len(self.text), len(self.text) + len(value), KINDS[piece], value)
            self.mentions.append(found[piece])
            self.text += value
        self.sentences.append((start, len(self.text)))
        return found


def pools(split: str) -> dict[str, list[str]]:
    """Names by slot kind for a split: validation's people, companies and cities are never in training."""
    part = 0 if split == "train" else 1
    people, orgs, cities = (PEOPLE[part].split(","), ORGS[part].split(","), CITIES[part].split(","))
    # jobs and products are common nouns: validation adds a few unseen ones to training's
    jobs = ",".join(JOBS[: part + 1]).split(",")
    products = ",".join(PRODUCTS[: part + 1]).split(",")
    return {"PER": people, "ORG": orgs, "CITY": cities, "JOB": jobs, "PRODUCT": products}


def wordings(options: list[str], split: str) -> list[str]:
    return options[:-1] if split == "train" and len(options) >= 4 else options


def slots_of(template: str) -> set[str]:
    return set(re.findall(r"\{(\w)\}", template))


def plan_facts(rng: random.Random, cast: dict[str, list[str]]) -> list[tuple[str, dict[str, str]]]:
    """Which facts a paragraph states, with every fact's slots filled so that each question has one answer:
    founders, jobs, cities and years are never shared by two facts."""
    people, orgs = cast["p"], cast["o"]
    cities, years, jobs, goods = iter(cast["c"]), iter(cast["y"]), iter(cast["j"]), iter(cast["g"])
    facts: list[tuple[str, dict[str, str]]] = []
    founders = iter(rng.sample(people, len(people)))
    for o in orgs:
        if rng.random() < 0.6:
            facts.append(("based", {"o": o, "c": next(cities)}))
        if rng.random() < 0.5:
            facts.append(("makes", {"o": o, "g": next(goods)}))
        if rng.random() < 0.4:
            facts.append(("staff", {"o": o, "n": f"{rng.randrange(12, 60000):,}"}))
        founder = next(founders, None)
        if founder and rng.random() < 0.5:
            facts.append(("founded", {"p": founder, "o": o, "y": next(years)}))
    for p in people:
        if rng.random() < 0.6:
            facts.append(("born", {"p": p, "c": next(cities)}))
        if rng.random() < 0.6:
            facts.append(("works", {"p": p, "o": rng.choice(orgs), "j": next(jobs)}))
    if len(orgs) > 1 and rng.random() < 0.5:
        buyer, bought = rng.sample(orgs, 2)
        facts.append(("acquired", {"o": buyer, "b": bought, "y": next(years)}))
    rng.shuffle(facts)
    return facts


def cast_for(rng: random.Random, names: dict[str, list[str]]) -> dict[str, list[str]]:
    """A paragraph's entities: the cast its facts are about, and distractors (slots d, z, r, e, k, h, m)."""
    n_people, n_orgs = rng.randint(2, 4), rng.randint(2, 3)
    people, orgs = rng.sample(names["PER"], n_people + 2), rng.sample(names["ORG"], n_orgs + 2)
    cities, years = rng.sample(names["CITY"], 10), [str(y) for y in rng.sample(range(1950, 2024), 7)]
    jobs, goods = rng.sample(names["JOB"], 6), rng.sample(names["PRODUCT"], 5)
    return {
        "p": people[:n_people],
        "r": people[n_people:],
        "o": orgs[:n_orgs],
        "e": orgs[n_orgs:],
        "c": cities[:7],  # at most 3 headquarters + 4 birthplaces
        "d": cities[7:],
        "y": years[:4],  # at most 3 founding years + 1 acquisition
        "z": years[4:],
        "j": jobs[:4],
        "k": jobs[4:],
        "g": goods[:3],
        "h": goods[3:],
        "m": [f"{rng.randrange(12, 60000):,}" for _ in range(2)],
    }


def distractors(rng: random.Random, cast: dict[str, list[str]], p: str) -> dict[str, str]:
    """An entity for each distractor slot, ``p`` and a second cast member ``q``."""
    others = [x for x in cast["p"] if x != p]
    return {slot: rng.choice(cast[slot]) for slot in "dzrekhm"} | {"p": p, "q": rng.choice(others)}


def lower_first(template: str) -> str:
    return template if template.startswith("{") else template[:1].lower() + template[1:]


def with_twist(rng: random.Random, kind: str, focus: str, wording: str) -> str:
    """A fact's wording joined with a clause naming another entity of the type its question asks for."""
    same = [t for t in TWISTS[kind] if any(KINDS[x] == KINDS[focus] for x in slots_of(t) & set("dzrekhm"))]
    joined, twist = rng.choice(CONNECTORS), rng.choice(same or TWISTS[kind])
    return joined.format(fact=wording[:-1], fact_=lower_first(wording[:-1]), twist=twist)


def write_paragraph(rng: random.Random, cast: dict[str, list[str]], split: str) -> tuple[Paragraph, list]:
    """A paragraph and its stated facts (kind, fill, mentions, asked slot): each fact in one sentence, most with
    a twist; distractor sentences here and there, some about facts the paragraph does not state."""
    para, stated = Paragraph(), []
    for kind, fill in plan_facts(rng, cast):
        extra = distractors(rng, cast, fill.get("p") or rng.choice(cast["p"]))
        if rng.random() < 0.25:
            para.add(rng.choice(FILLERS), extra | {"o": rng.choice(cast["o"])})
        focus = rng.choice(sorted(FACTS[kind]["asks"]))  # the slot a question about this fact asks for
        wording = rng.choice(wordings(FACTS[kind]["says"], split))
        if rng.random() < 0.6:
            wording = with_twist(rng, kind, focus, wording)
        stated.append((kind, fill, para.add(wording, extra | fill), focus))
    for kind, slot, value in unstated(cast, stated):
        twists = [t for t in TWISTS[kind] if slots_of(t) <= {slot, *"dzrekhm"}]
        if twists and rng.random() < 0.4:  # "X now lives in Oslo" where X's birthplace is not told
            twist = rng.choice(twists)
            para.add(twist + ".", distractors(rng, cast, rng.choice(cast["p"])) | {slot: value})
    return para, stated


def unstated(cast: dict[str, list[str]], stated: list) -> list[tuple[str, str, str]]:
    """(fact kind, key slot, cast member) for each fact about a person or company that is not stated."""
    have = {(kind, fill.get("p") or fill.get("o")) for kind, fill, _, _ in stated}
    wanted = [(k, "p", p) for p in cast["p"] for k in ("born", "works")]
    wanted += [(k, "o", o) for o in cast["o"] for k in ("based", "makes", "staff")]
    return [(k, slot, v) for k, slot, v in wanted if (k, v) not in have]


def answerable(rng: random.Random, para: Paragraph, stated: list, split: str, k: int) -> list[dict]:
    """Up to ``k`` questions about different facts, each with the answer's mention in the paragraph."""
    out = []
    for kind, fill, mentions, slot in rng.sample(stated, min(k, len(stated))):
        template = rng.choice(wordings(FACTS[kind]["asks"][slot], split))
        answer = mentions[slot]
        out.append(
            {
                "question": template.format(**fill),
                "answers": [{"text": para.text[answer.start : answer.end], "answer_start": answer.start}],
                "kind": KINDS[slot],
                "keys": [fill[s] for s in slots_of(template)],
            }
        )
    return out


def unanswerable(rng: random.Random, cast: dict[str, list[str]], stated: list, split: str, k: int) -> list[dict]:
    """Up to ``k`` questions the paragraph cannot answer, about entities it names."""
    have = {(kind, fill.get("p") or fill.get("o")) for kind, fill, _, _ in stated}
    options = []
    for p in cast["p"]:
        options += [("born", "c", {"p": p}), ("works", "o", {"p": p}), ("works", "j", {"p": p})]
    for o in cast["o"]:
        options += [("based", "c", {"o": o}), ("makes", "g", {"o": o}), ("staff", "n", {"o": o})]
        options += [("founded", "p", {"o": o})]
    options = [x for x in options if (x[0], x[2].get("p") or x[2].get("o")) not in have]
    founded = {fill["o"] for kind, fill, _, _ in stated if kind == "founded"}
    options = [x for x in options if not (x[0] == "founded" and x[2]["o"] in founded)]
    for kind, fill, _, _ in stated:
        if kind == "acquired":  # the buyer was not bought, nor did the bought company buy
            options += [("acquired", "o", {"b": fill["o"]}), ("acquired", "b", {"o": fill["b"]})]
    out = []
    for kind, slot, fill in rng.sample(options, min(k, len(options))):
        templates = [t for t in wordings(FACTS[kind]["asks"][slot], split) if slots_of(t) <= set(fill)]
        if templates:
            template = rng.choice(templates)
            out.append(
                {"question": template.format(**fill), "answers": [], "kind": KINDS[slot], "keys": list(fill.values())}
            )
    return out


def make_split(split: str) -> tuple[list[dict], list[dict]]:
    """(v1 articles, v2 articles); each article keeps its mentions for the baselines under "_mentions"."""
    rng, names = random.Random(SEEDS[split]), pools(split)
    v1, v2, count = [], [], 0
    while count < SIZES[split]:
        cast = cast_for(rng, names)
        para, stated = write_paragraph(rng, cast, split)
        if len(stated) < 2:
            continue
        n = len(v1)
        asked = answerable(rng, para, stated, split, min(3, SIZES[split] - count))
        impossible = unanswerable(rng, cast, stated, split, rng.randint(1, 2))
        qas = [dict(q, id=f"{split}-{n}-{i}") for i, q in enumerate(asked)]
        nas = [dict(q, id=f"{split}-{n}-u{i}", is_impossible=True) for i, q in enumerate(impossible)]
        count += len(qas)
        meta = {"_mentions": para.mentions, "_sentences": para.sentences}
        title = cast["o"][0]
        v1.append({"title": title, "paragraphs": [{"context": para.text, "qas": qas, **meta}]})
        v2.append({"title": title, "paragraphs": [{"context": para.text, "qas": qas + nas, **meta}]})
    return v1, v2


# ---------------------------------------------------------------- baselines


def first_of_kind(mentions: list[Mention], kind: str, keys: list[str], lo: int = 0, hi: int = 10**9) -> str | None:
    for m in mentions:
        if m.kind == kind and lo <= m.start and m.end <= hi and m.text.lower() not in {k.lower() for k in keys}:
            return m.text
    return None


def baseline_answers(paragraph: dict, qa: dict, rule: str) -> str:
    """ "first": the first entity of the question's answer type in the paragraph; "sentence": the first one
    in the first sentence that names the question's entity (else "first")."""
    mentions, context = paragraph["_mentions"], paragraph["context"]
    if rule == "sentence":
        for lo, hi in paragraph["_sentences"]:
            if all(k.lower() in context[lo:hi].lower() for k in qa["keys"]):
                found = first_of_kind(mentions, qa["kind"], qa["keys"], lo, hi)
                if found:
                    return found
    return first_of_kind(mentions, qa["kind"], qa["keys"]) or ""


def baselines(articles: list[dict]) -> dict[str, dict[str, float]]:
    rows = [(p, qa) for a in articles for p in a["paragraphs"] for qa in p["qas"]]
    golds = [[a["text"] for a in qa["answers"]] for _, qa in rows]
    out = {
        rule: squad_scores([baseline_answers(p, qa, rule) for p, qa in rows], golds) for rule in ("first", "sentence")
    }
    if any(not g for g in golds):
        out["abstain"] = squad_scores([""] * len(rows), golds)
    return out


# ---------------------------------------------------------------- files


def public(articles: list[dict]) -> dict:
    """SQuAD's layout: the generator's bookkeeping (mentions, answer kinds, key entities) left out."""
    data = []
    for a in articles:
        paragraphs = []
        for p in a["paragraphs"]:
            qas = [{k: v for k, v in qa.items() if k not in ("kind", "keys")} for qa in p["qas"]]
            paragraphs.append({"context": p["context"], "qas": qas})
        data.append({"title": a["title"], "paragraphs": paragraphs})
    return {"version": "ftcli-qa-demo", "data": data}


def describe(name: str, articles: list[dict]) -> str:
    qas = [qa for a in articles for p in a["paragraphs"] for qa in p["qas"]]
    words = [len(p["context"].split()) for a in articles for p in a["paragraphs"]]
    impossible = sum(1 for qa in qas if qa.get("is_impossible"))
    return (
        f"{name}: {len(articles)} paragraphs, {len(qas)} questions ({impossible} unanswerable), "
        f"context {min(words)}–{max(words)} words (mean {sum(words) / len(words):.0f})"
    )


def main() -> None:
    lines = []
    results: dict[str, dict] = {}
    for split in SIZES:
        v1, v2 = make_split(split)
        for folder, articles in (("qa_demo", v1), ("qa_demo_v2", v2)):
            (ASSETS / folder).mkdir(parents=True, exist_ok=True)
            path = ASSETS / folder / f"{split}.json"
            path.write_text(json.dumps(public(articles), ensure_ascii=False, separators=(",", ":")) + "\n")
            lines.append(describe(f"{folder}/{split}.json", articles))
            if split == "dev":
                results[folder] = baselines(articles)
    for line in lines:
        print(line)
    table = baseline_table(results)
    print(table)
    for folder in ("qa_demo", "qa_demo_v2"):
        (ASSETS / folder / "README.md").write_text(readme(folder, lines, table))


def baseline_table(results: dict[str, dict]) -> str:
    rows = ["| set | baseline | EM | F1 | HasAns F1 | NoAns F1 |", "| --- | --- | --- | --- | --- | --- |"]
    names = {
        "first": "first entity of the answer's type in the paragraph",
        "sentence": "first entity of the answer's type in the sentence naming the question's entity",
        "abstain": "always abstain",
    }
    for folder, by_rule in results.items():
        for rule, s in by_rule.items():
            has, no = s.get("has_ans_f1"), s.get("no_ans_f1")
            cells = [
                f"{s['exact_match']:.4f}",
                f"{s['f1']:.4f}",
                "" if has is None else f"{has:.4f}",
                "" if no is None else f"{no:.4f}",
            ]
            rows.append(f"| {folder}/dev | {names[rule]} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def readme(folder: str, lines: list[str], table: str) -> str:
    return (
        f"# {folder}\n\n"
        "Made-up paragraphs about people and companies with SQuAD-style questions, written by "
        "`scripts/make_qa.py` (deterministic; its docstring tells how). SQuAD's nested JSON layout, "
        "v1.1 answers (`text`, `answer_start`); `qa_demo_v2` adds unanswerable questions (`answers: []`, "
        "`is_impossible: true`). Validation names never occur in training.\n\n"
        + "\n".join(f"- {line}" for line in lines if line.startswith(folder + "/"))
        + "\n\nTrivial baselines on the validation questions (SQuAD's official scoring, fractions):\n\n"
        + table
        + "\n"
    )


if __name__ == "__main__":
    main()
