"""Audio classification on the shipped synthetic keywords with a tiny random wav2vec2: every strategy trains what it
says, the pretrained feature encoder stays bit-identical, the feature cache is exact and hit on the second run,
checkpoints agree with transformers' audio-classification pipeline, ONNX matches PyTorch, predict reads files and
folders, and bad audio is named in one line."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers.runs import FP32, compose_cmd
from helpers.spy import Spy, assert_trains_what_it_says, len_trainable

from ftcli.config.errors import FtcliError
from ftcli.config.registry import ASSETS_DIR
from ftcli.train import train

KEYWORDS = ASSETS_DIR / "speech" / "keywords"
SMALL = [
    "dataset=speech_keywords", "model=tiny_wav2vec2", "hardware=cpu", FP32, "trainer.batch_size=8",
    "dataset.max_train_samples=16", "dataset.max_eval_samples=8", "trainer.save_checkpoints=false",
]  # fmt: skip
SLOW = pytest.mark.slow  # the same run under more strategies: the default suite keeps three
STRATEGIES = [
    "feature_extract", "full", "lora",
    *(pytest.param(s, marks=SLOW) for s in ("partial", "bitfit", "gradual_unfreeze", "lp_ft")),
]  # fmt: skip


@pytest.fixture(autouse=True)
def audio_cache(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """ftcli eval / predict / export cache clips where FTCLI_CACHE_DIR says: the session's cache, not ~."""
    monkeypatch.setenv("FTCLI_CACHE_DIR", str(cache_dir))
    return cache_dir


def validation_clips(n: int) -> list[Path]:
    """n held-out clips, a few words each."""
    return sorted(KEYWORDS.glob("validation/*/*.ogg"))[:: 600 // n][:n]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_trains_what_it_says(compose, monkeypatch, strategy) -> None:
    spy = Spy(monkeypatch)
    result = train(compose(*SMALL, f"strategy={strategy}", "trainer.max_steps=2", "strategy.warmup_ratio=0"))
    assert result["trainable_params"] == len_trainable(spy)
    assert result["total_params"] == 112_356 + (14_336 if strategy == "lora" else 0)  # LoRA's rank-8 matrices
    assert_trains_what_it_says(spy, strategy, ("projector", "classifier"))  # type: ignore[arg-type]  # the head: both


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny wav2vec2 saved as a pretrained folder (config, weights, feature extractor): model.init=pretrained."""
    from transformers import AutoConfig, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    folder = tmp_path_factory.mktemp("tiny_w2v2")
    torch.manual_seed(0)
    config = AutoConfig.for_model("wav2vec2", hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=64, conv_dim=[16] * 5, conv_stride=[5, 4, 4, 2, 2],
                                  conv_kernel=[10, 8, 4, 4, 4], num_conv_pos_embeddings=16,
                                  num_conv_pos_embedding_groups=4, feat_extract_norm="layer")  # fmt: skip
    Wav2Vec2Model(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(return_attention_mask=True).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("freeze", [True, False])
def test_a_pretrained_feature_encoder_stays_bit_identical_unless_asked(
    compose, monkeypatch, pretrained, freeze
) -> None:
    spy = Spy(monkeypatch)
    model = [f"model.name_or_path={pretrained}", "model.init=pretrained"]
    train(compose(*SMALL, "strategy=full", *model, f"task.freeze_feature_encoder={freeze}", "trainer.max_steps=2"))
    encoder = {n for n in spy.before if n.startswith("wav2vec2.feature_extractor.")}
    assert encoder and (encoder & spy.moved() == set()) == freeze
    assert any(n.startswith("wav2vec2.encoder.") for n in spy.moved())  # the transformer trains either way
    conv = spy.model.wav2vec2.feature_extractor.train()  # a frozen one builds no graph: backward stops above it
    assert conv(torch.randn(2, 4000)).requires_grad == (not freeze)


def test_feature_extract_is_exact_and_its_second_run_hits_the_cache(compose, monkeypatch, tmp_path) -> None:
    from ftcli.tasks.inputs.audio import AudioInputs
    from ftcli.training.features import HeadModel

    calls: list[torch.Tensor] = []
    real = AudioInputs.compute

    def counting(self, model, ds, processor, batch_size, accelerator):
        out = real(self, model, ds, processor, batch_size, accelerator)
        with torch.inference_mode():  # the head on the cached features gives the whole model's logits
            batch = ds.view(None, 0, True).__getitems__(list(range(len(ds))))
            whole = model(**{k: v for k, v in batch.items() if k not in ("labels", "idx")}).logits
            torch.testing.assert_close(HeadModel(self.head(model))(out["pooled"]).logits, whole, atol=1e-5, rtol=0)
        calls.append(out["pooled"])
        return out

    monkeypatch.setattr(AudioInputs, "compute", counting)
    run = [*SMALL, "strategy=feature_extract", "trainer.epochs=1"]

    def own_cache(out: Path):  # the session cache may already hold these features (the every-strategy test)
        cfg = compose(*run, out=out)
        cfg.cache_dir = str(tmp_path / "cache")
        return cfg

    first = train(own_cache(tmp_path / "one"))
    assert len(calls) == 2  # train and validation, once each
    second = train(own_cache(tmp_path / "two"))
    assert len(calls) == 2 and second["accuracy"] == first["accuracy"]  # the second run: cache hits


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    """A short full run's best checkpoint."""
    from helpers.runs import train_once

    keep = [o for o in SMALL if not o.startswith("trainer.save_checkpoints")]
    out, _, _ = train_once(tmp_path_factory, cache_dir, "audio", *keep, "strategy=full", "trainer.max_steps=3")
    return out / "checkpoints" / "best"


def test_the_audio_classification_pipeline_agrees_with_ftcli_predict(trained, tmp_path) -> None:
    from transformers import pipeline

    from ftcli.predict import run_predict

    clips = validation_clips(12)
    listing = tmp_path / "clips.txt"
    listing.write_text("\n".join(map(str, clips)))
    out = tmp_path / "preds.csv"
    run_predict(compose_cmd("predict", f"checkpoint={trained}", f"input={listing}", f"output={out}", out=tmp_path))
    ours = [row["label"] for row in csv.DictReader(out.open())]
    run = pipeline("audio-classification", model=str(trained), device="cpu")
    theirs = []
    for clip in clips:
        audio, rate = sf.read(clip, dtype="float32")  # the same decoded samples (the pipeline's files need ffmpeg)
        theirs.append(run({"raw": audio, "sampling_rate": rate}, top_k=1)[0]["label"])
    assert ours == theirs and len(ours) == 12


@pytest.mark.slow  # torch's dynamo exporter takes a minute over wav2vec2's convolutions
def test_onnx_export_matches_pytorch(trained, tmp_path) -> None:
    from ftcli.export import run_export

    result = run_export(compose_cmd("export", f"checkpoint={trained}", f"output={tmp_path}", out=tmp_path))
    assert result["verified_on"] == 8 and result["max_abs_diff"] <= 1e-4


def test_predict_one_clip_and_a_folder(trained, tmp_path, capsys) -> None:
    from ftcli.predict import run_predict

    clip = validation_clips(1)[0]
    one = run_predict(compose_cmd("predict", f"checkpoint={trained}", f"audio={clip}", out=tmp_path))
    assert one["label"] in one["probabilities"] and abs(sum(one["probabilities"].values()) - 1) < 1e-5
    folder = KEYWORDS / "validation" / "yes"
    result = run_predict(compose_cmd("predict", f"checkpoint={trained}", f"input={folder}", out=tmp_path))
    assert result["rows"] == len(list(folder.glob("*.ogg")))
    with pytest.raises(FtcliError, match=r"nope\.wav: no such audio file"):
        run_predict(compose_cmd("predict", f"checkpoint={trained}", f"audio={tmp_path / 'nope.wav'}", out=tmp_path))


def _folder_with(tmp_path: Path, name: str, write) -> Path:
    """A two-class audio folder of tones, with one more file made by ``write``."""
    for label, freq in (("low", 300), ("high", 2000)):
        (tmp_path / label).mkdir(parents=True, exist_ok=True)
        for i in range(3):
            tone = 0.3 * np.sin(2 * np.pi * freq * np.arange(8000) / 16000)
            sf.write(tmp_path / label / f"{i}.wav", tone.astype(np.float32), 16000)
    write(tmp_path / "low" / name)
    return tmp_path


def test_bad_audio_is_named_in_one_line_or_skipped(compose, tmp_path, capsys) -> None:
    root = _folder_with(tmp_path / "data", "broken.wav", lambda p: p.write_bytes(b"RIFF not really"))
    run = [*SMALL[1:], "dataset=audiofolder", f"dataset.data_dir={root}", "trainer.max_steps=1"]
    with pytest.raises(FtcliError, match=r"broken\.wav: not a readable audio file") as e:
        train(compose(*run))
    assert "\n" not in str(e.value) and "dataset.bad_audio=skip" in str(e.value)
    result = train(compose(*run, "dataset.bad_audio=skip"))
    assert np.isfinite(result["loss"]) and "skipped 1 unreadable clips" in capsys.readouterr().out


def test_a_clip_over_the_limit_stops_the_run_or_is_cut_and_counted(compose, tmp_path, capsys) -> None:
    root = _folder_with(tmp_path / "data", "long.wav", lambda p: sf.write(p, np.zeros(48000, np.float32), 16000))
    run = [
        *SMALL[1:],
        "dataset=audiofolder",
        f"dataset.data_dir={root}",
        "dataset.max_seconds=2",
        "trainer.max_steps=1",
    ]
    with pytest.raises(FtcliError, match=r"long\.wav: 3\.00 s of audio is longer than dataset\.max_seconds=2"):
        train(compose(*run))
    train(compose(*run, "dataset.truncate=true"))
    assert "cut 1 clips to their first 2 s" in capsys.readouterr().out


def test_audio_data_under_a_text_task_is_refused_before_anything_loads(compose) -> None:
    from ftcli.config.validate import validate

    with pytest.raises(FtcliError, match="dataset.source=audiofolder: an audio folder needs task=audio_classification"):
        validate(compose("dataset=speech_keywords", "task=text_classification"))
    with pytest.raises(FtcliError, match="dataset.audio_column=path: audio needs"):
        validate(compose("dataset=speech_phrases", "task=image_classification"))
    with pytest.raises(FtcliError, match=r"dataset.speed=\[1.2, 0.9\]: must be \[low, high\]"):
        validate(compose("dataset=speech_keywords", "dataset.speed=[1.2,0.9]"))
