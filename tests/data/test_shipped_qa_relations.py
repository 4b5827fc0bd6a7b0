"""The shipped QA and relation sets: their scripts rebuild them byte for byte, they pass the readers' checks,
and they hold what makes a model read (held-out names, unanswerable questions, direction by word order)."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from ftcli.data.qa import read_qa_file
from ftcli.data.relations import read_relation_file

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "ftcli" / "assets"


def script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


@pytest.mark.parametrize(
    ("name", "target", "files"),
    [
        (
            "make_qa",
            "ASSETS",
            ["qa_demo/train.json", "qa_demo/dev.json", "qa_demo_v2/train.json", "qa_demo_v2/dev.json"],
        ),
        ("make_relations", "OUT", ["train.jsonl", "dev.jsonl"]),
    ],
)
def test_the_scripts_rebuild_the_shipped_files(tmp_path: Path, name: str, target: str, files: list[str]) -> None:
    module = script(name)
    shipped = getattr(module, target)
    setattr(module, target, tmp_path)
    module.main()
    for f in files:
        assert (tmp_path / f).read_bytes() == (shipped / f).read_bytes(), f


def test_the_qa_sets_read_cleanly() -> None:
    v1 = {s: read_qa_file(ASSETS / "qa_demo" / f"{s}.json") for s in ("train", "dev")}
    v2 = {s: read_qa_file(ASSETS / "qa_demo_v2" / f"{s}.json") for s in ("train", "dev")}
    assert (len(v1["train"]), len(v1["dev"])) == (2000, 300)
    assert all(r["answers"]["text"] for rows in v1.values() for r in rows)
    for split in ("train", "dev"):  # v2 = v1's questions + unanswerable ones about the same paragraphs
        answerable = [r for r in v2[split] if r["answers"]["text"]]
        assert answerable == v1[split]
        assert 0.25 < 1 - len(answerable) / len(v2[split]) < 0.4


def test_qa_validation_names_never_occur_in_training() -> None:
    make_qa = script("make_qa")
    train = (ASSETS / "qa_demo" / "train.json").read_text()
    for held_out in (make_qa.PEOPLE[1], make_qa.ORGS[1], make_qa.CITIES[1]):
        assert not [n for n in held_out.split(",") if n in train]


def test_relation_direction_follows_the_sentence() -> None:
    rows = read_relation_file(ASSETS / "relations_demo" / "train.jsonl")
    assert len(rows) == 3000 and len(read_relation_file(ASSETS / "relations_demo" / "dev.jsonl")) == 500
    by_pair = defaultdict(dict)
    for r in rows:
        by_pair[r.text][(r.subj.start, r.obj.start)] = r.relation
    # every "X acquired Y" row has its "Y's parent is X" row in the same sentence, and the first-named company
    # is the buyer in some sentences and the bought one in others
    subsidiaries = [
        (text, pair) for text, pairs in by_pair.items() for pair, rel in pairs.items() if rel == "org:subsidiaries"
    ]
    assert subsidiaries
    assert all(by_pair[t].get(p[::-1], "org:parents") == "org:parents" for t, p in subsidiaries)
    buyer_first = {p[0] < p[1] for _, p in subsidiaries}
    assert buyer_first == {True, False}


def test_one_sentence_gives_rows_with_different_labels() -> None:
    rows = [json.loads(line) for line in (ASSETS / "relations_demo" / "dev.jsonl").read_text().splitlines()]
    labels = defaultdict(set)
    for r in rows:
        labels[" ".join(r["token"])].add(r["relation"])
    assert sum(len(v) > 1 for v in labels.values()) > len(labels) / 2
