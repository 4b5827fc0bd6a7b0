"""A checkpoint of ftcli's pooled head loads in plain transformers as the README shows it: no prompt, no
warning, the same logits as ftcli, and ``pipeline("text-classification")`` agrees with ``ftcli predict``.

Each check runs in a fresh interpreter with stdin closed, as a newcomer's script would: in this process
ftcli has registered its classes, which would hide what a plain transformers user sees.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.runs import FP32, ROOT, TINY, ftcli, train_once

TEXTS = ["it's a gorgeous, witty, seductive movie", "a dull, lifeless film", "ok"]

README_SNIPPET = """
import json, sys
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
path = sys.argv[1]
model = AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained(path)
with torch.inference_mode():
    enc = tokenizer(json.loads(sys.argv[2]), padding=True, truncation=True, return_tensors="pt")
    print(json.dumps(model.eval()(**enc).logits.tolist()))
"""

PIPELINE = """
import json, sys
from transformers import pipeline
classify = pipeline("text-classification", model=sys.argv[1], trust_remote_code=True)
print(json.dumps(classify(json.loads(open(sys.argv[2]).read()), truncation=True, batch_size=32)))
"""


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    """The best checkpoint of a short feature-extraction run: ftcli's pooled head (custom code)."""
    out, _, _ = train_once(tmp_path_factory, cache_dir, "pooled_run", *TINY, "trainer.seed=3")
    best = out / "checkpoints" / "best"
    assert json.loads((best / "config.json").read_text())["model_type"] == "ftcli_pooled"
    return best


def plain_python(script: str, *args: str) -> subprocess.CompletedProcess:
    """A script in a fresh interpreter that has never imported ftcli, with stdin closed (no one to answer)."""
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=Path(args[0]).parent,  # not the repo: `ftcli` must not be importable by accident
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": ""},
        timeout=300,
    )


def chatter(stderr: str) -> list[str]:
    """What a script printed on stderr besides transformers' usual "Loading weights" progress bar."""
    lines = (line.strip() for line in re.split(r"[\r\n]", stderr))
    return [line for line in lines if line and not line.startswith("Loading weights")]


def test_the_readme_snippet_loads_silently_and_gives_ftcli_logits(checkpoint: Path) -> None:
    import torch

    from ftcli.training.checkpoint import load_checkpoint

    r = plain_python(README_SNIPPET, str(checkpoint), json.dumps(TEXTS))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Do you wish to run the custom code" not in r.stdout + r.stderr
    assert chatter(r.stderr) == [], r.stderr  # no "model of type `ftcli_pooled` ... of type ``" warning
    plain = torch.tensor(json.loads(r.stdout.strip().splitlines()[-1]))

    model, tokenizer, run_cfg = load_checkpoint(checkpoint)
    with torch.inference_mode():
        enc = tokenizer(TEXTS, padding=True, truncation=True, max_length=run_cfg.model.max_length, return_tensors="pt")
        ours = model.eval()(**enc).logits
    torch.testing.assert_close(plain, ours, rtol=0, atol=1e-5)


def test_the_tokenizer_truncates_where_ftcli_does(checkpoint: Path) -> None:
    from transformers import AutoTokenizer

    config = json.loads((checkpoint / "tokenizer_config.json").read_text())
    assert config["model_max_length"] == 64  # model=tiny's model.max_length
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    assert len(tokenizer("word " * 500, truncation=True)["input_ids"]) == 64


@pytest.mark.slow  # ftcli predict and the pipeline on all 872 sentences, ~25 s on 2 cores: make test-slow
def test_pipeline_agrees_with_ftcli_predict_on_the_validation_set(checkpoint: Path, tmp_path: Path) -> None:
    dev = ROOT / "ftcli" / "assets" / "sst2" / "dev.tsv"
    r = ftcli(
        "predict", f"checkpoint={checkpoint}", f"input={dev}", f"output={tmp_path / 'ours.jsonl'}", "hardware=cpu", FP32
    )
    assert r.returncode == 0, r.stderr[-3000:]
    ours = [json.loads(line) for line in (tmp_path / "ours.jsonl").read_text().splitlines()]
    assert len(ours) == 872
    (tmp_path / "texts.json").write_text(json.dumps([row["sentence"] for row in ours]))

    r = plain_python(PIPELINE, str(checkpoint), str(tmp_path / "texts.json"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Do you wish to run the custom code" not in r.stdout + r.stderr
    assert chatter(r.stderr) == [], r.stderr
    theirs = json.loads(r.stdout.strip().splitlines()[-1])
    assert [t["label"] for t in theirs] == [o["predicted_label"] for o in ours]
    for t, o in zip(theirs, ours, strict=True):
        assert abs(t["score"] - o["probabilities"][t["label"]]) < 1e-5


TOKENIZER_FIRST = """
import json, sys
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
path = sys.argv[1]
tokenizer = AutoTokenizer.from_pretrained(path)  # before anything ran the folder's code
model = AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=True)
with torch.inference_mode():
    enc = tokenizer(json.loads(sys.argv[2]), padding=True, truncation=True, return_tensors="pt")
    print(json.dumps(model.eval()(**enc).logits.tolist()))
"""


def test_a_safetensors_export_reads_its_tokenizer_first_without_a_prompt(checkpoint: Path, compose, tmp_path) -> None:
    """``ftcli export format=safetensors`` of the pooled head: config.json is the backbone's type (no AutoConfig code),
    so AutoTokenizer alone asks nothing, and the model (its code still shipped) gives ftcli's logits."""
    import torch
    from helpers.runs import compose_cmd

    from ftcli.export import run_export
    from ftcli.training.checkpoint import load_checkpoint

    out = tmp_path / "st"
    run_export(compose_cmd("export", f"checkpoint={checkpoint}", "format=safetensors", f"output={out}", out=tmp_path))
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "bert" and config["pooling"] == "mean" and "backbone" not in config
    assert list(config["auto_map"]) == ["AutoModelForSequenceClassification"] and (out / "modeling_ftcli.py").is_file()

    r = plain_python(TOKENIZER_FIRST, str(out), json.dumps(TEXTS))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Do you wish to run the custom code" not in r.stdout + r.stderr
    assert chatter(r.stderr) == [], r.stderr
    plain = torch.tensor(json.loads(r.stdout.strip().splitlines()[-1]))
    model, tokenizer, run_cfg = load_checkpoint(checkpoint)
    with torch.inference_mode():
        enc = tokenizer(TEXTS, padding=True, truncation=True, max_length=run_cfg.model.max_length, return_tensors="pt")
        torch.testing.assert_close(plain, model.eval()(**enc).logits, rtol=0, atol=1e-5)
