"""Audio encoders: the feature extractor, an audio classifier or a character CTC model, and the convolutional
feature encoder of wav2vec2-style models (what stays frozen).

Every model loads through transformers' ``AutoModelForAudioClassification`` / ``AutoModelForCTC`` and its
``AutoFeatureExtractor`` (a CTC checkpoint: a ``Wav2Vec2Processor`` with the character tokenizer), so checkpoints
work in plain transformers and in its ``audio-classification`` and ``automatic-speech-recognition`` pipelines.
``model.init=random`` builds an architecture untrained from a model type (``wav2vec2``, ``hubert``, ``wavlm``,
``audio-spectrogram-transformer``) and ``config_overrides``, or from a real model's config.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModelForAudioClassification,
    AutoModelForCTC,
    Wav2Vec2CTCTokenizer,
    Wav2Vec2Processor,
)
from transformers.models.auto import feature_extraction_auto as auto

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import ModelConfig
from ftcli.models.architectures import describe_head, is_feature_encoder
from ftcli.models.loading import _load_weights, load_part
from ftcli.models.packaged import resolve
from ftcli.models.vision import is_model_type, label_config, plain

PAD, UNK, WORD = "<pad>", "<unk>", "|"  # CTC's blank is the pad token (id 0), as transformers' CTC heads expect


def load_extractor(cfg: ModelConfig, cache_dir: Path) -> Any:
    """The checkpoint's feature extractor; a random-init model type gets its architecture's default one (raw
    waveforms: normalised per clip, with an attention mask)."""
    if cfg.init == "random" and is_model_type(cfg.name_or_path):
        name = auto.FEATURE_EXTRACTOR_MAPPING_NAMES.get(cfg.name_or_path)
        if not name:
            raise FtcliError(
                f"model.name_or_path={cfg.name_or_path}: transformers has no audio feature extractor for it"
            )
        extractor = auto.feature_extractor_class_from_name(name)()
        if name == "Wav2Vec2FeatureExtractor":
            extractor.return_attention_mask = True  # padding is masked, so a clip's output is its batch's
        return extractor
    path = resolve(cfg.name_or_path, cache_dir)
    return load_part(AutoFeatureExtractor.from_pretrained, path, cfg, "cannot load an audio feature extractor")


def ctc_processor(extractor: Any, vocab: list[str], cache_dir: Path) -> Any:
    """A ``Wav2Vec2Processor``: the feature extractor and a character tokenizer over ``vocab`` (``<pad>`` first: the
    CTC blank; ``|`` between words), what a checkpoint saves and the ASR pipeline loads."""
    blob = json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False)
    path = cache_dir / "ctc_vocab" / f"{hashlib.sha256(blob.encode()).hexdigest()[:16]}.json"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(blob, encoding="utf-8")
        os.replace(tmp, path)
    tokenizer = Wav2Vec2CTCTokenizer(
        str(path), unk_token=UNK, pad_token=PAD, word_delimiter_token=WORD, bos_token=None, eos_token=None
    )
    return Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer)


def build_classifier(
    cfg: ModelConfig, names: list[str], seed: int, problem_type: str, cache_dir: Path
) -> tuple[Any, str]:
    """An audio classifier with ``len(names)`` outputs, and a line for the run summary on its head."""
    labels = label_config(names, problem_type)
    torch.manual_seed(seed)  # the new head (and a random backbone) start the same every run
    if cfg.init == "random":
        model = AutoModelForAudioClassification.from_config(_random_config(cfg, labels, cache_dir))
        return model, f"randomly initialised {model.config.model_type}; head {_head(model)}"
    path = resolve(cfg.name_or_path, cache_dir)
    before = load_part(AutoConfig.from_pretrained, path, cfg, "not a model")
    old = [str(v) for _, v in sorted(dict(getattr(before, "id2label", None) or {}).items())]
    model = _load_weights(cfg, AutoModelForAudioClassification, path, ignore_mismatched_sizes=True, **labels)
    if old == list(names) and any(a.endswith("ForAudioClassification") for a in before.architectures or []):
        return model, f"head {_head(model)} kept: the checkpoint's labels are this dataset's"
    for layer in (getattr(model, "projector", None), getattr(model, "classifier", None)):
        if isinstance(layer, torch.nn.Linear):  # a head of the same size for other labels: not this data's
            layer.reset_parameters()
    return model, f"new head {_head(model)} for {len(names)} classes"


def build_ctc(cfg: ModelConfig, vocab: list[str], seed: int, cache_dir: Path) -> tuple[Any, str]:
    """A CTC model whose head has one output per character of ``vocab`` (blank = pad = 0), its mean-reduced loss
    (each clip's loss over its target length, as transformers' examples train) with infinite losses zeroed (a clip
    too short for its transcript)."""
    ctc = {
        "vocab_size": len(vocab),
        "pad_token_id": 0,
        "ctc_loss_reduction": "mean",
        "ctc_zero_infinity": True,
        **{k: v for k, v in label_config(vocab, "").items() if k != "problem_type"},  # the vocabulary, by id
    }
    torch.manual_seed(seed)
    if cfg.init == "random":
        model = AutoModelForCTC.from_config(_random_config(cfg, ctc, cache_dir))
        return model, f"randomly initialised {model.config.model_type}; CTC head over {len(vocab)} characters"
    path = resolve(cfg.name_or_path, cache_dir)
    model = _load_weights(cfg, AutoModelForCTC, path, ignore_mismatched_sizes=True, **ctc)
    return model, f"new CTC head over {len(vocab)} characters (blank = {PAD})"


def _random_config(cfg: ModelConfig, settings: dict[str, Any], cache_dir: Path) -> Any:
    overrides = dict(plain(cfg.config_overrides) or {})
    if is_model_type(cfg.name_or_path):
        return AutoConfig.for_model(cfg.name_or_path, **{**overrides, **settings})
    config = load_part(AutoConfig.from_pretrained, resolve(cfg.name_or_path, cache_dir), cfg, "not a model")
    config.update({**overrides, **settings})  # a real model's architecture, untrained
    return config


def _head(model: Any) -> str:
    try:
        return describe_head(model)
    except Exception:  # an architecture whose head is not one Linear (AST's norm + dense)
        return type(getattr(model, "classifier", model)).__name__


def feature_encoder(model: Any) -> str | None:
    """The prefix of a wav2vec2-style model's convolutional feature encoder (raw samples → frames), or None."""
    for name, module in model.named_modules():
        if name and is_feature_encoder(module):
            return f"{name}."
    return None


def frame_mask(model: Any, frames: int, attention_mask: Any) -> Any:
    """[B, frames] bool: the encoder frames that come from each clip's samples (not its padding)."""
    if attention_mask is None:
        return None
    if hasattr(model, "_get_feature_vector_attention_mask"):  # wav2vec2-style: the mask is over raw samples
        return model._get_feature_vector_attention_mask(frames, attention_mask).bool()
    if hasattr(model, "_get_output_attention_mask"):  # a subsampling spectrogram encoder (Parakeet): over its frames
        return model._get_output_attention_mask(attention_mask, target_length=frames).bool()
    return None
