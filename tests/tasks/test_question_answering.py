"""Extractive question answering through the Task seam: a tiny model learns spans far above a trivial baseline,
eval reproduces train, plain transformers answers what ftcli predict answers (by the rule of transformers 4's QA
pipeline; transformers 5 has none), SQuAD v2's threshold is tuned, stored and used, ONNX returns start and end
logits, and bad input is named by file and row."""

# ruff: noqa: E501  (override lists and rows read one per line)
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from helpers.data import qa_rows
from helpers.runs import FP32, compose_cmd, ftcli, train_once
from helpers.spy import Spy, assert_trains_what_it_says, len_trainable
from transformers import AutoModelForQuestionAnswering, AutoTokenizer

from ftcli.config.errors import FtcliError
from ftcli.evaluate import run_eval
from ftcli.export import run_export
from ftcli.metrics.qa import squad_scores
from ftcli.predict import run_predict
from ftcli.tasks.objectives.answers import NULL_THRESHOLD
from ftcli.train import train
from ftcli.training.checkpoint import run_config

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from qa_pipeline_check import pipeline_answer  # noqa: E402  (transformers 4's QA pipeline rule)

HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnxruntime", "onnxscript", "onnx"))


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _squad(path: Path, rows: list[dict]) -> Path:
    """SQuAD's nested layout: one paragraph per row."""
    paragraphs = [
        {"context": r["context"], "qas": [{"id": r["id"], "question": r["question"], "answers": [
            {"text": t, "answer_start": s} for t, s in zip(r["answers"]["text"], r["answers"]["answer_start"], strict=True)
        ]}]}
        for r in rows
    ]  # fmt: skip
    path.write_text(json.dumps({"data": [{"title": "t", "paragraphs": paragraphs}]}))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("qa_data")
    _write(root / "train.jsonl", qa_rows(400, 0))
    _squad(root / "dev.json", qa_rows(60, 1))
    _write(root / "train2.jsonl", qa_rows(400, 2, unanswerable=0.3))
    _write(root / "dev2.jsonl", qa_rows(80, 3, unanswerable=0.3))
    return root


def _files(data: Path, train_file: str = "train.jsonl", dev: str = "dev.json") -> list[str]:
    return [
        "model=tiny",
        "task=question_answering",
        "dataset=files",
        f"dataset.train_file={data / train_file}",
        f"dataset.validation_file={data / dev}",
        "trainer.batch_size=16",
        "hardware=cpu",
        FP32,
    ]


@pytest.fixture(scope="module")
def run(data, tmp_path_factory, cache_dir):
    out, _, result = train_once(
        tmp_path_factory, cache_dir, "qa_run", *_files(data), "strategy=full", "trainer.epochs=5"
    )
    return out, result


def _first_person(row: dict) -> str:
    """The trivial baseline: the first name in the paragraph that the question does not hold."""
    return next(w for w in row["context"].split() if w[0].isupper() and w not in row["question"])


@pytest.mark.slow  # the trained QA run (fixture) takes ~2 minutes on 2 cores
def test_spans_are_learned_far_above_the_first_name_baseline(run) -> None:
    out, result = run
    dev = qa_rows(60, 1)
    baseline = squad_scores([_first_person(r) for r in dev], [r["answers"]["text"] for r in dev])["f1"]
    assert baseline < 0.7 and result["f1"] > baseline + 0.25, (baseline, result)
    config = json.loads((out / "checkpoints" / "best" / "config.json").read_text())
    assert config["architectures"] == ["BertForQuestionAnswering"]


@pytest.mark.slow  # the trained QA run (fixture) takes ~2 minutes on 2 cores
def test_eval_reproduces_train_with_intervals(run, compose, tmp_path) -> None:
    out, result = run
    metrics = run_eval(compose(f"checkpoint={out}", "hardware=cpu", FP32, config="eval", out=tmp_path / "eval"))
    assert metrics["f1"] == pytest.approx(result["f1"], abs=1e-9) and metrics["metric"] == "f1"
    assert metrics["examples"] == 60 and "no_ans_f1" not in metrics  # v1.1 data: no HasAns/NoAns split
    lo, hi = metrics["ci95"]["f1"]
    assert lo <= metrics["f1"] <= hi


@pytest.mark.slow  # the trained QA run (fixture) takes ~2 minutes on 2 cores
def test_plain_transformers_answers_what_ftcli_predict_answers(run, data, tmp_path) -> None:
    out, _ = run
    dev = qa_rows(60, 1)
    res = run_predict(
        compose_cmd("predict", f"checkpoint={out}", f"input={data}/dev.json", f"output={tmp_path}/p.jsonl", "hardware=cpu", FP32, out=tmp_path)
    )  # fmt: skip
    assert res["rows"] == 60
    ours = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    folder = out / "checkpoints" / "best"
    model, tok = AutoModelForQuestionAnswering.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
    cfg = run_config(folder)  # the windows the checkpoint was trained on
    theirs = [
        pipeline_answer(model, tok, r["question"], r["context"], cfg.model.max_length, cfg.task.doc_stride) for r in dev
    ]
    assert [(o["start"], o["end"]) for o in ours] == theirs
    assert all(o["answer"] == r["context"][a:b] for o, r, (a, b) in zip(ours, dev, theirs, strict=True))


@pytest.mark.slow  # the trained QA run (fixture) takes ~2 minutes on 2 cores
def test_predict_one_question_prints_its_answer(run) -> None:
    out, _ = run
    question, context = (
        "question=Where is Orion based ?",
        "context=Orion was founded by Nina . Orion is based in Lima .",
    )
    r = ftcli("predict", f"checkpoint={out}", question, context, "hardware=cpu", FP32)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.splitlines()[0].strip() == "Lima"  # the answer first, then its start, end and score
    none = ftcli("predict", f"checkpoint={out}", "question=Who?", "context= ", "hardware=cpu")
    assert none.returncode == 2 and "a question with no context" in none.stderr


@pytest.mark.slow  # two QA runs and a tuned eval: ~2 minutes on 2 cores
def test_squad_v2_tunes_a_threshold_that_predict_then_uses(
    data, compose, tmp_path_factory, cache_dir, tmp_path
) -> None:
    out, _, result = train_once(
        tmp_path_factory, cache_dir, "qa_v2", *_files(data, "train2.jsonl", "dev2.jsonl"), "strategy=full", "task.unanswerable=true", "trainer.epochs=5"
    )  # fmt: skip
    assert {"has_ans_f1", "no_ans_f1", "best_f1", "best_f1_thresh"} <= set(result)
    metrics = run_eval(
        compose(
            f"checkpoint={out}", "hardware=cpu", FP32, "eval.tune_thresholds=true", config="eval", out=tmp_path / "e"
        )
    )
    tuned = metrics["tuned_thresholds"]
    stored = json.loads((out / "checkpoints" / "best" / NULL_THRESHOLD).read_text())
    assert stored["null_threshold"] == tuned["thresholds"]["null_score_diff"]
    assert tuned["metrics"]["f1"] == pytest.approx(metrics["best_f1"])  # fitted on the split it reports
    again = run_eval(compose(f"checkpoint={out}", "hardware=cpu", FP32, config="eval", out=tmp_path / "e2"))
    assert again["f1"] == pytest.approx(metrics["best_f1"]) and again["null_threshold"] == stored["null_threshold"]
    run_predict(
        compose_cmd(
            "predict",
            f"checkpoint={out}",
            f"input={data}/dev2.jsonl",
            f"output={tmp_path}/p.jsonl",
            "hardware=cpu",
            FP32,
            out=tmp_path,
        )
    )
    preds = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert any(p["answer"] for p in preds)
    assert all((p["answer"] == "") == (p["score_diff"] > stored["null_threshold"]) for p in preds)


@pytest.mark.slow  # torch's dynamo exporter takes tens of seconds
@pytest.mark.skipif(not HAS_ONNX, reason="onnx/onnxscript/onnxruntime not installed (pip install 'ftcli[export]')")
def test_onnx_export_returns_verified_start_and_end_logits(run, tmp_path) -> None:
    out, _ = run
    res = run_export(compose_cmd("export", f"checkpoint={out}", f"output={tmp_path}/onnx", out=tmp_path))
    assert res["max_abs_diff"] < 1e-4 and res["verified_on"] >= 60  # windows
    onnx = pytest.importorskip("onnx")  # optional (the export extra): imported where it is needed
    assert [o.name for o in onnx.load(str(tmp_path / "onnx" / "model.onnx")).graph.output] == [
        "start_logits",
        "end_logits",
    ]


def test_unanswerable_questions_need_the_v2_switch(compose, data) -> None:
    with pytest.raises(
        FtcliError,
        match=r"question 'q2-\d+' \(row \d+\) of train2.jsonl has no answer \(SQuAD v2\): set task.unanswerable=true",
    ):
        train(compose(*_files(data, "train2.jsonl", "dev2.jsonl"), "trainer.max_steps=1"))


def test_an_answer_not_at_its_start_names_the_file_and_row(compose, data, tmp_path) -> None:
    rows = qa_rows(3, 5)
    rows[1]["answers"]["answer_start"][0] += 1
    _write(tmp_path / "bad.jsonl", rows)
    with pytest.raises(FtcliError, match=r"^line 2 of .*bad.jsonl: answer '\w+' is not at answer_start=\d+"):
        train(compose(*_files(data, dev=str(tmp_path / "bad.jsonl")), "trainer.max_steps=1"))


@pytest.mark.parametrize("strategy", ["feature_extract", "lora", "bitfit", "partial", "lp_ft", "gradual_unfreeze"])
def test_every_strategy_trains_the_qa_head(data, compose, strategy: str, monkeypatch) -> None:
    """Each strategy trains what it says: the head moves; what the strategy freezes stays bit-identical."""
    spy = Spy(monkeypatch)
    overrides = [*_files(data), f"strategy={strategy}", "dataset.max_train_samples=48", "trainer.max_steps=3"]
    result = train(compose(*overrides, "trainer.save_checkpoints=false"))
    assert_trains_what_it_says(spy, strategy, head="qa_outputs.")
    assert result["trainable_params"] == len_trainable(spy) or strategy in ("lp_ft", "gradual_unfreeze")
