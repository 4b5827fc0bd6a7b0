"""Token classification (NER): entity metrics as seqeval computes them, CoNLL / JSONL / tag schemes read
alike, first sub-word labels and stride windows, a tiny run through train / eval / predict / plain
transformers' pipeline / ONNX, every strategy, and bad input named by file and line."""

# ruff: noqa: E501  (the tables read one row per line)
from __future__ import annotations

import importlib.util
import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
from helpers.data import conll_text, ner_sentence
from helpers.runs import FP32, ftcli
from helpers.spy import Spy, assert_trains_what_it_says, len_trainable

from ftcli.config.errors import FtcliError
from ftcli.metrics.entities import entities, entity_metrics, to_iob2
from ftcli.tasks.task import Loaded

HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnxruntime", "onnxscript", "onnx"))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ner_data")
    rng = random.Random(0)
    for name, n in (("train", 400), ("val", 100)):
        (root / f"{name}.conll").write_text(conll_text([ner_sentence(rng) for _ in range(n)]))
    return root


def _files(data: Path, train: str = "train.conll", val: str = "val.conll") -> list[str]:
    return [
        "model=tiny",
        "task=token_classification",
        "dataset=files",
        f"dataset.train_file={data}/{train}",
        f"dataset.validation_file={data}/{val}",
        "hardware=cpu",
        FP32,
    ]


def _load(cfg):
    """The composed task's view of the composed dataset (its tag_scheme and stride included)."""
    from ftcli.tasks.registry import build_task

    return build_task(cfg.task).load_data(cfg.dataset, 0)


# ---- metrics and tags ------------------------------------------------------------------------------------


def _random_tags(rng: np.random.Generator, n: int) -> list[list[str]]:
    """Sentences of any tags (B/I/E/S of three types, O), invalid sequences included."""
    tags = ["O"] * 6 + [f"{p}-{t}" for p in "BIES" for t in ("PER", "LOC", "ORG")]
    return [list(rng.choice(tags, rng.integers(1, 15))) for _ in range(n)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_entity_metrics_agree_with_seqeval(seed: int) -> None:
    seqeval = pytest.importorskip("seqeval.metrics")
    from seqeval.metrics.sequence_labeling import get_entities, precision_recall_fscore_support

    rng = np.random.default_rng(seed)
    gold = _random_tags(rng, 200)
    pred = [[t if rng.random() < 0.7 else str(rng.choice(["O", "B-PER", "I-LOC", "E-ORG"])) for t in s] for s in gold]
    ours = entity_metrics(gold, pred)
    for sentence in gold[:50]:
        assert entities(sentence) == get_entities(sentence)
    assert ours["f1"] == pytest.approx(seqeval.f1_score(gold, pred), abs=1e-6)
    assert ours["precision"] == pytest.approx(seqeval.precision_score(gold, pred), abs=1e-6)
    assert ours["recall"] == pytest.approx(seqeval.recall_score(gold, pred), abs=1e-6)
    assert ours["accuracy"] == pytest.approx(seqeval.accuracy_score(gold, pred), abs=1e-6)
    assert ours["f1_macro"] == pytest.approx(seqeval.f1_score(gold, pred, average="macro"), abs=1e-6)
    report = seqeval.classification_report(gold, pred, output_dict=True)
    for kind, row in ours["per_type"].items():
        theirs = report[kind]
        assert row["precision"] == pytest.approx(theirs["precision"], abs=1e-6)
        assert row["recall"] == pytest.approx(theirs["recall"], abs=1e-6)
        assert row["f1"] == pytest.approx(theirs["f1-score"], abs=1e-6)
        assert row["support"] == theirs["support"]
    p, r, f, s = precision_recall_fscore_support(gold, pred, average=None)
    assert [v["f1"] for v in ours["per_type"].values()] == pytest.approx(list(f), abs=1e-6)


def test_no_predicted_entity_scores_zero_like_seqeval() -> None:
    seqeval = pytest.importorskip("seqeval.metrics")
    gold = [["B-PER", "I-PER", "O"], ["B-LOC"]]
    all_o = [["O"] * len(s) for s in gold]
    assert entity_metrics(gold, all_o)["f1"] == seqeval.f1_score(gold, all_o, zero_division=0) == 0.0


@pytest.mark.parametrize(
    ("tags", "iob2"),
    [
        (["I-PER", "I-PER", "O", "I-LOC", "B-LOC"], ["B-PER", "I-PER", "O", "B-LOC", "B-LOC"]),  # IOB1
        (
            ["B-PER", "E-PER", "S-LOC", "O", "B-ORG", "I-ORG", "E-ORG"],
            ["B-PER", "I-PER", "B-LOC", "O", "B-ORG", "I-ORG", "I-ORG"],
        ),
        (["B-PER", "I-PER", "I-LOC"], ["B-PER", "I-PER", "B-LOC"]),  # a type change starts an entity
    ],
)
def test_every_scheme_becomes_iob2_with_the_same_entities(tags: list[str], iob2: list[str]) -> None:
    assert to_iob2(tags) == iob2
    assert entities(to_iob2(tags)) == entities(tags)


def _as(scheme: str, sentence: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """An IOB2 sentence rewritten in IOB1 or BIOES."""
    tags = [t for _, t in sentence]
    out = list(tags)
    for kind, start, end in entities(tags):
        for i in range(start, end + 1):
            if scheme == "IOB1":
                out[i] = f"{'B' if i == start and start > 0 and tags[start - 1] == f'I-{kind}' else 'I'}-{kind}"
            else:
                out[i] = f"{'S' if start == end else 'B' if i == start else 'E' if i == end else 'I'}-{kind}"
    return [(w, t) for (w, _), t in zip(sentence, out, strict=True)]


def test_conll_in_any_scheme_and_jsonl_give_the_same_training_data(compose, tmp_path) -> None:
    rng = random.Random(3)
    sentences = [ner_sentence(rng) for _ in range(40)]
    (tmp_path / "iob2.conll").write_text(conll_text(sentences))
    (tmp_path / "iob1.iob").write_text(conll_text([_as("IOB1", s) for s in sentences]))
    (tmp_path / "bioes.bioes").write_text(conll_text([_as("BIOES", s) for s in sentences]))
    rows = [{"tokens": [w for w, _ in s], "ner_tags": [t for _, t in s]} for s in sentences]
    (tmp_path / "s.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = []
    for name, scheme in (("iob2.conll", "IOB2"), ("iob1.iob", "IOB1"), ("bioes.bioes", "BIOES"), ("s.jsonl", "auto")):
        cfg = compose(*_files(tmp_path, name, name), f"task.tag_scheme={scheme}")
        if name.endswith("jsonl"):
            cfg.dataset.text_column, cfg.dataset.label_column = "tokens", "ner_tags"
        data = _load(cfg)
        loaded.append((data.label_names, data.splits["validation"]["labels"]))
    assert all(x == loaded[0] for x in loaded[1:])
    names = loaded[0][0]
    assert names == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert [[names[i] for i in s] for s in loaded[0][1]] == [[t for _, t in s] for s in sentences]


def test_first_subwords_carry_the_labels_and_long_sentences_are_windowed(compose, data) -> None:
    from ftcli.data.words import IGNORE, sentences_of
    from ftcli.models.text import load_tokenizer
    from ftcli.tasks.registry import build_task
    from ftcli.tasks.task import TaskData

    cfg = compose(*_files(data), "model.max_length=16", "task.stride=4")
    task = build_task(cfg.task)
    long = [w for _ in range(6) for w, _ in ner_sentence(random.Random(1))] + ["unbelievably", "Tanaka"]
    import datasets

    ds = datasets.Dataset.from_dict({"tokens": [long, ["Paris", "."]], "labels": [list(range(len(long))), [7, 8]]})
    alphabet = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ ."
    tok = load_tokenizer(cfg.model, Path(cfg.cache_dir), [alphabet] * 3)  # a vocab of letters: words split up
    enc = task.encode(ds, TaskData({}, [], ["tokens"], cfg.dataset), tok, cfg.model)
    windows = [r for r in enc if r["sentence"] == 0]
    assert len(windows) > 2 and all(len(r["input_ids"]) <= 16 for r in windows)  # split, not truncated
    labelled = [lab for r in windows for lab in r["labels"] if lab != IGNORE]
    assert labelled == list(range(len(long)))  # every word exactly once, in order
    words = tok(long, is_split_into_words=True, add_special_tokens=False).word_ids()
    assert len(words) > 2 * len(long)  # words have several sub-words: only the first is labelled
    first = windows[0]  # [CLS] + the first 14 sub-words + [SEP]
    at = [i - 1 for i, lab in enumerate(first["labels"]) if lab != IGNORE]
    assert at == [p for p in range(14) if p == 0 or words[p] != words[p - 1]][: len(at)] and at
    # the sentences come back whole from the windows' logits, word by word
    width = max(len(r["labels"]) for r in enc)
    labels = np.array([r["labels"] + [IGNORE] * (width - len(r["labels"])) for r in enc])
    logits = np.eye(len(long) + 2)[np.clip(labels, 0, None)]
    out, gold = sentences_of(logits, labels, np.array(enc["sentence"]))
    assert [list(g) for g in gold] == [list(range(len(long))), [7, 8]]
    assert [list(o.argmax(-1)) for o in out] == [list(g) for g in gold]


# ---- a tiny model, end to end ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run(data, tmp_path_factory, cache_dir):
    from hydra import compose, initialize_config_dir

    from ftcli.config.registry import config_dir, register_configs
    from ftcli.train import train

    register_configs()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        overrides = [*_files(data), "strategy=full", "strategy.lr=3e-3", "trainer.epochs=4", "trainer.batch_size=16"]
        cfg = compose("train", overrides=overrides)
    out = tmp_path_factory.mktemp("ner_run")
    cfg.output_dir, cfg.cache_dir = str(out), str(cache_dir)
    return out, train(cfg)


def test_entities_are_learned_far_above_all_o(run) -> None:
    out, result = run
    assert result["f1"] > 0.8, result  # tagging everything O scores 0
    config = json.loads((out / "checkpoints" / "best" / "config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"] and config["id2label"]["0"] == "O"


def test_eval_reproduces_train_with_a_table_per_entity_type(run, compose, tmp_path) -> None:
    from ftcli.evaluate import run_eval

    out, result = run
    metrics = run_eval(compose(f"checkpoint={out}", "hardware=cpu", FP32, config="eval", out=tmp_path / "eval"))
    assert metrics["f1"] == pytest.approx(result["f1"], abs=1e-9) and metrics["metric"] == "f1"
    assert set(metrics["per_type"]) == {"PER", "ORG", "LOC"}
    assert metrics["examples"] == 100 and metrics["entities"] == sum(v["support"] for v in metrics["per_type"].values())
    lo, hi = metrics["ci95"]["f1"]
    assert lo <= metrics["f1"] <= hi
    if (tmp_path / "eval" / "report.md").exists():  # with matplotlib (the plots extra)
        assert "| entity type | precision | recall | f1 | support |" in (tmp_path / "eval" / "report.md").read_text()


def _texts(data: Path) -> list[str]:
    text, out = (data / "val.conll").read_text(), []
    for block in text.split("\n\n"):
        words = [line.split()[0] for line in block.splitlines() if line.strip() and not line.startswith("-DOC")]
        if words:
            out.append(" ".join(words))
    return out


def test_the_plain_pipeline_returns_the_entities_ftcli_predict_returns(run, data, tmp_path) -> None:
    from transformers import pipeline

    out, _ = run
    texts = _texts(data)[:40] + ["Maria Lopez , who founded Helix Biotech , lives in Buenos Aires ."]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    r = ftcli(
        "predict",
        f"checkpoint={out}",
        f"input={tmp_path}/in.jsonl",
        f"output={tmp_path}/out.jsonl",
        "hardware=cpu",
        FP32,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    ours = [json.loads(x)["entities"] for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    tagger = pipeline("token-classification", model=str(out / "checkpoints" / "best"), aggregation_strategy="simple")
    theirs = [tagger(t) for t in texts]
    assert sum(len(e) for e in ours) > len(texts)  # it finds entities
    for text, a, b in zip(texts, ours, theirs, strict=True):
        assert [(e["entity_group"], e["start"], e["end"]) for e in a] == [
            (e["entity_group"], e["start"], e["end"]) for e in b
        ], text
        assert [e["score"] for e in a] == pytest.approx([float(e["score"]) for e in b], abs=1e-5)
        assert all(text[e["start"] : e["end"]] == e["word"] for e in a)  # offsets into the raw text


@pytest.mark.slow  # an end-to-end CLI run of 20-45 s on 2 cores: make test-slow
def test_predict_one_text_prints_entities_with_offsets(run) -> None:
    out, _ = run
    text = "Pele joined Red Cross in Oslo ."
    r = ftcli("predict", f"checkpoint={out}", f"text={text}", "hardware=cpu", FP32)
    assert r.returncode == 0, r.stderr[-2000:]
    found = [json.loads(line) for line in r.stdout.splitlines() if line.strip().startswith("{")]
    assert {(e["entity_group"], e["word"]) for e in found} >= {("ORG", "Red Cross"), ("LOC", "Oslo")}
    empty = ftcli("predict", f"checkpoint={out}", "text= ", "hardware=cpu")
    assert empty.returncode == 2 and "text is empty: there is nothing to tag" in empty.stderr


def test_a_text_longer_than_max_length_is_read_in_windows(run) -> None:
    """tiny reads 64 tokens: a name near the end of a 100-word text is still found, at its offsets."""
    from accelerate import Accelerator

    from ftcli.training.checkpoint import load_checkpoint, task_of

    out, _ = run
    model, tok, run_cfg = load_checkpoint(out / "checkpoints" / "best")
    text = " ".join(["It rained all day ."] * 24) + " Aiko Tanaka flew to Lima yesterday ."
    assert len(tok(text)["input_ids"]) > 64
    acc = Accelerator(cpu=True)
    predictor = task_of(run_cfg).predictor
    (found,) = predictor.predict(Loaded(model, tok, run_cfg.model, acc), [{"text": text}], ["text"], 8, Path("."))
    assert ("PER", text.index("Aiko"), text.index("Aiko") + len("Aiko Tanaka")) in {
        (e["entity_group"], e["start"], e["end"]) for e in found
    }


@pytest.mark.skipif(not HAS_ONNX, reason="onnx/onnxscript/onnxruntime not installed (pip install 'ftcli[export]')")
@pytest.mark.slow  # make test keeps the generic export test (test_eval_predict_export.py)
def test_onnx_export_of_a_tagger_is_verified(run, compose, tmp_path) -> None:
    from helpers.runs import compose_cmd

    from ftcli.export import run_export

    out, _ = run
    res = run_export(compose_cmd("export", f"checkpoint={out}", f"output={tmp_path}/onnx", out=tmp_path))
    assert res["max_abs_diff"] < 1e-4 and res["verified_on"] == 100


@pytest.mark.parametrize("strategy", ["feature_extract", "lora", "bitfit", "partial", "lp_ft", "gradual_unfreeze"])
def test_every_strategy_trains_a_tagger(data, compose, strategy: str, capsys, monkeypatch) -> None:
    """Each strategy trains what it says on a token head: the classifier moves; what it freezes stays bit-identical."""
    from ftcli.train import train

    spy = Spy(monkeypatch)
    overrides = [*_files(data), f"strategy={strategy}", "dataset.max_train_samples=64", "trainer.batch_size=16"]
    result = train(compose(*overrides, "trainer.max_steps=3", "trainer.save_checkpoints=false"))
    assert_trains_what_it_says(spy, strategy, head="classifier.")
    assert result["trainable_params"] == len_trainable(spy) or strategy in ("lp_ft", "gradual_unfreeze")
    if strategy == "feature_extract":  # its YAML asks for mean pooling: a token head says it does not pool
        assert "pooling=mean is for sequence heads" in " ".join(capsys.readouterr().out.split())


# ---- bad input ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "extra", "message"),
    [
        ("ragged.conll", "EU B-ORG\nrejects O\nGerman\n", [], "line 3 of ragged.conll has 1 column(s) where the lines before have 2"),
        ("odd.conll", "EU B-ORG\n\nPeter X-PER\n", [], "tag 'X-PER' in the sentence at line 3 of odd.conll is not a tag of any of IOB1, IOB2, BIOES"),
        ("e.conll", "EU S-ORG\n", ["task.tag_scheme=IOB2"], "tag 'S-ORG' in the sentence at line 1 of e.conll is not a tag of task.tag_scheme=IOB2 (O, B-<type>, I-<type>)"),
        ("empty.jsonl", '{"tokens": ["EU"], "tags": ["B-ORG"]}\n{"tokens": [], "tags": []}\n', [], "row 2 of empty.jsonl: an empty sentence (no tokens)"),
        ("short.jsonl", '{"tokens": ["EU", "x"], "tags": ["B-ORG"]}\n', [], "row 1 of short.jsonl: 2 tokens but 1 tags"),
        ("text.jsonl", '{"tokens": "EU rejects", "tags": ["B-ORG", "O"]}\n', [], "row 1 of text.jsonl: the tokens are 'EU rejects', not a list"),
    ],
)  # fmt: skip
def test_bad_tag_files_name_the_line(compose, data, tmp_path, name, text, extra, message) -> None:
    (tmp_path / name).write_text(text)
    cfg = compose(*_files(data, val=str(tmp_path / name)), *extra)
    cfg.dataset.validation_file = str(tmp_path / name)
    if name.endswith("jsonl"):
        cfg.dataset.text_column, cfg.dataset.label_column = "tokens", "tags"
        cfg.dataset.train_file = str(tmp_path / name)
    with pytest.raises(FtcliError, match=re.escape(message)):
        _load(cfg)


def test_an_unknown_tag_scheme_is_refused_before_anything_loads(compose) -> None:
    from ftcli.config.validate import validate

    with pytest.raises(FtcliError, match=re.escape("task.tag_scheme=IOB3: must be one of auto, IOB1, IOB2, BIOES")):
        validate(compose("dataset=ner_demo", "task.tag_scheme=IOB3"))


def test_the_shipped_ner_demo_chooses_its_task_and_holds_unseen_names(compose) -> None:
    cfg = compose("dataset=ner_demo", "model=tiny")
    assert cfg.task.name == "token_classification"
    data = _load(cfg)
    assert data.label_names == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert (len(data.splits["train"]), len(data.splits["validation"])) == (600, 200)

    def names(split: str) -> set[str]:
        found = set()
        for words, tags in zip(data.splits[split]["tokens"], data.splits[split]["labels"], strict=True):
            found |= {" ".join(words[s : e + 1]) for _, s, e in entities([data.label_names[t] for t in tags])}
        return found

    assert not names("train") & names("validation")  # validation needs context, not memory
