"""Multi-label text classification: metrics as scikit-learn computes them, labels from a list column or 0/1
columns, a tiny run through train / eval (tuned thresholds kept in the checkpoint) / predict / plain
transformers / ONNX, every strategy, and bad labels named by row."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.data import TOPICS, topic_rows
from helpers.runs import FP32, ftcli, load_data
from helpers.spy import Spy, assert_trains_what_it_says, len_trainable

from ftcli.config.errors import FtcliError
from ftcli.metrics.multilabel import bce, multilabel_metrics, sigmoid, tune_thresholds

HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnxruntime", "onnxscript", "onnx"))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_agree_with_scikit_learn(seed: int) -> None:
    from sklearn import metrics as sk

    rng = np.random.default_rng(seed)
    y = (rng.random((300, 7)) < [0.5, 0.3, 0.1, 0.02, 0.6, 0.0, 0.4]).astype(int)  # one label never occurs
    p = np.where(rng.random(y.shape) < 0.8, y, 1 - y)
    p[:, 3] = 0  # never predicted
    ours = multilabel_metrics(y, p, [f"l{i}" for i in range(7)])
    opts = {"zero_division": 0}
    assert ours["f1_micro"] == pytest.approx(sk.f1_score(y, p, average="micro", **opts), abs=1e-6)
    assert ours["f1_macro"] == pytest.approx(sk.f1_score(y, p, average="macro", **opts), abs=1e-6)
    assert ours["precision_micro"] == pytest.approx(sk.precision_score(y, p, average="micro", **opts), abs=1e-6)
    assert ours["recall_micro"] == pytest.approx(sk.recall_score(y, p, average="micro", **opts), abs=1e-6)
    assert ours["precision_macro"] == pytest.approx(sk.precision_score(y, p, average="macro", **opts), abs=1e-6)
    assert ours["subset_accuracy"] == pytest.approx(sk.accuracy_score(y, p), abs=1e-6)
    assert ours["hamming_loss"] == pytest.approx(sk.hamming_loss(y, p), abs=1e-6)
    prec, rec, f1, support = sk.precision_recall_fscore_support(y, p, average=None, **opts)
    for i in range(7):
        row = ours["per_label"][f"l{i}"]
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx((prec[i], rec[i], f1[i]), abs=1e-6)
        assert row["support"] == support[i]


def test_loss_and_sigmoid_match_torch() -> None:
    rng = np.random.default_rng(0)
    logits, y = rng.normal(0, 30, (50, 4)), (rng.random((50, 4)) < 0.5).astype(float)  # large |logits| too
    expected = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(logits), torch.tensor(y))
    assert bce(logits, y) == pytest.approx(float(expected), rel=1e-9)
    np.testing.assert_allclose(sigmoid(logits), torch.sigmoid(torch.tensor(logits)).numpy(), atol=1e-12)


def test_tuned_thresholds_find_each_labels_best_f1() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((400, 3)) < 0.3).astype(int)
    y[:, 2] = 0  # no positive: keeps its threshold
    logits = np.where(y == 1, 1.0, -1.0) + rng.normal(0, 0.4, y.shape) - 1.5  # positives sit below 0.5
    best = tune_thresholds(logits, y, np.full(3, 0.5))
    assert best[0] < 0.5 and best[1] < 0.5 and best[2] == 0.5
    f1 = multilabel_metrics(y, sigmoid(logits) >= best, ["a", "b", "c"])["per_label"]["a"]["f1"]
    assert f1 > multilabel_metrics(y, sigmoid(logits) >= 0.5, ["a", "b", "c"])["per_label"]["a"]["f1"]


def _rows() -> list[dict]:
    return [
        {"text": "a goal and rain", "labels": ["sports", "weather"]},
        {"text": "a vote", "labels": ["politics"]},
        {"text": "nothing at all", "labels": []},
        {"text": "a recipe and a song", "labels": ["food", "music"]},
    ]


def test_a_list_column_and_zero_one_columns_give_the_same_labels(compose, tmp_path) -> None:
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    with (tmp_path / "t.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", *TOPICS])
        w.writerows([[r["text"], *[int(n in r["labels"]) for n in TOPICS]] for r in _rows()])
    files = ["task=text_multilabel", "dataset=files"]
    listed = compose(*files, f"dataset.train_file={tmp_path}/t.jsonl", f"dataset.validation_file={tmp_path}/t.jsonl")
    listed.dataset.label_column, listed.dataset.label_names = "labels", TOPICS
    cols = compose(*files, f"dataset.train_file={tmp_path}/t.csv", f"dataset.validation_file={tmp_path}/t.csv")
    cols.dataset.label_columns = TOPICS
    a, b = load_data(listed.dataset, task="text_multilabel"), load_data(cols.dataset, task="text_multilabel")
    assert a.label_names == b.label_names == TOPICS
    expected = [[float(n in r["labels"]) for n in TOPICS] for r in _rows()]
    assert a.splits["validation"]["labels"] == b.splits["validation"]["labels"] == expected
    inferred = compose(*files, f"dataset.train_file={tmp_path}/t.jsonl", "dataset.label_column=labels")
    assert load_data(inferred.dataset, task="text_multilabel").label_names == sorted(set(TOPICS) - {"science"})


@pytest.mark.parametrize(
    ("rows", "extra", "message"),
    [
        (
            [{"text": "x", "labels": ["sports"]}, {"text": "y", "labels": ["chess"]}],
            [],
            "label 'chess' in row 2 of val.jsonl is not one of the labels ['sports']",
        ),
        ([{"text": "x", "labels": "sports"}], [], "row 1 of val.jsonl: column 'labels' holds 'sports', not a list"),
        (
            [{"text": "x", "sports": 1}, {"text": "y", "sports": 2}],
            ["dataset.label_columns=[sports]"],
            "value 2 in row 2 of val.jsonl (column 'sports') is not 0 or 1",
        ),
    ],
)
def test_bad_labels_name_their_row(compose, tmp_path, rows: list[dict], extra: list[str], message: str) -> None:
    train = [{"text": "x", "labels": ["sports"], "sports": 1}]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    (tmp_path / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = compose(
        "task=text_multilabel",
        "dataset=files",
        f"dataset.train_file={tmp_path}/train.jsonl",
        f"dataset.validation_file={tmp_path}/val.jsonl",
        "dataset.label_column=labels",
        *extra,
    )
    with pytest.raises(FtcliError, match=re.escape(message)):
        load_data(cfg.dataset, task="text_multilabel")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ml_data")
    for name, n, seed in (("train", 1200, 0), ("val", 300, 1)):
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in topic_rows(n, seed)))
    return root


def _files(data: Path) -> list[str]:
    return [
        "model=tiny",
        "task=text_multilabel",
        "dataset=files",
        f"dataset.train_file={data}/train.jsonl",
        f"dataset.validation_file={data}/val.jsonl",
        "dataset.label_column=labels",
        f"dataset.label_names=[{','.join(TOPICS)}]",
        "hardware=cpu",
        FP32,
    ]


@pytest.fixture(scope="module")
def run(data, tmp_path_factory, cache_dir):
    from hydra import compose, initialize_config_dir

    from ftcli.config.registry import config_dir, register_configs
    from ftcli.train import train

    register_configs()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[*_files(data), "strategy=full", "strategy.lr=3e-3", "trainer.epochs=3", "trainer.batch_size=16"],
        )
    out = tmp_path_factory.mktemp("ml_run")
    cfg.output_dir, cfg.cache_dir = str(out), str(cache_dir)
    return out, train(cfg)


def test_a_known_rule_is_learned_far_above_the_majority_baseline(run, data) -> None:
    out, result = run
    # majority per label: every topic is absent from most texts, so the majority predicts no label: F1 0
    gold = np.array([[float(n in r["labels"]) for n in TOPICS] for r in topic_rows(300, 1)])
    assert (gold.mean(0) < 0.5).all()
    assert multilabel_metrics(gold, np.zeros_like(gold), TOPICS)["f1_micro"] == 0.0
    assert result["f1_micro"] > 0.6, result
    assert "name: text_multilabel" in (out / "config.yaml").read_text()
    config = json.loads((out / "checkpoints" / "best" / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification" and config["id2label"]["0"] == "sports"


def test_the_shipped_topics_choose_their_task(compose) -> None:
    cfg = compose("dataset=topics", "model=tiny")
    assert cfg.task.name == "text_multilabel" and list(cfg.dataset.label_names) == TOPICS
    data = load_data(cfg.dataset, task="text_multilabel")
    assert len(data.splits["train"]) == 3000 and len(data.splits["validation"]) == 500
    assert all(sum(row) <= 3 for row in data.splits["validation"]["labels"])


def test_eval_tunes_thresholds_into_the_checkpoint_and_predict_uses_them(run, data, compose, tmp_path) -> None:
    from ftcli.evaluate import run_eval
    from ftcli.runtime.files import verify_manifest

    out, result = run
    best, last = out / "checkpoints" / "best", out / "checkpoints" / "last"
    plain = run_eval(compose(f"checkpoint={out}", "hardware=cpu", FP32, config="eval", out=tmp_path / "e1"))
    assert plain["f1_micro"] == pytest.approx(result["f1_micro"], abs=1e-9)  # eval reproduces train's number
    assert set(plain["per_label"]) == set(TOPICS) and "ece" in plain and "f1_micro" in plain["ci95"]
    tuned = run_eval(
        compose(
            f"checkpoint={out}", "hardware=cpu", FP32, "eval.tune_thresholds=true", config="eval", out=tmp_path / "e2"
        )
    )
    thresholds = json.loads((best / "thresholds.json").read_text())["thresholds"]
    assert thresholds == tuned["tuned_thresholds"]["thresholds"] and list(thresholds) == TOPICS
    assert tuned["tuned_thresholds"]["metrics"]["f1_micro"] >= plain["f1_micro"]  # fitted on this very split
    assert verify_manifest(best) and verify_manifest(last)  # rewritten whole; a linked last/ keeps its own files
    again = run_eval(compose(f"checkpoint={out}", "hardware=cpu", FP32, config="eval", out=tmp_path / "e3"))
    assert again["f1_micro"] == pytest.approx(tuned["tuned_thresholds"]["metrics"]["f1_micro"], abs=1e-9)

    r = ftcli(
        "predict", f"checkpoint={out}", f"input={data}/val.jsonl", f"output={tmp_path}/p.jsonl", "hardware=cpu", FP32
    )
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    for row in rows:
        chosen = [n for n in TOPICS if row["probabilities"][n] >= thresholds[n]]
        assert row["predicted_labels"] == chosen
    assert f"f1_micro against its labels {again['f1_micro']:.4f}" in " ".join(r.stdout.split())


def test_plain_transformers_loads_it_as_a_multi_label_classifier(run, tmp_path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    out, _ = run
    best = out / "checkpoints" / "best"
    texts = [r["text"] for r in topic_rows(8, 5)]
    model = AutoModelForSequenceClassification.from_pretrained(best, trust_remote_code=True).eval()
    tok = AutoTokenizer.from_pretrained(best)
    with torch.inference_mode():
        logits = model(**tok(texts, padding=True, return_tensors="pt")).logits
    classify = pipeline("text-classification", model=str(best), trust_remote_code=True, top_k=None)
    for text, row in zip(texts, logits, strict=True):
        scores = {d["label"]: d["score"] for d in classify([text])[0]}  # a sigmoid per label, not a softmax
        np.testing.assert_allclose([scores[n] for n in TOPICS], torch.sigmoid(row).numpy(), atol=1e-5)


@pytest.mark.skipif(not HAS_ONNX, reason="onnx/onnxscript/onnxruntime not installed (pip install 'ftcli[export]')")
@pytest.mark.slow  # make test keeps the generic export test (test_eval_predict_export.py)
def test_onnx_export_of_a_multi_label_model_is_verified(run, compose, tmp_path) -> None:
    from helpers.runs import compose_cmd

    from ftcli.export import run_export

    out, _ = run
    res = run_export(
        compose_cmd("export", f"checkpoint={out}", f"output={tmp_path}/onnx", "verify_samples=64", out=tmp_path)
    )
    assert res["max_abs_diff"] < 1e-4 and res["verified_on"] == 64


@pytest.mark.parametrize(
    "strategy", ["feature_extract", "lora", "bitfit", "partial", "lp_ft", "gradual_unfreeze", "full"]
)
def test_every_strategy_trains_a_multi_label_model(data, compose, strategy: str, monkeypatch) -> None:
    """Each strategy trains what it says on a multi-label model: the head moves; what it freezes stays bit-identical."""
    from ftcli.train import train

    spy = Spy(monkeypatch)
    overrides = [*_files(data), f"strategy={strategy}", "dataset.max_train_samples=96", "trainer.max_steps=3"]
    if strategy in ("lp_ft", "gradual_unfreeze"):
        overrides.append("trainer.batch_size=16")  # 6 steps an epoch: the schedules act within the run
    result = train(compose(*overrides, "trainer.save_checkpoints=false"))
    assert_trains_what_it_says(spy, strategy, head="head.")
    assert result["trainable_params"] == len_trainable(spy) or strategy in ("lp_ft", "gradual_unfreeze")
