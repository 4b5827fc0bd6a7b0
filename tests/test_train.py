"""End-to-end runs on the tiny model: checkpoints load in plain transformers, eval reproduces train."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.runs import TINY, load_data

from ftcli.evaluate import run_eval
from ftcli.train import train


def _predict_plain(folder: Path, texts: list[str], **kw) -> np.ndarray:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(folder, **kw).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    with torch.inference_mode():
        return model(**tok(texts, padding=True, return_tensors="pt")).logits.numpy()


TEXTS = ["a gorgeous , witty , seductive movie .", "the plot is nothing but boilerplate clichés", "ok"]


@pytest.fixture(scope="module")
def tiny_run(tiny_full):
    """The shared short full fine-tuning run of the tiny model (pooled head): (cfg, result, run dir)."""
    out, cfg, result = tiny_full
    return cfg, result, out


def test_run_dir_holds_config_metrics_and_checkpoints(tiny_run) -> None:
    cfg, result, out = tiny_run
    assert (out / "config.yaml").read_text().count("${") == 0  # resolved
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [x for x in lines if x.get("split") == "validation"]
    assert len(evals) == 2  # once per epoch
    assert [x["step"] for x in lines if "lr" in x] == sorted({x["step"] for x in lines if "lr" in x})
    final = json.loads((out / "metrics.json").read_text())
    for key in ("accuracy", "f1_macro", "precision_macro", "recall_macro", "mcc", "loss"):
        assert key in final
    assert final["accuracy"] == max(e["accuracy"] for e in evals) == result["accuracy"]
    for name in ("best", "last"):
        assert (out / "checkpoints" / name / "model.safetensors").is_file()


def test_pooled_checkpoint_loads_in_plain_transformers_and_predicts_like_ftcli(tiny_run) -> None:
    _, _, out = tiny_run
    best = out / "checkpoints" / "best"
    cfg = json.loads((best / "config.json").read_text())
    assert cfg["auto_map"]["AutoModelForSequenceClassification"].startswith("modeling_ftcli.")
    assert cfg["id2label"] == {"0": "negative", "1": "positive"}
    from ftcli.training.checkpoint import load_checkpoint

    model, tok, _ = load_checkpoint(best)
    with torch.inference_mode():
        ours = model.eval()(**tok(TEXTS, padding=True, return_tensors="pt")).logits.numpy()
    plain = _predict_plain(best, TEXTS, trust_remote_code=True)
    np.testing.assert_allclose(plain, ours, atol=1e-5)


def test_eval_of_a_checkpoint_reproduces_trains_number(tiny_run, compose, tmp_path) -> None:
    _, result, out = tiny_run
    cfg = compose(f"checkpoint={out}", "hardware=cpu", config="eval", out=tmp_path / "eval")
    metrics = run_eval(cfg)
    assert metrics["accuracy"] == result["accuracy"]
    assert metrics["examples"] == 128
    saved = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert saved["confusion_matrix"] and set(saved["per_class"]) == {"negative", "positive"}


def test_native_head_checkpoint_loads_without_custom_code(compose, tmp_path) -> None:
    cfg = compose(*TINY, "strategy=full", "model.pooling=native", "trainer.max_steps=3")
    train(cfg)
    best = Path(cfg.output_dir) / "checkpoints" / "best"
    assert "auto_map" not in json.loads((best / "config.json").read_text())
    from ftcli.training.checkpoint import load_checkpoint

    model, tok, _ = load_checkpoint(best)
    with torch.inference_mode():
        ours = model.eval()(**tok(TEXTS, padding=True, return_tensors="pt")).logits.numpy()
    np.testing.assert_allclose(_predict_plain(best, TEXTS), ours, atol=1e-5)


def test_feature_extract_keeps_backbone_bit_identical_and_reuses_the_cache(compose, tmp_path) -> None:
    from ftcli.models.text import build_model, load_tokenizer
    from ftcli.training.checkpoint import load_checkpoint

    cfg = compose(*TINY, "strategy=feature_extract", "trainer.epochs=2", out=tmp_path / "a")
    data = load_data(cfg.dataset, cfg.trainer.seed)
    tok = load_tokenizer(cfg.model, Path(cfg.cache_dir), data.splits["train"]["sentence"])
    start = build_model(cfg.model, "mean", data.label_names, tok, cfg.trainer.seed, cache_dir=Path(cfg.cache_dir))
    first = train(cfg)
    trained, _, _ = load_checkpoint(tmp_path / "a" / "checkpoints" / "last")
    for (name, p0), (_, p1) in zip(start.backbone.named_parameters(), trained.backbone.named_parameters(), strict=True):
        assert torch.equal(p0, p1), name
    assert not torch.equal(start.head.out.weight, trained.head.out.weight)  # the head did train

    again = train(compose(*TINY, "strategy=feature_extract", "trainer.epochs=2", out=tmp_path / "b"))
    assert again["accuracy"] == first["accuracy"]  # same features from the cache, same seed


def test_early_stopping_stops_after_patience(compose) -> None:
    cfg = compose(
        *TINY,
        "strategy=full",
        "trainer.epochs=30",
        "trainer.eval_every_steps=2",
        "trainer.early_stopping_patience=1",
        "strategy.lr=1e-9",
    )
    train(cfg)
    evals = [json.loads(x) for x in (Path(cfg.output_dir) / "metrics.jsonl").read_text().splitlines()]
    evals = [x for x in evals if x.get("split") == "validation"]
    assert len(evals) == 2  # the first sets the best; the second does not improve → stop


def test_grad_accum_and_max_steps_count_optimizer_steps(compose) -> None:
    cfg = compose(*TINY, "strategy=full", "trainer.grad_accum=2", "trainer.max_steps=5", "trainer.log_every_steps=1")
    train(cfg)
    lines = [json.loads(x) for x in (Path(cfg.output_dir) / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "lr" in x] == [1, 2, 3, 4, 5]


def test_dry_run_reports_trainable_parameters_without_training(compose) -> None:
    cfg = compose(*TINY, "strategy=feature_extract", "trainer.dry_run=true")
    result = train(cfg)
    assert result["trainable_params"] == 64 * 2 + 2  # the linear head on 64-wide features
    assert not (Path(cfg.output_dir) / "checkpoints").exists()


def test_a_second_feature_extract_run_never_runs_the_backbone(compose, tmp_path, monkeypatch) -> None:
    from ftcli.tasks.inputs.text import TextInputs

    overrides = (*TINY, "strategy=feature_extract", "dataset.max_train_samples=300")
    train(compose(*overrides, out=tmp_path / "cold"))

    def forbidden(*args, **kwargs):
        raise AssertionError("features were recomputed instead of read from the cache")

    monkeypatch.setattr(TextInputs, "compute", forbidden)
    train(compose(*overrides, out=tmp_path / "warm"))  # same key: cache hit
    train(compose(*overrides, "strategy.pooling=cls", out=tmp_path / "cls"))  # every pooling is cached
    with pytest.raises(AssertionError, match="recomputed"):
        train(compose(*overrides, "dataset.max_train_samples=301", out=tmp_path / "other"))


def test_tokenisation_is_cached_across_calls(compose) -> None:
    from ftcli.data.text import tokenize
    from ftcli.models.text import load_tokenizer

    cfg = compose(*TINY)
    data = load_data(cfg.dataset, 0)
    tok = load_tokenizer(cfg.model, Path(cfg.cache_dir), data.splits["train"]["sentence"])
    first = tokenize(data.splits["validation"], tok, ["sentence"], 64)
    again = tokenize(load_data(cfg.dataset, 0).splits["validation"], tok, ["sentence"], 64)
    assert first._fingerprint == again._fingerprint
    assert first.cache_files and first.cache_files == again.cache_files  # read back, not recomputed
    longer = tokenize(data.splits["validation"], tok, ["sentence"], 128)
    assert longer._fingerprint != first._fingerprint  # the key includes max_length


@pytest.mark.parametrize("k", [2, 3, 5])
def test_metrics_agree_with_scikit_learn(k: int) -> None:
    sk = pytest.importorskip("sklearn.metrics")
    from ftcli.metrics.classification import classification_metrics as compute_metrics

    rng = np.random.default_rng(k)
    labels = rng.integers(0, k, size=400)
    logits = rng.normal(size=(400, k)) + 1.5 * np.eye(k)[labels] * (rng.random(400)[:, None] < 0.6)
    logits[:, k - 1] -= 10 if k == 5 else 0  # a class never predicted: zero-division rules
    ours = compute_metrics(labels, logits, [str(i) for i in range(k)])
    preds = logits.argmax(-1)
    p, r, f, s = sk.precision_recall_fscore_support(labels, preds, labels=range(k), zero_division=0)
    assert ours["accuracy"] == pytest.approx(sk.accuracy_score(labels, preds))
    assert ours["f1_macro"] == pytest.approx(f.mean())
    assert ours["precision_macro"] == pytest.approx(p.mean())
    assert ours["recall_macro"] == pytest.approx(r.mean())
    assert ours["mcc"] == pytest.approx(sk.matthews_corrcoef(labels, preds))
    assert ours["confusion_matrix"] == sk.confusion_matrix(labels, preds, labels=range(k)).tolist()
    assert ours["loss"] == pytest.approx(sk.log_loss(labels, np.exp(logits) / np.exp(logits).sum(1, keepdims=True)))


def test_last_equal_to_best_is_linked_not_rewritten(tiny_run, tmp_path) -> None:
    from ftcli.runtime.files import link_checkpoint, verify_manifest
    from ftcli.training.checkpoint import load_checkpoint

    _, _, out = tiny_run
    best = out / "checkpoints" / "best"
    link_checkpoint(best, tmp_path / "last")
    assert (tmp_path / "last" / "model.safetensors").stat().st_ino == (best / "model.safetensors").stat().st_ino
    assert verify_manifest(tmp_path / "last")
    model, _, _ = load_checkpoint(tmp_path / "last")
    assert model.config.num_labels == 2


def test_head_only_run_writes_its_best_head_once_and_eval_reproduces_it(compose, tmp_path, monkeypatch) -> None:
    import ftcli.training.checkpoint

    writes: list[str] = []
    real = ftcli.training.checkpoint.save_checkpoint
    monkeypatch.setattr(
        ftcli.training.checkpoint, "save_checkpoint", lambda *a, **k: (writes.append(Path(a[2]).name), real(*a, **k))[1]
    )
    overrides = ("strategy=feature_extract", "trainer.epochs=4", "trainer.eval_every_steps=1", "strategy.lr=0.05")
    cfg = compose(*TINY, *overrides)
    train(cfg)
    out = Path(cfg.output_dir)
    evals = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [x for x in evals if x.get("split") == "validation"]
    best = max(evals, key=lambda x: x["accuracy"])  # the first of the best: later ties do not replace it
    improved = sum(x["accuracy"] > max(y["accuracy"] for y in evals[:i]) for i, x in enumerate(evals) if i)
    assert improved >= 1  # best moved after the first evaluation: deferring its write is what is tested
    assert writes.count("best") == 1 and len(writes) <= 2  # not one full-model write per improvement
    assert json.loads((out / "checkpoints" / "best" / "metrics.json").read_text())["step"] == best["step"]
    metrics = run_eval(compose(f"checkpoint={out / 'checkpoints' / 'best'}", "hardware=cpu", config="eval"))
    assert metrics["accuracy"] == best["accuracy"]
