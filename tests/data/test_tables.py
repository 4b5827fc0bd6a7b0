"""Data: column and label mapping, dataset sources, batching that keeps randomness and order."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.runs import TINY, load_data, predict

from ftcli.config.errors import FtcliError
from ftcli.data.batching import LengthGroupedBatches, sorted_batches


def test_sst2_is_shipped_and_loads_offline(compose) -> None:
    data = load_data(compose().dataset, seed=0)
    assert len(data.splits["train"]) == 67349 and len(data.splits["validation"]) == 872
    assert data.label_names == ["negative", "positive"]
    assert sum(data.splits["validation"]["labels"]) == 444


def test_subsets_are_seeded_random(compose) -> None:
    cfg = compose("dataset.max_train_samples=100").dataset
    a, b = load_data(cfg, seed=1).splits["train"], load_data(cfg, seed=1).splits["train"]
    c = load_data(cfg, seed=2).splits["train"]
    assert a["sentence"] == b["sentence"] != c["sentence"]
    assert len(a) == 100


def test_length_grouped_batches_cover_every_example_once_and_reshuffle() -> None:
    lengths = np.random.default_rng(0).integers(3, 60, size=1000)
    sampler = LengthGroupedBatches(lengths, batch_size=16, seed=0)
    epoch0 = sampler.batches()
    assert sorted(i for b in epoch0 for i in b) == list(range(1000))
    sampler.set_epoch(1)
    epoch1 = sampler.batches()
    assert epoch0 != epoch1

    # grouping: padded tokens are far fewer than with random batches
    def padded(batches):
        return sum(len(b) * max(lengths[b]) for b in batches)

    random = LengthGroupedBatches(lengths, 16, seed=0, group=False).batches()
    assert padded(epoch0) < 0.7 * padded(random)


def test_token_budget_bounds_padded_tokens() -> None:
    lengths = np.random.default_rng(0).integers(3, 60, size=500)
    batches = LengthGroupedBatches(lengths, batch_size=16, seed=0, max_tokens=256).batches()
    assert all(len(b) * max(lengths[b]) <= 256 for b in batches)
    assert sorted(i for b in batches for i in b) == list(range(500))
    assert sorted(i for b in sorted_batches(lengths, 16, max_tokens=256) for i in b) == list(range(500))


def test_sorted_evaluation_restores_order_and_matches_unsorted(compose, tmp_path) -> None:
    from accelerate import Accelerator

    from ftcli.data.batching import loader
    from ftcli.data.text import collator, eval_loader, tokenize
    from ftcli.models.text import build_model, load_tokenizer

    cfg = compose(*TINY)
    data = load_data(cfg.dataset, 0)
    tok = load_tokenizer(cfg.model, Path(cfg.cache_dir), data.splits["train"]["sentence"])
    model = build_model(cfg.model, "mean", data.label_names, tok, 0, cache_dir=Path(cfg.cache_dir)).eval()
    ds = tokenize(data.splits["validation"], tok, ["sentence"], 64)
    acc = Accelerator(cpu=True)
    logits, labels = predict(model, acc.prepare(eval_loader(ds, tok, 32)), acc)
    assert labels.tolist() == ds["labels"]  # original order restored
    # one example at a time, no sorting, no padding: the same predictions
    one = loader(ds.add_column("idx", list(range(len(ds)))), [[i] for i in range(len(ds))], collator(tok))
    single, _ = predict(model, one, acc)
    np.testing.assert_allclose(logits, single, atol=1e-5)
    assert (logits.argmax(-1) == single.argmax(-1)).all()


def _write(path: Path, rows: list[dict]) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        import csv

        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t" if path.suffix == ".tsv" else ",")
            w.writeheader()
            w.writerows(rows)
    return path


ROWS = [
    {"review": f"text number {i} is {'good' if i % 3 else 'bad'}", "stars": "pos" if i % 3 else "neg"}
    for i in range(60)
]


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_files_dataset_maps_string_labels_and_stores_them_in_the_checkpoint(compose, tmp_path, suffix) -> None:
    from ftcli.train import train

    train_file = _write(tmp_path / f"train{suffix}", ROWS[:48])
    val_file = _write(tmp_path / f"val{suffix}", ROWS[48:])
    cfg = compose(
        "model=tiny",
        "dataset=files",
        f"dataset.train_file={train_file}",
        f"dataset.validation_file={val_file}",
        "dataset.text_column=review",
        "dataset.label_column=stars",
        "trainer.max_steps=2",
        "hardware=cpu",
    )
    train(cfg)
    saved = json.loads((Path(cfg.output_dir) / "checkpoints" / "best" / "config.json").read_text())
    assert saved["id2label"] == {"0": "neg", "1": "pos"} and saved["label2id"] == {"neg": 0, "pos": 1}


def test_files_dataset_without_validation_holds_out_ten_percent(compose, tmp_path) -> None:
    f = _write(tmp_path / "all.csv", ROWS)
    data = load_data(
        compose(
            "dataset=files", f"dataset.train_file={f}", "dataset.text_column=review", "dataset.label_column=stars"
        ).dataset,
        seed=0,
    )
    assert (len(data.splits["train"]), len(data.splits["validation"])) == (54, 6)


def test_hub_dataset_from_a_local_folder(compose, tmp_path) -> None:
    folder = tmp_path / "mydata"
    folder.mkdir()
    _write(folder / "train.csv", ROWS[:40])
    _write(folder / "validation.csv", ROWS[40:])
    cfg = compose("dataset=hub", f"dataset.path={folder}", "dataset.text_column=review", "dataset.label_column=stars")
    data = load_data(cfg.dataset, seed=0)
    assert len(data.splits["train"]) == 40 and data.label_names == ["neg", "pos"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["dataset.train_file=/nope.csv"], "dataset.train_file=/nope.csv: no such file"),
        (
            ["dataset.text_column=body"],
            "dataset.text_column=body: no such column in the train split; it has review, stars",
        ),
        (["dataset.label_names=[neg,meh]"], "outside the label set"),
    ],
)
def test_bad_data_is_named(compose, tmp_path, overrides, message) -> None:
    f = _write(tmp_path / "d.csv", ROWS)
    cfg = compose(
        "dataset=files",
        f"dataset.train_file={f}",
        "dataset.text_column=review",
        "dataset.label_column=stars",
        *overrides,
    )
    with pytest.raises(FtcliError, match=message.replace("[", r"\[")):
        load_data(cfg.dataset, seed=0)


def test_max_length_above_the_models_limit_is_refused(compose) -> None:
    from ftcli.models.text import build_model

    cfg = compose("model=tiny", "model.max_length=512")
    with pytest.raises(FtcliError, match="model.max_length=512: this model reads at most 128 tokens"):
        build_model(cfg.model, "mean", ["a", "b"], _FakeTok(), 0, cache_dir=Path(cfg.cache_dir))


class _FakeTok:
    pad_token_id = 0

    def __len__(self) -> int:
        return 100


def test_labels_tensor_dtype(compose) -> None:
    data = load_data(compose("dataset.max_eval_samples=8").dataset, 0)
    assert torch.tensor(data.splits["validation"]["labels"]).dtype == torch.int64


def _files(compose, train_file: Path, *overrides: str):
    return compose(
        "dataset=files", f"dataset.train_file={train_file}", "dataset.text_column=review",
        "dataset.label_column=stars", *overrides,
    ).dataset  # fmt: skip


def test_a_file_rewritten_with_its_size_and_mtime_kept_is_read_again(compose, tmp_path) -> None:
    f = _write(tmp_path / "d.csv", ROWS)
    stat = f.stat()
    assert load_data(_files(compose, f), seed=0).label_names == ["neg", "pos"]
    f.write_bytes(f.read_bytes().replace(b",neg", b",bad").replace(b",pos", b",top"))  # the same length: 3 letters
    os.utime(f, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as cp -p, rsync -t or an archive leave it
    assert f.stat().st_size == stat.st_size
    assert load_data(_files(compose, f), seed=0).label_names == ["bad", "top"]


def test_number_like_labels_are_names_as_written(compose, tmp_path, capsys) -> None:
    rows = [{"review": f"text {i}", "stars": ["01", "1", "2"][i % 3]} for i in range(30)]
    data = load_data(_files(compose, _write(tmp_path / "d.csv", rows), "dataset.max_eval_samples=30"), seed=0)
    assert data.label_names == ["01", "1", "2"]  # 01 and 1 are two classes; no class 0 without rows
    assert "read as names, as written in d.csv" in capsys.readouterr().out
    every = [*data.splits["train"]["labels"], *data.splits["validation"]["labels"]]
    assert sorted(set(every)) == [0, 1, 2]


def test_an_integer_typed_column_holds_class_ids(compose, tmp_path, capsys) -> None:
    rows = [{"review": f"text {i}", "stars": i % 2 * 2} for i in range(30)]  # 0 and 2: JSON integers
    data = load_data(_files(compose, _write(tmp_path / "d.jsonl", rows)), seed=0)
    assert data.label_names == ["0", "1", "2"]
    assert "read as class ids 0–2 (an integer column in d.jsonl)" in capsys.readouterr().out


def test_an_empty_text_cell_is_named_or_skipped_and_counted(compose, tmp_path, capsys) -> None:
    rows = [dict(r) for r in ROWS]
    rows[6]["review"], rows[9]["review"] = "", "   "
    f = _write(tmp_path / "d.csv", rows)
    with pytest.raises(FtcliError, match=r"^empty text in row 7 of d\.csv \(column 'review', dataset\.text_column\)"):
        load_data(_files(compose, f), seed=0)
    data = load_data(_files(compose, f, "dataset.empty_text=skip"), seed=0)
    assert len(data.splits["train"]) + len(data.splits["validation"]) == 58
    assert "left out 2 rows with an empty text cell of d.csv" in capsys.readouterr().out


def test_a_literal_nan_target_is_not_a_number(compose, tmp_path) -> None:
    rows = [{"review": f"text {i}", "stars": str(i)} for i in range(20)]
    rows[3]["stars"] = "nan"
    f = _write(tmp_path / "d.csv", rows)
    with pytest.raises(FtcliError, match=r"label 'nan' is not a number in row 4 of d\.csv"):
        load_data(_files(compose, f), seed=0, task="text_regression")


def test_a_constant_target_is_refused_not_scored_zero(compose, tmp_path) -> None:
    f = _write(tmp_path / "d.csv", [{"review": f"text {i}", "stars": "3"} for i in range(20)])
    with pytest.raises(FtcliError, match=r"every target is 3; a constant target has no correlation"):
        load_data(_files(compose, f), seed=0, task="text_regression")
