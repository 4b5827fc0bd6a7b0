"""Every checkpoint carries a Hub model card (README.md): valid YAML front matter with the metrics,
the command that made it and how to load it, written atomically with the rest (in the manifest)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from ftcli.reporting.card import model_card, train_command


def front_matter(card: str) -> tuple[dict, str]:
    assert card.startswith("---\n")
    head, _, body = card[4:].partition("\n---\n")
    return yaml.safe_load(head), body


@pytest.fixture(scope="module")
def tiny_run(tiny_full):
    out, cfg, _ = tiny_full
    return out, cfg


def test_a_checkpoint_carries_a_model_card_in_its_manifest(tiny_run) -> None:
    from ftcli.runtime.files import verify_manifest

    out, _ = tiny_run
    best = out / "checkpoints" / "best"
    card = (best / "README.md").read_text()
    meta, body = front_matter(card)
    assert meta["pipeline_tag"] == "text-classification" and meta["library_name"] == "transformers"
    assert "ftcli" in meta["tags"] and "full" in meta["tags"]
    assert meta["datasets"] == ["nyu-mll/glue"]
    assert "base_model" not in meta  # model=tiny starts from random weights: no base model to name
    saved = json.loads((best / "metrics.json").read_text())
    result = meta["model-index"][0]["results"][0]
    assert result["dataset"]["split"] == "validation" and result["dataset"]["config"] == "sst2"
    values = {m["type"]: m["value"] for m in result["metrics"]}
    assert values["accuracy"] == pytest.approx(saved["accuracy"], abs=1e-6)
    assert values["matthews_correlation"] == pytest.approx(saved["mcc"], abs=1e-6)
    assert f"| Accuracy | {saved['accuracy']:.4f} |" in body
    assert "`negative`, `positive`" in body and "`full`" in body and "Trainable parameters:** " in body
    assert "ftcli's pooled head (mean pooling)" in body and "trust_remote_code=True" in body
    assert "README.md" in json.loads((best / "manifest.json").read_text())["files"]
    assert verify_manifest(best)
    assert (out / "checkpoints" / "last" / "README.md").is_file()


def test_the_card_names_base_model_intervals_and_command() -> None:
    run_cfg = OmegaConf.create(
        {
            "model": {"name": "minilm", "name_or_path": "sentence-transformers/all-MiniLM-L6-v2", "pooling": "mean"},
            "strategy": {"name": "feature_extract", "pooling": None, "lr": 2e-3},
            "dataset": {"name": "reviews", "source": "files", "train_file": "/data/train.csv"},
        }
    )
    metrics = {"accuracy": 0.81, "f1_macro": 0.8, "examples": 872, "ci95": {"accuracy": [0.784, 0.836]}}
    card = model_card(run_cfg, metrics, "ftcli train strategy.lr=0.002", labels=["neg", "pos"], trainable=(770, 10**6))
    meta, body = front_matter(card)
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert "datasets" not in meta  # local files are not a Hub dataset
    assert meta["model-index"][0]["results"][0]["dataset"]["type"] == "csv"
    assert "| Accuracy | 0.8100 | 0.7840 – 0.8360 |" in body
    assert "| F1 (macro) | 0.8000 | |" in body  # no interval recorded for it
    assert "ftcli train strategy.lr=0.002" in body and "770 of 1,000,000 (0.08%)" in body


def test_a_native_head_needs_no_remote_code_and_unknown_runs_still_get_a_card() -> None:
    run_cfg = OmegaConf.create(
        {
            "model": {"name": "bert", "name_or_path": "/data/models/bert", "pooling": "native"},
            "strategy": {"name": "full", "pooling": None},
            "dataset": {"name": "hub", "source": "hub", "path": "imdb"},
        }
    )
    meta, body = front_matter(model_card(run_cfg, {"accuracy": 0.9}, None))
    assert "base_model" not in meta and meta["datasets"] == ["imdb"]  # a local folder is not a Hub id
    assert "trust_remote_code" not in body and "How it was trained" not in body
    meta, body = front_matter(model_card(None, {"step": 3}, None))
    assert meta["tags"] == ["ftcli", "text-classification"] and "model-index" not in meta


def test_train_command_falls_back_to_the_run_dirs_saved_overrides(tmp_path: Path) -> None:
    assert train_command(OmegaConf.create({"output_dir": str(tmp_path)})) is None  # neither Hydra nor a record
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["model=tiny", "dataset.text_column=my text"]))
    command = train_command(OmegaConf.create({"output_dir": str(tmp_path)}))
    assert command == "ftcli train model=tiny 'dataset.text_column=my text'"
