"""What a practitioner does after training: eval with intervals, calibration and pictures; compare
checkpoints; predict new text; export to ONNX / safetensors — on one short tiny-model run."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.runs import TINY, compose_cmd, ftcli, load_data, predict

from ftcli.evaluate import run_eval
from ftcli.training.checkpoint import find_checkpoints

HAS_PLOTS = importlib.util.find_spec("matplotlib") is not None
HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnxruntime", "onnxscript", "onnx"))


@pytest.fixture(scope="module")
def tiny_run(tiny_full):
    """The shared short full fine-tuning run of the tiny model: its run dir (metrics.jsonl, checkpoints)."""
    out, cfg, result = tiny_full
    return out, result, cfg


def _png_with_content(path: Path) -> None:
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[0] > 200 and pixels.shape[1] > 200 and pixels[..., :3].std() > 0.05  # not blank


@pytest.mark.skipif(not HAS_PLOTS, reason="matplotlib is not installed (the plots extra)")
def test_eval_reports_intervals_calibration_and_pictures(tiny_run, compose, tmp_path) -> None:
    run, result, _ = tiny_run
    cfg = compose(
        f"checkpoint={run}",
        "hardware=cpu",
        "eval.bootstrap=200",
        "eval.temperature_scaling=true",
        config="eval",
        out=tmp_path / "eval",
    )
    m = run_eval(cfg)
    assert m["accuracy"] == result["accuracy"]
    lo, hi = m["ci95"]["accuracy"]
    assert lo <= m["accuracy"] <= hi and hi - lo > 0.02  # 128 examples: a wide interval
    assert sum(m["reliability"]["count"]) == m["examples"] == 128
    assert 0 <= m["ece"] <= 1
    ts = m["temperature_scaling"]
    assert ts["temperature"] > 0 and sum(ts["reliability_after"]["count"]) == 64  # the held-out half
    saved = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert saved["ci95"] == m["ci95"] and saved["per_class"]["positive"]["support"] > 0
    for png in ("learning_curves.png", "confusion_matrix.png", "reliability.png"):
        _png_with_content(tmp_path / "eval" / png)
    report = (tmp_path / "eval" / "report.md").read_text()
    for link in ("(learning_curves.png)", "(confusion_matrix.png)", "(reliability.png)"):
        assert link in report
    assert f"| accuracy | {m['accuracy']:.4f} | {lo:.4f} – {hi:.4f} |" in report


def test_eval_compares_a_list_of_checkpoints_on_the_same_data(tiny_run, compose, tmp_path) -> None:
    run, _, _ = tiny_run
    best, last = run / "checkpoints" / "best", run / "checkpoints" / "last"
    cfg = compose(
        f"checkpoint=[{best},{last}]",
        "hardware=cpu",
        "eval.bootstrap=0",
        "eval.plots=false",
        config="eval",
        out=tmp_path / "cmp",
    )
    out = run_eval(cfg)
    rows = list(csv.DictReader((tmp_path / "cmp" / "comparison.csv").open()))
    assert [r["checkpoint"] for r in rows] == [str(best), str(last)]
    assert {r["examples"] for r in rows} == {"128"}
    for i, r in enumerate(rows):
        one = json.loads((tmp_path / "cmp" / f"{i:02d}" / "eval.json").read_text())
        assert float(r["accuracy"]) == one["accuracy"]
    assert out["accuracy"] == max(float(r["accuracy"]) for r in rows)


def test_a_multirun_dir_expands_to_its_jobs_in_job_order(tmp_path) -> None:
    for job in ("0", "2", "10", "1"):
        (tmp_path / job / "checkpoints" / "best").mkdir(parents=True)
        (tmp_path / job / "checkpoints" / "best" / "config.json").write_text("{}")
    (tmp_path / "multirun.yaml").write_text("")
    found = find_checkpoints(str(tmp_path))
    assert [p.parent.parent.name for p in found] == ["0", "1", "2", "10"]
    assert find_checkpoints([str(tmp_path / "2"), str(tmp_path / "0")])[0] == tmp_path / "2" / "checkpoints" / "best"


def test_eval_on_another_dataset_maps_labels_through_the_model(tiny_run, tmp_path, cache_dir) -> None:
    # A file whose string labels sort differently from nothing in particular: they must map by the
    # model's id2label (negative=0, positive=1), and the supports must match the file's counts.
    run, _, _ = tiny_run
    rows = [
        ("a wonderful , moving film", "positive"),
        ("dull and lifeless", "negative"),
        ("the best of the year", "positive"),
        ("a mess", "negative"),
        ("great fun", "positive"),
    ]
    data = tmp_path / "other.csv"
    with data.open("w", newline="") as f:
        csv.writer(f).writerows([("text", "label"), *rows])
    r = ftcli(
        "eval",
        f"checkpoint={run}",
        "dataset=files",
        f"dataset.train_file={data}",
        f"dataset.validation_file={data}",
        "eval.plots=false",
        "hardware=cpu",
        f"hydra.run.dir={tmp_path}/eval",
        env={"FTCLI_CACHE_DIR": str(cache_dir)},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert m["dataset"] == "files" and m["examples"] == 5
    assert m["per_class"]["positive"]["support"] == 3 and m["per_class"]["negative"]["support"] == 2
    assert "95% CI" in r.stdout and "ECE" in r.stdout


def _validation_file(cfg, path: Path) -> None:
    """The run's own validation split as a CSV (sentence, label name): what a user would predict on."""
    data = load_data(cfg.dataset, cfg.trainer.seed)
    val = data.splits["validation"]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sentence", "label"])
        w.writerows((s, data.label_names[y]) for s, y in zip(val["sentence"], val["labels"], strict=True))


def test_batch_predict_reproduces_evals_accuracy_and_keeps_row_order(tiny_run, compose, tmp_path) -> None:
    from ftcli.predict import read_rows, run_predict

    run, result, train_cfg = tiny_run
    src = tmp_path / "val.csv"
    _validation_file(train_cfg, src)
    cfg = compose_cmd(
        "predict",
        f"checkpoint={run}",
        f"input={src}",
        f"output={tmp_path}/pred.jsonl",
        "batch_size=7",
        "hardware=cpu",
        out=tmp_path / "run",
    )
    out = run_predict(cfg)
    assert out["accuracy"] == result["accuracy"]  # eval's number, from predict's own batching
    given, got = read_rows(src, "minimal"), read_rows(tmp_path / "pred.jsonl", "minimal")
    assert [g["sentence"] for g in given] == [p["sentence"] for p in got]
    for p in got:
        probs = p["probabilities"]
        assert set(probs) == {"negative", "positive"} and sum(probs.values()) == pytest.approx(1.0)
        assert p["predicted_label"] == max(probs, key=probs.get)
    # CSV out: the same rows, plus the label and one probability column per class
    run_predict(
        compose_cmd(
            "predict",
            f"checkpoint={run}",
            f"input={tmp_path}/pred.jsonl",
            f"output={tmp_path}/pred.csv",
            "hardware=cpu",
            out=tmp_path / "run",
        )
    )
    header = next(csv.reader((tmp_path / "pred.csv").open()))
    assert header[-3:] == ["predicted_label", "prob_negative", "prob_positive"]


def test_predict_one_text_with_commas_and_quotes_from_the_command_line(tiny_run, tmp_path) -> None:
    run, _, _ = tiny_run
    r = ftcli(
        "predict",
        f"checkpoint={run}",
        "text=it's a gorgeous, witty, seductive movie",
        "hardware=cpu",
        f"hydra.run.dir={tmp_path}/p",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.split()
    assert lines[0] in ("negative", "positive")
    probs = dict(zip(lines[1::2], map(float, lines[2::2]), strict=True))
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-3) and max(probs, key=probs.get) == lines[0]


@pytest.mark.skipif(not HAS_ONNX, reason="onnx/onnxscript/onnxruntime not installed (pip install 'ftcli[export]')")
def test_onnx_export_matches_pytorch_on_the_validation_set(tiny_run, compose, tmp_path) -> None:
    import onnxruntime as ort
    from transformers import AutoTokenizer

    from ftcli.export import run_export
    from ftcli.training.checkpoint import load_checkpoint

    run, _, train_cfg = tiny_run
    res = run_export(compose_cmd("export", f"checkpoint={run}", f"output={tmp_path}/onnx", out=tmp_path / "run"))
    assert res["verified_on"] == 128 and res["max_abs_diff"] < 1e-4
    # independently of ftcli's own check: the exported folder alone, against the PyTorch checkpoint
    model, _, _ = load_checkpoint(run / "checkpoints" / "best")
    tok = AutoTokenizer.from_pretrained(tmp_path / "onnx")
    session = ort.InferenceSession(str(tmp_path / "onnx" / "model.onnx"))
    texts = load_data(train_cfg.dataset, train_cfg.trainer.seed).splits["validation"]["sentence"]
    feeds = {i.name for i in session.get_inputs()}
    for start in (0, 64):  # two batches of different padded lengths: the axes are dynamic
        enc = tok(texts[start : start + 64], padding=True, truncation=True, max_length=64, return_tensors="np")
        theirs = session.run(["logits"], {k: v.astype(np.int64) for k, v in enc.items() if k in feeds})[0]
        with torch.inference_mode():
            ours = model.eval()(**{k: torch.from_numpy(v) for k, v in enc.items()}).logits.numpy()
        np.testing.assert_allclose(theirs, ours, atol=1e-4)


def test_safetensors_export_is_a_clean_folder_that_predicts_the_same(tiny_run, compose, tmp_path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ftcli.export import run_export
    from ftcli.training.checkpoint import load_checkpoint

    run, _, _ = tiny_run
    res = run_export(
        compose_cmd("export", f"checkpoint={run}", "format=safetensors", f"output={tmp_path}/st", out=tmp_path / "run")
    )
    assert res["merged"] is False
    assert (tmp_path / "st" / "model.safetensors").is_file() and not (tmp_path / "st" / "ftcli.yaml").exists()
    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path / "st", trust_remote_code=True).eval()
    ours, tok, _ = load_checkpoint(run / "checkpoints" / "best")
    enc = AutoTokenizer.from_pretrained(tmp_path / "st")(["a fine film", "bad"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        np.testing.assert_allclose(plain(**enc).logits.numpy(), ours.eval()(**enc).logits.numpy(), atol=1e-6)


@pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="peft is not installed (the lora extra)")
def test_safetensors_export_merges_a_lora_adapter(tiny_run, compose, tmp_path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    from ftcli.export import run_export
    from ftcli.training.checkpoint import load_checkpoint

    run, _, _ = tiny_run
    base, tok, _ = load_checkpoint(run / "checkpoints" / "best")
    base.name_or_path = base.config._name_or_path = str(run / "checkpoints" / "best")
    lora = get_peft_model(base, LoraConfig(r=4, target_modules=["query", "value"], init_lora_weights=False))
    adapter = tmp_path / "adapter"
    lora.save_pretrained(adapter)
    tok.save_pretrained(adapter)
    enc = tok(["a fine film", "bad"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        expected = lora.eval()(**enc).logits.numpy()
        plain_base = load_checkpoint(run / "checkpoints" / "best")[0].eval()(**enc).logits.numpy()
    assert np.abs(expected - plain_base).max() > 1e-4  # the adapter changes the predictions
    res = run_export(
        compose_cmd(
            "export",
            f"checkpoint={adapter}",
            "format=safetensors",
            f"output={tmp_path}/m",
            out=tmp_path / "run",
        )
    )
    assert res["merged"] is True and not (tmp_path / "m" / "adapter_config.json").exists()
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "m", trust_remote_code=True).eval()
    with torch.inference_mode():
        np.testing.assert_allclose(merged(**enc).logits.numpy(), expected, atol=1e-5)


def test_tensorboard_event_files_hold_the_logged_metrics(compose) -> None:
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (the track extra)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from ftcli.train import train

    cfg = compose(
        *TINY,
        "strategy=full",
        "trainer.max_steps=4",
        "trainer.log_every_steps=2",
        "trainer.eval_every_steps=2",
        "trainer.log_with=tensorboard",
    )
    train(cfg)
    out = Path(cfg.output_dir)
    log = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    events = EventAccumulator(str(out / "ftcli"))
    events.Reload()
    loss = [(e.step, e.value) for e in events.Scalars("train/loss")]
    assert loss == [(r["step"], pytest.approx(r["loss"])) for r in log if "lr" in r]
    acc = [(e.step, e.value) for e in events.Scalars("validation/accuracy")]
    assert acc == [(r["step"], pytest.approx(r["accuracy"])) for r in log if r.get("split") == "validation"]


def test_evaluation_moves_each_batch_off_the_device() -> None:
    """predict() must not hold device tensors across batches (memory would grow with the split)."""
    import weakref
    from types import SimpleNamespace

    class DeviceTensor(torch.Tensor):
        """Stands for a tensor on an accelerator: .cpu() returns a plain copy, as a real device would."""

        def cpu(self, *a, **kw):
            return torch.Tensor(self.as_subclass(torch.Tensor).clone())

    live_at_forward: list[int] = []
    made: list[weakref.ref] = []  # every "device" tensor the model returned

    class Model:
        def eval(self):
            return self

        def __call__(self, **batch):
            live_at_forward.append(sum(r() is not None for r in made))
            logits = torch.randn(len(batch["input_ids"]), 2).as_subclass(DeviceTensor)
            made.append(weakref.ref(logits))
            return SimpleNamespace(logits=logits)

    class Accel:  # as if two processes, whose padding and gathering change nothing here
        num_processes = 2

        def pad_across_processes(self, x, dim=0, pad_index=0):
            return x

        def gather(self, x):
            return x

    batches = [
        {
            "input_ids": torch.zeros(4, 3),
            "idx": torch.arange(i * 4, i * 4 + 4),
            "labels": torch.zeros(4).long(),
        }
        for i in range(6)
    ]
    logits, labels = predict(Model(), batches, Accel())
    assert logits.shape == (24, 2) and type(logits) is np.ndarray
    assert max(live_at_forward) <= 1  # never more than the batch in flight, however many batches ran


@pytest.mark.parametrize("text", ["it's a, b", 'back\\slash "q" [z] {y}', "ends with \\", "a\\'b", "k=v", ""])
def test_free_text_survives_hydras_override_parser(text: str) -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from ftcli.cli.args import quote_free_text

    parsed = OverridesParser.create().parse_overrides([quote_free_text(f"text={text}")])[0]
    assert parsed.value() == text


@pytest.mark.parametrize("config", ["predict", "export"])
def test_predict_and_export_configs_compose_validate_and_name_bad_keys(config: str, tmp_path) -> None:
    from ftcli.config.errors import FtcliError
    from ftcli.config.validate import validate

    validate(compose_cmd(config, "checkpoint=somewhere", out=tmp_path))
    bad = "batch_size=0" if config == "predict" else "format=tflite"
    with pytest.raises(FtcliError, match=bad.split("=")[0]):
        validate(compose_cmd(config, "checkpoint=somewhere", bad, out=tmp_path))


@pytest.mark.parametrize("ext", [".csv", ".tsv", ".jsonl", ".json"])
def test_prediction_files_round_trip_awkward_text(ext: str, tmp_path) -> None:
    from ftcli.data.rows import read_rows, write_rows

    rows = [{"text": 'a \\ back, "quoted"\tand\na new line', "id": "1"}, {"text": "plain", "id": "2"}]
    from ftcli.tasks.objectives.classification import Classification

    preds = Classification().predictions(np.log(np.array([[0.2, 0.8], [0.6, 0.4]])), ["neg", "pos"])
    write_rows(tmp_path / f"p{ext}", rows, preds, "minimal")
    back = read_rows(tmp_path / f"p{ext}", "minimal")
    assert [r["text"] for r in back] == [r["text"] for r in rows]
    assert [r["label"] for r in back] == ["pos", "neg"]
