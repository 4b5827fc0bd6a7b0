"""Speech recognition with CTC: the vocabulary and greedy decoding agree with transformers' CTC tokenizer, the loss
with its CTC heads, CER/WER with jiwer; a checkpoint agrees with the automatic-speech-recognition pipeline, predict
reads clips and scores a table's transcripts (characters outside the vocabulary said once), eval reproduces train."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import jiwer
import numpy as np
import pytest
import torch
from helpers.runs import FP32, compose_cmd

from ftcli.config.registry import ASSETS_DIR
from ftcli.runtime.inference import RAGGED_PAD
from ftcli.tasks.objectives.ctc import ctc_loss, encode, transcripts, vocabulary

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from asr_pipeline_check import pipeline_transcripts  # noqa: E402  (the ASR pipeline on each clip alone)

PHRASES = ASSETS_DIR / "speech" / "phrases"
SMALL = [
    "dataset=speech_phrases", "model=tiny_wav2vec2", "hardware=cpu", FP32, "trainer.batch_size=8",
    "dataset.max_train_samples=16", "dataset.max_eval_samples=8", "strategy=full",
]  # fmt: skip


@pytest.fixture(autouse=True)
def audio_cache(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FTCLI_CACHE_DIR", str(cache_dir))
    return cache_dir


def _tokenizer(names: list[str], tmp_path: Path):
    from transformers import Wav2Vec2FeatureExtractor

    from ftcli.models.audio import ctc_processor

    return ctc_processor(Wav2Vec2FeatureExtractor(), names, tmp_path).tokenizer


def test_greedy_decoding_and_the_vocabulary_agree_with_the_ctc_tokenizer(tmp_path) -> None:
    names = vocabulary(["go left", "stop", "up down"])
    assert names[:3] == ["<pad>", "<unk>", "|"] and names[3:] == sorted(set("goleftstopupdown"))
    tok = _tokenizer(names, tmp_path)
    ids, unknown = encode(["go left", "go ñ"], names)
    assert ids[0] == tok("go left").input_ids and unknown == {"ñ": 1}
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(20, 30, len(names))).astype(np.float32) * 3
    logits[5:, 25:] = RAGGED_PAD  # shorter clips: frames past their end
    ours = transcripts(logits, names)
    for row, text in zip(logits, ours, strict=True):
        real = row[~(row == RAGGED_PAD).all(-1)]
        assert text == " ".join(tok.decode(real.argmax(-1)).split())  # whitespace runs as one
    assert sum(bool(t) for t in ours) > 15


def test_the_loss_is_transformers_ctc_loss_and_the_rates_are_jiwers() -> None:
    from transformers import AutoConfig, AutoModelForCTC

    torch.manual_seed(0)
    config = AutoConfig.for_model("wav2vec2", hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=64, conv_dim=[16] * 5, conv_stride=[5, 4, 4, 2, 2],
                                  conv_kernel=[10, 8, 4, 4, 4], vocab_size=12, pad_token_id=0,
                                  ctc_loss_reduction="mean", ctc_zero_infinity=True,
                                  feat_extract_norm="layer")  # fmt: skip
    model = AutoModelForCTC.from_config(config).eval()
    values = torch.randn(3, 8000)
    labels = torch.tensor([[3, 4, 5, 2, 6], [7, 8, -100, -100, -100], [9, 10, 11, 3, -100]])
    with torch.inference_mode():
        out = model(input_values=values, labels=labels)
    assert ctc_loss(out.logits.numpy(), labels.numpy()) == pytest.approx(float(out.loss), rel=1e-5)
    from ftcli.metrics.asr import cer, wer

    refs, hyps = ["go left now", "stop", "up up down"], ["go lift now", "stop it", "up down"]
    assert cer(refs, hyps) == pytest.approx(jiwer.cer(refs, hyps)) and wer(refs, hyps) == pytest.approx(
        jiwer.wer(refs, hyps)
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path):
    """A short run's best checkpoint, and its result."""
    from helpers.runs import train_once

    out, _, result = train_once(tmp_path_factory, cache_dir, "ctc", *SMALL, "trainer.max_steps=4")
    return out / "checkpoints" / "best", result


def _ours_and_the_pipelines(ckpt: Path, tmp_path: Path, n: int = 10) -> tuple[list[str], list[str], dict]:
    """``ftcli predict`` on a table of ``n`` validation clips (batched, padded) and the ASR pipeline on each clip."""
    from ftcli.predict import run_predict

    rows = list(csv.DictReader((PHRASES / "validation.csv").open()))[:n]
    table = tmp_path / "phrases.csv"
    with table.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "transcript"])
        w.writeheader()
        w.writerows({"path": str(PHRASES / r["path"]), "transcript": r["transcript"]} for r in rows)
    out = tmp_path / "preds.csv"
    result = run_predict(compose_cmd("predict", f"checkpoint={ckpt}", f"input={table}", f"output={out}",
                                     "audio_column=path", out=tmp_path))  # fmt: skip
    ours = [row["predicted_transcript"] for row in csv.DictReader(out.open())]  # the table's own: "transcript"
    return ours, pipeline_transcripts(ckpt, [PHRASES / r["path"] for r in rows]), result


def test_the_asr_pipeline_agrees_with_ftcli_predict(trained, tmp_path) -> None:
    ckpt, _ = trained
    ours, theirs, result = _ours_and_the_pipelines(ckpt, tmp_path)
    assert ours == theirs and len(ours) == 10
    assert result["cer"] >= 0 and "rows" in result


def test_a_log_mel_conformer_trains_and_its_frames_are_masked_as_the_pipeline_reads_them(
    tmp_path_factory, cache_dir, tmp_path
) -> None:
    """Parakeet (80 log-mel bins, 4× subsampled frames): its frames past a clip's own are masked through the model's
    own subsampling arithmetic, so a clip padded in ftcli's batch reads as the pipeline reads it alone."""
    from helpers.runs import train_once

    small = [o for o in SMALL if not o.startswith("model=")]
    out, _, result = train_once(tmp_path_factory, cache_dir, "parakeet", *small, "model=tiny_parakeet",
                                "trainer.max_steps=1", "model.finetune_lr=1e-7")  # fmt: skip
    ckpt = out / "checkpoints" / "best"
    assert "ParakeetForCTC" in (ckpt / "config.json").read_text() and result["cer"] >= 0
    ours, theirs, _ = _ours_and_the_pipelines(ckpt, tmp_path, n=8)
    assert ours == theirs and all(ours)  # untrained: it spells noise, so padding read as speech would show


def test_predict_says_characters_outside_the_vocabulary_once(trained, tmp_path, capsys) -> None:
    from ftcli.predict import run_predict

    ckpt, _ = trained
    table = tmp_path / "odd.csv"
    clip = PHRASES / "validation" / "0000.ogg"
    table.write_text(f"path,transcript\n{clip},go ñ\n{clip},ñ stop 7\n")
    run_predict(compose_cmd("predict", f"checkpoint={ckpt}", f"input={table}", "audio_column=path", out=tmp_path))
    said = capsys.readouterr().out
    assert said.count("outside the vocabulary") == 1 and "'ñ' ×2" in said and "'7' ×1" in said


def test_eval_reproduces_train_and_predict_transcribes_one_clip(trained, tmp_path) -> None:
    from ftcli.evaluate import run_eval
    from ftcli.predict import run_predict

    ckpt, result = trained
    metrics = run_eval(compose_cmd("eval", f"checkpoint={ckpt}", "eval.plots=false", "eval.bootstrap=50", out=tmp_path))
    assert metrics["cer"] == pytest.approx(result["cer"]) and metrics["wer"] == pytest.approx(result["wer"])
    assert metrics["ci95"]["cer"][0] <= metrics["cer"] <= metrics["ci95"]["cer"][1]
    one = run_predict(compose_cmd("predict", f"checkpoint={ckpt}", f"audio={PHRASES / 'validation' / '0000.ogg'}",
                                  out=tmp_path))  # fmt: skip
    assert isinstance(one["transcript"], str)
