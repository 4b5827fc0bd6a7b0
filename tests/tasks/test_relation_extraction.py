"""Relation extraction through the Task seam: typed markers let a tiny model tell relations apart that the entity
types and the bare sentence cannot, new marker embeddings start from existing words', TACRED's scores in train and
eval, plain transformers' pipeline on marked text agrees with ftcli predict (markers or offsets), ONNX, bad input
named by file and row."""

# ruff: noqa: E501  (override lists read one per line)
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.data import relation_rows
from helpers.runs import FP32, compose_cmd, train_once
from helpers.spy import Spy, assert_trains_what_it_says, len_trainable
from transformers import pipeline

from ftcli.config.errors import FtcliError
from ftcli.data.relations import check_relation_rows, mark, marker_seed_text
from ftcli.evaluate import run_eval
from ftcli.export import run_export
from ftcli.metrics.relations import tacred_scores
from ftcli.models.shipped.modeling_ftcli_relation import first_of
from ftcli.predict import run_predict
from ftcli.tasks.registry import build_task
from ftcli.train import train

HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnxruntime", "onnxscript", "onnx"))


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rel_data")
    _write(root / "train.jsonl", relation_rows(600, 0))
    _write(root / "dev.jsonl", relation_rows(90, 1))
    return root


def _files(data: Path, dev: str = "dev.jsonl") -> list[str]:
    return [
        "model=tiny",
        "task=relation_extraction",
        "dataset=files",
        f"dataset.train_file={data}/train.jsonl",
        f"dataset.validation_file={data / dev}",
        "trainer.batch_size=16",
        "trainer.epochs=4",
        "hardware=cpu",
        FP32,
    ]


@pytest.fixture(scope="module")
def run(data, tmp_path_factory, cache_dir):
    out, _, result = train_once(tmp_path_factory, cache_dir, "rel_typed", *_files(data), "strategy=full")
    return out, result


@pytest.mark.slow  # the trained relation runs (fixture) take ~2 minutes on 2 cores
def test_typed_markers_beat_the_bare_sentence_and_the_type_pair_baseline(
    run, data, tmp_path_factory, cache_dir
) -> None:
    _, typed = run
    _, _, bare = train_once(
        tmp_path_factory,
        cache_dir,
        "rel_none",
        *_files(data),
        "strategy=full",
        "task.marker=none",
        "strategy.pooling=cls",
    )
    dev = relation_rows(90, 1)
    by_pair = {
        ("PERSON", "PERSON"): "no_relation",
        ("PERSON", "ORGANIZATION"): "per:employee_of",
    }  # the majority of each pair
    baseline = tacred_scores([r["relation"] for r in dev], [by_pair[r["subj_type"], r["obj_type"]] for r in dev])["f1"]
    assert typed["f1"] > 0.9 and typed["f1"] > baseline + 0.3 and typed["f1"] > bare["f1"] + 0.2, (
        typed,
        bare,
        baseline,
    )


def test_new_markers_start_from_the_mean_of_their_seed_words(compose, data) -> None:
    cfg = compose(*_files(data))
    task = build_task(cfg.task)
    loaded = task.load_data(cfg.dataset, 0)
    tok = task.load_processor(cfg.model, loaded)
    assert {"[S:PERSON]", "[/S:PERSON]", "[O:ORGANIZATION]", "[O:PERSON]"} <= set(tok.get_added_vocab())
    model = task.build_model(cfg.model, "mean", loaded, tok, 0).model
    table = model.backbone.get_input_embeddings().weight
    for marker in ("[S:PERSON]", "[/O:ORGANIZATION]"):
        seed = tok(marker_seed_text(marker), add_special_tokens=False)["input_ids"]
        assert torch.equal(table[tok.convert_tokens_to_ids(marker)], table[seed].mean(0))
    assert model.config.subject_markers == [tok.convert_tokens_to_ids("[S:PERSON]")]
    assert model.config.object_markers == sorted(
        tok.convert_tokens_to_ids(m) for m in ("[O:ORGANIZATION]", "[O:PERSON]")
    )


@pytest.mark.slow  # the trained relation runs (fixture) take ~2 minutes on 2 cores
def test_eval_reproduces_train_with_tacred_scores_and_a_table(run, compose, tmp_path) -> None:
    out, result = run
    metrics = run_eval(compose(f"checkpoint={out}", "hardware=cpu", FP32, config="eval", out=tmp_path / "eval"))
    assert metrics["f1"] == pytest.approx(result["f1"], abs=1e-9) and metrics["metric"] == "f1"
    assert set(metrics["per_label"]) == {"per:founded", "per:employee_of"}  # no_relation is not scored
    lo, hi = metrics["ci95"]["f1"]
    assert lo <= metrics["f1"] <= hi


@pytest.mark.slow  # the trained relation runs (fixture) take ~2 minutes on 2 cores
def test_the_plain_pipeline_on_marked_text_agrees_with_predict_from_markers_or_offsets(run, data, tmp_path) -> None:
    out, _ = run
    dev = relation_rows(90, 1)
    marked = [
        {"text": mark(ex, "typed").text.replace(" [/", "[/").replace("] ", "]")}
        for ex in check_relation_rows(dev, "dev")
    ]
    for name, rows in (("offsets.jsonl", dev), ("marked.jsonl", marked)):
        _write(tmp_path / name, rows)
        run_predict(
            compose_cmd(
                "predict",
                f"checkpoint={out}",
                f"input={tmp_path}/{name}",
                f"output={tmp_path}/p_{name}",
                "hardware=cpu",
                FP32,
                out=tmp_path,
            )
        )
    ours = [json.loads(line) for line in (tmp_path / "p_offsets.jsonl").read_text().splitlines()]
    again = [json.loads(line) for line in (tmp_path / "p_marked.jsonl").read_text().splitlines()]
    assert [o["relation"] for o in ours] == [a["relation"] for a in again]
    classify = pipeline(
        "text-classification", model=str(out / "checkpoints" / "best"), trust_remote_code=True, top_k=None
    )
    texts = [mark(ex, "typed").text for ex in check_relation_rows(dev, "dev")]
    theirs = classify(texts)
    for o, t in zip(ours, theirs, strict=True):
        assert o["relation"] == max(t, key=lambda x: x["score"])["label"]
        assert [o["probabilities"][x["label"]] for x in t] == pytest.approx([x["score"] for x in t], abs=1e-5)


FRESH_PIPELINE = """
import json, os, sys
from transformers import AutoTokenizer, pipeline
AutoTokenizer.from_pretrained(sys.argv[1])  # first: the folder's config must need no code
classify = pipeline("text-classification", model=sys.argv[1], trust_remote_code=True, top_k=None)
print(json.dumps(classify(json.loads(sys.argv[2]))))
"""


@pytest.mark.slow  # the trained relation runs (fixture) take ~2 minutes on 2 cores
def test_a_safetensors_export_asks_nothing_and_classifies_as_the_checkpoint(run, data, tmp_path) -> None:
    """The marker head exported as a transformers folder: in a fresh interpreter with stdin closed, AutoTokenizer
    reads it first without a prompt, and the pipeline gives the checkpoint's probabilities."""
    out, _ = run
    run_export(compose_cmd("export", f"checkpoint={out}", "format=safetensors", f"output={tmp_path}/st", out=tmp_path))
    config = json.loads((tmp_path / "st" / "config.json").read_text())
    assert config["model_type"] == "bert" and config["subject_markers"] and "AutoConfig" not in config["auto_map"]
    texts = [mark(ex, "typed").text for ex in check_relation_rows(relation_rows(12, 1), "dev")]
    r = subprocess.run(
        [sys.executable, "-c", FRESH_PIPELINE, str(tmp_path / "st"), json.dumps(texts)],
        cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": ""}, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0 and "custom code" not in r.stdout + r.stderr, r.stderr[-3000:]
    theirs = json.loads(r.stdout.strip().splitlines()[-1])
    ours = pipeline("text-classification", model=str(out / "checkpoints" / "best"), trust_remote_code=True, top_k=None)
    for t, o in zip(theirs, ours(texts), strict=True):
        assert {x["label"]: x["score"] for x in t} == pytest.approx({x["label"]: x["score"] for x in o}, abs=1e-5)


@pytest.mark.slow  # the trained relation runs (fixture) take ~2 minutes on 2 cores
def test_predict_refuses_a_type_it_never_learned(run, tmp_path) -> None:
    out, _ = run
    cfg = compose_cmd(
        "predict",
        f"checkpoint={out}",
        "text='[S:CITY]Oslo[/S:CITY] hosts [O:PERSON]Nina[/O:PERSON]'",
        "hardware=cpu",
        FP32,
        out=tmp_path,
    )
    with pytest.raises(FtcliError, match=r"\[S:CITY\] is a marker this checkpoint never learned"):
        run_predict(cfg)


@pytest.mark.slow  # torch's dynamo exporter takes tens of seconds
@pytest.mark.skipif(not HAS_ONNX, reason="onnx/onnxscript/onnxruntime not installed (pip install 'ftcli[export]')")
def test_onnx_export_of_the_marker_head_is_verified(run, tmp_path) -> None:
    out, _ = run
    res = run_export(compose_cmd("export", f"checkpoint={out}", f"output={tmp_path}/onnx", out=tmp_path))
    assert res["max_abs_diff"] < 1e-4 and res["verified_on"] == 90


def test_overlapping_subject_and_object_name_the_file_and_row(compose, data, tmp_path) -> None:
    rows = relation_rows(3, 7)
    rows[2]["obj_start"], rows[2]["obj_end"] = rows[2]["subj_start"], rows[2]["subj_end"]
    _write(tmp_path / "bad.jsonl", rows)
    with pytest.raises(
        FtcliError,
        match=r"^line 3 of .*bad.jsonl: the subject \(tokens \d+..\d+\) and the object \(tokens \d+..\d+\) overlap",
    ):
        train(compose(*_files(data, dev=str(tmp_path / "bad.jsonl")), "trainer.max_steps=1"))


def test_marker_positions_are_found_whatever_the_order() -> None:
    """The head reads each row's own start markers, subject first or object first (none: the first token)."""
    ids = torch.tensor([[1, 9, 5, 7, 2], [1, 7, 5, 9, 2], [1, 5, 5, 5, 2]])
    assert first_of(ids, [9]).tolist() == [1, 3, 0] and first_of(ids, [7, 8]).tolist() == [3, 1, 0]
    assert np.array_equal(first_of(ids, [5]).numpy(), [2, 2, 1])


@pytest.mark.parametrize("strategy", ["feature_extract", "lora", "bitfit", "partial", "lp_ft", "gradual_unfreeze"])
def test_every_strategy_trains_the_marker_head(data, compose, strategy: str, monkeypatch) -> None:
    """Each strategy trains what it says: the head moves; what the strategy freezes stays bit-identical."""
    spy = Spy(monkeypatch)
    overrides = [*_files(data), f"strategy={strategy}", "dataset.max_train_samples=48", "trainer.max_steps=3"]
    result = train(compose(*overrides, "trainer.save_checkpoints=false"))
    assert_trains_what_it_says(spy, strategy, head="out.")
    assert result["trainable_params"] == len_trainable(spy) or strategy in ("lp_ft", "gradual_unfreeze")
