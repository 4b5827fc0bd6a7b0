"""Synthetic data with a known rule, so that a trained model's numbers mean something: GLUE's layout, topics,
named entities, scores."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from ftcli.config.schemas import GLUE_TASKS

# ---- GLUE: nyu-mll/glue's layout, labels that follow the first word

GLUE_COLUMNS = {  # the hub dataset's columns and label ids
    "cola": (["sentence"], 2),
    "sst2": (["sentence"], 2),
    "mrpc": (["sentence1", "sentence2"], 2),
    "stsb": (["sentence1", "sentence2"], None),
    "qqp": (["question1", "question2"], 2),
    "mnli": (["premise", "hypothesis"], 3),
    "qnli": (["question", "sentence"], 2),
    "rte": (["sentence1", "sentence2"], 2),
    "wnli": (["sentence1", "sentence2"], 2),
}

GLUE_WORDS = ["red", "blue", "green", "cat", "dog", "runs", "sleeps", "big", "small", "the"]


def glue_split(task: str, n: int, seed: int) -> dict[str, list]:
    """Rows whose label follows the first word (a rule a tiny model can learn); test labels are -1, as GLUE's."""
    rng = np.random.default_rng(seed)
    columns, k = GLUE_COLUMNS[task]
    texts = {c: [" ".join(rng.choice(GLUE_WORDS, rng.integers(3, 8))) for _ in range(n)] for c in columns}
    first = np.array([GLUE_WORDS.index(t.split()[0]) for t in texts[columns[0]]])
    label = (first % 6) * 1.0 if k is None else first % k
    return {**texts, "label": label.tolist(), "idx": list(range(n))}


def make_glue(root: Path) -> Path:
    """nyu-mll/glue's layout: <task>/<split>-00000-of-00001.parquet and the configs in README.md."""
    import pandas as pd

    configs = []
    for task in GLUE_TASKS:
        splits = {"train": 96, "validation": 48, "test": 8}
        if task == "mnli":
            splits = {"train": 96, "validation_matched": 48, "validation_mismatched": 40, "test_matched": 8}
        entries = []
        for i, (split, n) in enumerate(splits.items()):
            (root / task).mkdir(parents=True, exist_ok=True)
            frame = pd.DataFrame(glue_split(task, n, seed=i))
            if split.startswith("test"):
                frame["label"] = -1
            frame.to_parquet(root / task / f"{split}-00000-of-00001.parquet")
            entries.append(f"  - split: {split}\n    path: {task}/{split}-*")
        configs.append(f"- config_name: {task}\n  data_files:\n" + "\n".join(entries))
    (root / "README.md").write_text("---\nconfigs:\n" + "\n".join(configs) + "\n---\n# GLUE, a local sample\n")
    return root


# ---- multi-label topics: a topic is a label exactly when its keyword occurs

TOPICS = ["sports", "politics", "science", "food", "music", "weather"]

KEYWORDS = {
    "sports": "goal",
    "politics": "vote",
    "science": "atom",
    "food": "bread",
    "music": "song",
    "weather": "rain",
}

FILLER = ["the", "a", "today", "again", "news", "we", "saw", "big", "small", "late"]


def topic_rows(n: int, seed: int) -> list[dict]:
    """2–6 words; a topic is a label exactly when its keyword occurs (a known rule a tiny model learns fast)."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        topics = sorted(rng.choice(TOPICS, rng.integers(0, 3), replace=False), key=TOPICS.index)
        words = [*[KEYWORDS[t] for t in topics], *rng.choice(FILLER, rng.integers(2, 5))]
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "labels": list(topics)})
    return rows


# ---- named entities in CoNLL

PER = ["Maria Lopez", "John Carter", "Aiko Tanaka", "Olga Ivanova", "Pele", "Samuel Okafor"]

ORG = ["Helix Biotech", "Red Cross", "Bank of Lisbon", "Apex Motors", "Orion Airlines"]

LOC = ["Paris", "New York", "Buenos Aires", "Oslo", "Cape Town", "Lima"]

FRAMES = [
    "{PER} joined {ORG} in {LOC} .",
    "{PER} flew to {LOC} yesterday .",
    "The office of {ORG} is in {LOC} .",
    "{PER} met {PER} at {ORG} .",
    "It rained all day .",
    "Yesterday {PER} left {LOC} for {LOC} .",
]


def ner_sentence(rng: random.Random) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for token in rng.choice(FRAMES).split():
        if token[0] == "{":
            kind = token[1:-1]
            words = rng.choice({"PER": PER, "ORG": ORG, "LOC": LOC}[kind]).split()
            rows += [(w, f"{'B' if i == 0 else 'I'}-{kind}") for i, w in enumerate(words)]
        else:
            rows.append((token, "O"))
    return rows


def conll_text(sentences: list[list[tuple[str, str]]]) -> str:
    return "-DOCSTART- -X- O\n\n" + "".join("".join(f"{w} {t}\n" for w, t in s) + "\n\n" for s in sentences)


# ---- regression: a score counted from the words

SCORE_WORDS = ["alpha", "beta", "gamma", "delta", "omega", "zeta", "theta", "kappa", "sigma", "lambda"]

UP, DOWN = {"alpha", "beta", "gamma"}, {"omega", "zeta"}


def score_rows(n: int, seed: int) -> list[tuple[str, float]]:
    """Sentences of 3–12 words; the score counts UP words minus DOWN words: a function of the text."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words = [rng.choice(SCORE_WORDS) for _ in range(rng.randint(3, 12))]
        rows.append((" ".join(words), float(sum(w in UP for w in words) - sum(w in DOWN for w in words))))
    return rows


QA_ORGS = ["Helix", "Apex", "Orion", "Summit", "Cobalt", "Falcon", "Lumen", "Nimbus", "Vertex", "Zephyr"]
QA_PEOPLE = ["Maria", "John", "Aiko", "Olga", "Samuel", "Priya", "Tariq", "Elena", "Kenji", "Nina"]
QA_CITIES = ["Paris", "Oslo", "Lima", "Quito", "Accra", "Seoul", "Prague", "Lisbon", "Manila", "Dakar"]


def qa_rows(n: int, seed: int, unanswerable: float = 0.0) -> list[dict]:
    """Flat SQuAD rows: a paragraph says who founded a made-up company and where it is, in either order; the
    question asks who or where, so a model must read it (the paragraph's first name is right half the time). With
    ``unanswerable`` > 0, that share asks about a company the paragraph does not mention (answers empty)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        org, other = rng.sample(QA_ORGS, 2)
        facts = [
            (f"{org} was founded by ", rng.choice(QA_PEOPLE), f"Who founded {org} ?"),
            (f"{org} is based in ", rng.choice(QA_CITIES), f"Where is {org} based ?"),
        ]
        rng.shuffle(facts)
        context, starts = "", []
        for before, answer, _ in facts:
            starts.append(len(context) + len(before))
            context += f"{before}{answer} . "
        k = rng.randrange(2)
        question, answer = facts[k][2], facts[k][1]
        if rng.random() < unanswerable:
            question, answer = question.replace(org, other), None
        answers = {"text": [answer], "answer_start": [starts[k]]} if answer else {"text": [], "answer_start": []}
        rows.append({"id": f"q{seed}-{i}", "context": context.strip(), "question": question, "answers": answers})
    return rows


def relation_rows(n: int, seed: int) -> list[dict]:
    """TACRED token rows: a sentence names two people and a company; one founded it, the other works there
    (either order, active or passive). Each row asks about one (person, company) or the (person, person) pair, so
    the entity types alone cannot tell founded_by from employee_of: only which words are marked can."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        org = rng.choice(QA_ORGS)
        founder, worker = rng.sample(QA_PEOPLE, 2)
        if rng.random() < 0.5:
            words = [founder, "founded", org, "and", "hired", worker, "."]
        else:
            words = [worker, "works", "for", org, ",", "which", "was", "founded", "by", founder, "."]
        at = {w: words.index(w) for w in (org, founder, worker)}
        subj, obj, relation = rng.choice(
            [(founder, org, "per:founded"), (worker, org, "per:employee_of"), (founder, worker, "no_relation")]
        )
        rows.append(
            {
                "id": f"r{seed}-{i}",
                "token": words,
                "subj_start": at[subj],
                "subj_end": at[subj],
                "obj_start": at[obj],
                "obj_end": at[obj],
                "subj_type": "PERSON",
                "obj_type": "ORGANIZATION" if obj == org else "PERSON",
                "relation": relation,
            }
        )
    return rows
