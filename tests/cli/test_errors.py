"""Bad input through the real CLI: one clear line, exit status 2, no traceback, nothing that looks like a result.

Each row is something a user can get wrong. The config-level basics (a misspelt option, an unknown key,
a wrong type, a few ranges) are in test_config.py; this table covers the rest, from data files to
damaged checkpoints. `ftcli <cmd> ... --debug` shows the traceback these lines replace.

The table calls ``ftcli.cli.main(argv)`` in this process (the same code path as the console script,
Hydra included, without paying the imports thirty times); the last tests run real processes.
"""

# ruff: noqa: E501  (the table reads one row per line)
from __future__ import annotations

import csv
import json
import shutil
import signal
import sys
from pathlib import Path

import pytest
import torch
from helpers.runs import ftcli, tiny_classifier

FILES = ["dataset=files", "dataset.train_file={d}/train.csv", "dataset.validation_file={d}/val.csv"]
TINY = [
    "model=tiny",
    "hardware=cpu",
    "trainer.max_steps=2",
    "dataset.max_train_samples=64",
    "dataset.max_eval_samples=32",
]
NER = ["task=token_classification", "dataset=files", "dataset.text_column=tokens", "dataset.label_column=tags"]
FOLDER = ["model=bert", "model.max_length=32", "hardware=cpu", "trainer.max_steps=2", *FILES]  # a local folder


def _csv(path: Path, rows: list[tuple], header: tuple = ("text", "label")) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


@pytest.fixture(scope="module")
def d(tmp_path_factory) -> Path:
    """Data files, model folders and checkpoints, good and damaged, built once for the table."""
    from ftcli.training.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("bad")
    texts = [f"sample {i} is {'good' if i % 2 else 'bad'}" for i in range(40)]
    _csv(root / "train.csv", [(t, i % 2) for i, t in enumerate(texts)])
    _csv(root / "val.csv", [(t, i % 2) for i, t in enumerate(texts[:10])])
    _csv(root / "three.csv", [(t, i % 3) for i, t in enumerate(texts)])
    _csv(root / "val5.csv", [("fine", 0), ("odd", 5)])
    _csv(root / "strings.csv", [(t, "pos" if i % 2 else "neg") for i, t in enumerate(texts)])
    _csv(root / "val_meh.csv", [("fine", "pos"), ("odd", "meh")])
    _csv(root / "empty_label.csv", [(t, "" if i == 3 else i % 2) for i, t in enumerate(texts)])
    _csv(root / "fractional.csv", [(t, [1.0, 1.5, 0.0][i % 3]) for i, t in enumerate(texts)])
    _csv(root / "header_only.csv", [])
    (root / "zero.csv").write_bytes(b"")
    (root / "tags.conll").write_text("EU B-ORG\nrejects O\nGerman B-MISC\ncalls O\n\nPeter B-PER\nBlackburn I-PER\n")
    (root / "ragged.conll").write_text("EU B-ORG\nrejects O\n\nPeter B-PER\nBlackburn\n")
    (root / "odd_tag.conll").write_text("EU B-ORG\nrejects O\n\nPeter X-PER\n")
    (root / "tags.jsonl").write_text('{"tokens": ["EU", "rejects"], "tags": ["B-ORG", "O"]}\n')
    (root / "empty_sentence.jsonl").write_text('{"tokens": ["EU"], "tags": ["B-ORG"]}\n{"tokens": [], "tags": []}\n')
    (root / "topics.jsonl").write_text(
        '{"text": "a goal", "labels": ["sports"]}\n{"text": "a vote", "labels": ["politics"]}\n'
    )
    (root / "topics_val.jsonl").write_text(
        '{"text": "a goal", "labels": ["sports"]}\n{"text": "chess", "labels": ["chess"]}\n'
    )
    (root / "notes.txt").write_text("text,label\nhi,0\n")
    (root / "a_file").write_text("not a folder")
    (root / "not_a_model").mkdir()
    (root / "not_a_model" / "README.md").write_text("just notes")

    model, tok = tiny_classifier(texts, root / "tok")
    save_checkpoint(model, tok, root / "model", None, {})  # a model folder and a checkpoint, with manifest

    def variant(name: str) -> Path:
        shutil.copytree(root / "model", root / name)
        return root / name

    ckpt = variant("ckpt_truncated")
    with (ckpt / "model.safetensors").open("r+b") as f:
        f.truncate(f.seek(0, 2) // 2)
    dl = variant("download_truncated")  # a hub download cut short: no manifest, half the weights
    (dl / "manifest.json").unlink()
    with (dl / "model.safetensors").open("r+b") as f:
        f.truncate(f.seek(0, 2) // 2)
    pk = variant("pickled")
    (pk / "manifest.json").unlink()
    (pk / "model.safetensors").unlink()
    torch.save(model.state_dict(), pk / "pytorch_model.bin")
    nt = variant("no_tokenizer")
    (nt / "manifest.json").unlink()
    for p in nt.glob("tokenizer*"):
        p.unlink()
    ev = variant("custom_code")  # code that would leave a mark if anything imported it
    (ev / "manifest.json").unlink()
    cfg = json.loads((ev / "config.json").read_text())
    cfg["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForSequenceClassification": "evil.EvilModel"}
    (ev / "config.json").write_text(json.dumps(cfg))
    (ev / "evil.py").write_text(f"open({str(root / 'evil-ran')!r}, 'w').write('ran')\n")
    return root


CASES = {
    # config: the pieces test_config.py does not cover
    "unknown dataset option": (
        ["train", "dataset=sst"],
        "dataset=sst: no such option; choose one of "
        + ", ".join(sorted(p.stem for p in (Path(__file__).parents[2] / "configs" / "dataset").glob("*.yaml")))
        + " (did you mean 'sst2'?)",
    ),
    "unknown key added with +": (["train", "+trainer.epoch=3"], "unknown key 'trainer.epoch' (did you mean 'epochs'?)"),
    "_target_ is not a key": (["train", "+model._target_=os.system"], "unknown key 'model._target_'"),
    "bool that is not a bool": (
        ["train", "trainer.save_checkpoints=maybe"],
        "trainer.save_checkpoints: Value 'maybe' is not a valid bool",
    ),
    "ratio above 1": (["train", "strategy.warmup_ratio=1.5"], "strategy.warmup_ratio=1.5: must be < 1.0"),
    "zero max_steps": (
        ["train", "trainer.max_steps=0"],
        "trainer.max_steps=0: use -1 (epochs decide) or a positive number",
    ),
    "eval without a checkpoint": (["eval"], "checkpoint is required but not set (add checkpoint=...)"),
    # data
    "missing validation file": (
        ["train", *TINY, *FILES[:2], "dataset.validation_file={d}/nope.csv"],
        "dataset.validation_file={d}/nope.csv: no such file",
    ),
    "unknown file format": (
        ["train", *TINY, "dataset=files", "dataset.train_file={d}/notes.txt"],
        "dataset.train_file={d}/notes.txt: unknown format; use one of .csv",
    ),
    "header-only file": (
        ["train", *TINY, "dataset=files", "dataset.train_file={d}/header_only.csv"],
        "dataset.train_file={d}/header_only.csv: has no examples",
    ),
    "zero-byte file": (
        ["train", *TINY, "dataset=files", "dataset.train_file={d}/zero.csv"],
        "dataset.train_file={d}/zero.csv: has no examples",
    ),
    "missing label column": (
        ["train", *TINY, *FILES, "dataset.label_column=stars"],
        "dataset.label_column=stars: no such column in the train split; it has text, label",
    ),
    "missing text-pair column": (
        ["train", *TINY, *FILES, "dataset.text_pair_column=hypothesis"],
        "dataset.text_pair_column=hypothesis: no such column",
    ),
    "label id out of range": (
        ["train", *TINY, *FILES[:2], "dataset.validation_file={d}/val5.csv"],
        "label 5 in row 2 of val5.csv is outside the label set ['0', '1']; set dataset.label_names, or fix the data",
    ),
    "unmapped string label": (
        [
            "train",
            *TINY,
            "dataset=files",
            "dataset.train_file={d}/strings.csv",
            "dataset.validation_file={d}/val_meh.csv",
        ],
        "label 'meh' in row 2 of val_meh.csv is outside the label set ['neg', 'pos']",
    ),
    "a runtime that is not installed": (
        ["train", *TINY, "hardware=tpu"],
        "hardware=tpu: torch_xla (for TPUs) is not installed",
    ),
    "empty label cell": (
        ["train", *TINY, "dataset=files", "dataset.train_file={d}/empty_label.csv"],
        "empty label in row 4 of empty_label.csv (column 'label')",
    ),
    "fractional label in a classification file": (
        ["train", *TINY, "dataset=files", "dataset.train_file={d}/fractional.csv"],
        "label 1.5 in row 2 of fractional.csv is not a class id: the labels look like numbers to predict — "
        "for a regression use task=text_regression",
    ),
    # text tasks beyond one label (token classification, multi-label)
    "tag file with a ragged line": (
        ["train", *TINY, *NER, "dataset.train_file={d}/tags.conll", "dataset.validation_file={d}/ragged.conll"],
        "line 5 of ragged.conll has 1 column(s) where the lines before have 2: a CoNLL file holds one token per line",
    ),
    "unknown tag scheme": (
        ["train", *TINY, *NER, "dataset.train_file={d}/tags.conll", "task.tag_scheme=IOB3"],
        "task.tag_scheme=IOB3: must be one of auto, IOB1, IOB2, BIOES (did you mean 'IOB2'?)",
    ),
    "tag of no scheme": (
        ["train", *TINY, *NER, "dataset.train_file={d}/odd_tag.conll"],
        "tag 'X-PER' in the sentence at line 4 of odd_tag.conll is not a tag of any of IOB1, IOB2, BIOES",
    ),
    "empty sentence": (
        ["train", *TINY, *NER, "dataset.train_file={d}/tags.jsonl", "dataset.validation_file={d}/empty_sentence.jsonl"],
        "row 2 of empty_sentence.jsonl: an empty sentence (no tokens); remove it or fix the data",
    ),
    "multi-label row with an unseen label": (
        [
            "train",
            *TINY,
            "task=text_multilabel",
            "dataset=files",
            "dataset.train_file={d}/topics.jsonl",
            "dataset.validation_file={d}/topics_val.jsonl",
            "dataset.text_column=text",
            "dataset.label_column=labels",
        ],
        "label 'chess' in row 2 of topics_val.jsonl is not one of the labels ['politics', 'sports']; a multi-label row "
        "may only hold labels of the training data",
    ),
    # models
    "model folder missing": (
        ["train", *FOLDER, "model.name_or_path={d}/nowhere"],
        "model.name_or_path={d}/nowhere: no such folder",
    ),
    "folder that is not a model": (
        ["train", *FOLDER, "model.name_or_path={d}/not_a_model"],
        "model.name_or_path={d}/not_a_model: not a model folder (no config.json)",
    ),
    "interrupted download": (
        ["train", *FOLDER, "model.name_or_path={d}/download_truncated"],
        "model.name_or_path={d}/download_truncated: cannot load the weights",
    ),
    "pickle-only weights": (
        ["train", *FOLDER, "model.name_or_path={d}/pickled"],
        "weights are only in pickle format (pytorch_model.bin), which can run code when loaded; convert them to safetensors, or set model.allow_pickle=true",
    ),
    "model ships its own code": (
        ["train", *FOLDER, "model.name_or_path={d}/custom_code"],
        "the model ships its own code (evil.py), which ftcli does not run; set model.trust_remote_code=true only if you trust it",
    ),
    "model without tokenizer": (
        ["train", *FOLDER, "model.name_or_path={d}/no_tokenizer"],
        "the folder has no tokenizer files",
    ),
    "max_length above the model's": (
        ["train", *FOLDER, "model.name_or_path={d}/model", "model.max_length=33"],
        "model.max_length=33: this model reads at most 32 tokens",
    ),
    # checkpoints
    "truncated checkpoint": (
        ["eval", "checkpoint={d}/ckpt_truncated", "hardware=cpu", *FILES],
        "checkpoint={d}/ckpt_truncated: model.safetensors is truncated or changed",
    ),
    "checkpoint with other labels": (
        [
            "eval",
            "checkpoint={d}/model",
            "hardware=cpu",
            "dataset=files",
            "dataset.train_file={d}/three.csv",
            "dataset.validation_file={d}/three.csv",
        ],
        "checkpoint={d}/model: the model has 2 labels ['LABEL_0', 'LABEL_1']; label 2 in row 3 of three.csv is outside the label set",
    ),
    "pickle-only checkpoint": (
        ["eval", "checkpoint={d}/pickled", "hardware=cpu", *FILES],
        "set eval.allow_pickle=true if you trust their source",
    ),
    "run dir without checkpoints": (
        ["eval", "checkpoint={d}/not_a_model", "hardware=cpu"],
        "not a checkpoint (no config.json) nor a run dir (no checkpoints/best)",
    ),
    "split the dataset lacks": (
        ["eval", "checkpoint={d}/model", "hardware=cpu", *FILES, "eval.split=test"],
        "eval.split=test: dataset files has train, validation",
    ),
    # where results go, and runs that go wrong
    "run dir under a file": (
        ["train", *TINY, "hydra.run.dir={d}/a_file/run"],
        "hydra.run.dir={d}/a_file/run: cannot create the run directory ({d}/a_file is a file)",
    ),
    "eval dir under a file": (
        ["eval", "checkpoint={d}/model", "hydra.run.dir={d}/a_file/eval"],
        "hydra.run.dir={d}/a_file/eval: cannot create the run directory",
    ),
    "loss becomes NaN": (
        ["train", *TINY, *FILES, "strategy=full", "+model.config_overrides.initializer_range=1e30"],
        "loss is nan at step 1: training stopped; no checkpoint had been saved",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gets_one_clear_line(case: str, d: Path, tmp_path: Path, cache_dir: Path, capfd, monkeypatch) -> None:
    from ftcli.cli.main import main

    args, expected = CASES[case]
    args = [a.format(d=d) for a in args]
    run = tmp_path / "run"
    if not any(a.startswith("hydra.run.dir=") for a in args):
        args.append(f"hydra.run.dir={run}")
    monkeypatch.setenv("FTCLI_CACHE_DIR", str(cache_dir))
    monkeypatch.setattr(sys, "argv", ["ftcli"])  # main() hands argv to Hydra through sys.argv
    with pytest.raises(SystemExit) as exit_:
        main(args)
    out, err = capfd.readouterr()
    lines = err.strip().splitlines()
    assert exit_.value.code == 2, err[-3000:]
    assert len(lines) == 1, err[-3000:]
    assert lines[0].startswith("ftcli: error: ") and expected.format(d=d) in lines[0], lines[0]
    assert "Traceback" not in out + err
    print(f"\n[{case}] {lines[0]}")  # pytest -s: the acceptance list of inputs and messages
    # nothing that looks like a result: no final metrics, no eval report, no checkpoint
    assert not (run / "metrics.json").exists() and not (run / "eval.json").exists()
    assert not list(run.glob("checkpoints/*/manifest.json"))
    assert not (d / "evil-ran").exists()  # no code from a model folder ran


def test_debug_shows_the_traceback(d: Path, tmp_path: Path) -> None:
    r = ftcli(
        "eval",
        f"checkpoint={d}/ckpt_truncated",
        "hardware=cpu",
        *[a.format(d=d) for a in FILES],
        f"hydra.run.dir={tmp_path}/run",
        "--debug",
    )
    assert r.returncode != 0 and "Traceback" in r.stderr and "FtcliError" in r.stderr


def test_a_failed_run_says_so_in_its_run_dir(d: Path, tmp_path: Path, cache_dir: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text("{}")  # left by an earlier finished run in the same dir
    r = ftcli(
        "train",
        *TINY,
        *[a.format(d=d) for a in FILES],
        "strategy=full",
        "+model.config_overrides.initializer_range=1e30",
        f"hydra.run.dir={run}",
        env={"FTCLI_CACHE_DIR": str(cache_dir)},
    )
    assert r.returncode == 2
    assert not (run / "metrics.json").exists()  # the stale result is gone, not mistaken for this run's
    assert (run / "error.txt").read_text().startswith("loss is nan at step 1")


def test_a_truncated_vocab_cache_entry_is_rebuilt(compose, tmp_path: Path) -> None:
    from ftcli.models.text import load_tokenizer

    cfg = compose("model=tiny")
    texts = [f"sample {i} is {'good' if i % 2 else 'bad'}" for i in range(200)]
    first = load_tokenizer(cfg.model, tmp_path, texts)
    (entry,) = (tmp_path / "tokenizers").glob("wordpiece-*/tokenizer.json")
    entry.write_text(entry.read_text()[:100])  # the run that wrote it was killed
    again = load_tokenizer(cfg.model, tmp_path, texts)
    assert set(again.get_vocab()) == set(first.get_vocab())  # (WordPiece may number ties differently)
    json.loads(entry.read_text())  # rebuilt in place, whole


def test_a_truncated_feature_cache_entry_is_recomputed(tmp_path: Path) -> None:

    import datasets

    from ftcli.models.shipped.modeling_ftcli import PooledClassifierConfig, PooledClassifierForSequenceClassification
    from ftcli.tasks.inputs.text import TextInputs
    from ftcli.training.features import cached_features

    texts = [f"sample {i} is {'good' if i % 2 else 'bad'}" for i in range(20)]
    classifier, tok = tiny_classifier(texts, tmp_path / "tok")
    backbone = classifier.bert
    model = PooledClassifierForSequenceClassification(
        PooledClassifierConfig(backbone=backbone.config.to_dict(), num_labels=2), backbone=backbone
    )
    ds = datasets.Dataset.from_list([{**tok(t), "labels": i % 2} for i, t in enumerate(texts)])
    path = tmp_path / "features" / "key.safetensors"

    def compute():
        from accelerate import Accelerator

        return TextInputs(tmp_path).compute(model, ds, tok, 8, Accelerator(cpu=True))

    feats, hit = cached_features(compute, "mean", path)
    assert not hit and feats.shape == (20, 16)
    path.write_bytes(path.read_bytes()[:50])  # interrupted copy / partial write
    again, hit = cached_features(compute, "mean", path)
    assert not hit and torch.equal(again, feats)
    assert cached_features(compute, "mean", path)[1]  # and the rewritten entry is a hit


def test_nan_loss_stops_at_its_step_and_keeps_the_last_good_checkpoint(compose, d: Path, monkeypatch) -> None:
    import re

    from ftcli.config.errors import FtcliError
    from ftcli.runtime.files import verify_manifest
    from ftcli.train import train
    from ftcli.training.checkpoint import load_checkpoint
    from ftcli.training.strategies.base import Strategy

    calls = {"n": 0}

    def nan_at_step_5(self, model):  # the 5th micro-batch (= optimizer step 5) diverges
        calls["n"] += 1
        return torch.tensor(float("nan")) if calls["n"] == 5 else None

    monkeypatch.setattr(Strategy, "penalty", nan_at_step_5)
    cfg = compose(
        "model=tiny",
        "hardware=cpu",
        "strategy=full",
        *[a.format(d=d) for a in FILES],
        "trainer.batch_size=4",
        "trainer.max_steps=8",
        "trainer.eval_every_steps=2",
    )
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with pytest.raises(FtcliError) as err:
        train(cfg)
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before  # handlers given back
    out = Path(cfg.output_dir)
    best = out / "checkpoints" / "best"
    saved_step = json.loads((best / "metrics.json").read_text())["step"]
    assert saved_step in (2, 4)
    assert re.fullmatch(
        rf"loss is nan at step 5: training stopped; the last good checkpoint is {re.escape(str(best))} "
        rf"\(step {saved_step}\); lower strategy.lr or check the data",
        str(err.value),
    )
    assert verify_manifest(best)
    model, _, _ = load_checkpoint(best)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert not (out / "metrics.json").exists() and not (out / "checkpoints" / "last").exists()
