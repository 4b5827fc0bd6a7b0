"""Audio inputs: an audio column (paths, embedded audio, an audio folder), decoded, mixed to mono, resampled to the
model's rate and held to ``dataset.max_seconds`` once (cached), batches augmented as tensors (speed, shift, gain,
noise), made model inputs by the checkpoint's feature extractor. Two heads read them: an audio classifier
(:class:`AudioInputs`, ``AutoModelForAudioClassification``) and a character CTC model (:class:`SpeechInputs`,
``AutoModelForCTC``, its processor the extractor with the character tokenizer).

The convolutional feature encoder of wav2vec2-style models is a fixed role (``task.freeze_feature_encoder``);
the classifier caches a frozen encoder's pooled features; both predict on audio files and folders and say what
ONNX sees.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoFeatureExtractor, AutoProcessor

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import DatasetConfig, ModelConfig
from ftcli.data.audio.augment import AudioAugment
from ftcli.data.audio.batches import pad
from ftcli.data.audio.decode import AUDIO_SUFFIXES, decode
from ftcli.data.audio.features import model_inputs as features_of
from ftcli.data.audio.features import rate_of, reads_waveforms
from ftcli.data.audio.sets import AudioSet
from ftcli.data.audio.sources import AUDIO, audio_splits, cached_clips, kept_labels
from ftcli.data.batching import loader, sorted_batches, training_batches
from ftcli.data.media import file_column, listed_files
from ftcli.data.tables import Raw
from ftcli.models.architectures import standard_roles
from ftcli.models.audio import build_classifier, build_ctc, ctc_processor, feature_encoder, frame_mask, load_extractor
from ftcli.models.loading import from_checkpoint, model_identity
from ftcli.runtime.inference import RAGGED_PAD, infer, model_inputs
from ftcli.tasks.inputs.images import layer_inputs
from ftcli.tasks.inputs.text import logits_and_labels
from ftcli.tasks.task import BatchPlan, Built, Card, Head, Loaded, OnnxSpec, TaskData

CLASSIFIER = "AutoModelForAudioClassification"
CTC = "AutoModelForCTC"
CLASSIFIER_CARD = Card("audio-classification", CLASSIFIER, "AutoFeatureExtractor", 'run("clip.wav")', "audio=clip.wav")
CTC_CARD = Card("automatic-speech-recognition", CTC, "AutoProcessor", 'run("clip.wav")', "audio=clip.wav")


def extractor_of(processor: Any) -> Any:
    """The feature extractor inside a CTC processor, or the extractor itself."""
    return getattr(processor, "feature_extractor", processor)


def _as_is(batch: Any) -> Any:
    """The DataLoader's collate step: ``__getitems__`` already made the batch."""
    return batch


def fixed_roles(model: Any, freeze: bool, init: str) -> tuple[Any, tuple[str, ...]]:
    """The model's roles, its pretrained convolutional feature encoder fixed when ``freeze`` (a random one trains:
    it has nothing to keep), and the run summary's note on it."""
    encoder = feature_encoder(model)
    if encoder is None:
        return standard_roles(model), ()
    if freeze and init == "pretrained":
        return standard_roles(model, (encoder,)), (f"feature encoder {encoder.rstrip('.')} frozen",)
    why = "randomly initialised" if freeze else "task.freeze_feature_encoder=false"
    return standard_roles(model), (f"feature encoder {encoder.rstrip('.')} trains ({why})",)


class AudioInputs:
    """The dataset's ``audio_column`` (an audio folder: its files), through the checkpoint's feature extractor; the
    model is transformers' ``AutoModelForAudioClassification``."""

    kind = "audio"
    card = CLASSIFIER_CARD

    def __init__(self, cfg: Any, cache_dir: Path) -> None:
        self.freeze = bool(cfg.freeze_feature_encoder)  # wav2vec2-style: the pretrained conv encoder stays
        self.cache_dir = cache_dir  # decoded clips are kept there

    def columns(self, dataset: DatasetConfig) -> list[tuple[str, str | None]]:
        return [("dataset.audio_column", dataset.audio_column or AUDIO)]

    def raw(self, dataset: DatasetConfig) -> Raw:
        return audio_splits(dataset)

    def processor(self, model: ModelConfig, data: TaskData) -> Any:
        return load_extractor(model, self.cache_dir)

    def encode(self, ds: Any, data: TaskData, processor: Any, model: ModelConfig) -> Any:
        extractor = extractor_of(processor)
        clips = cached_clips(ds, data.columns[0], rate_of(extractor), self.cache_dir, data.dataset)
        return AudioSet(clips, kept_labels(ds["labels"], clips), extractor)

    def train_loader(self, ds: Any, data: TaskData, processor: Any, plan: BatchPlan) -> tuple[Any, Any]:
        if plan.max_tokens:
            raise FtcliError(f"trainer.max_tokens={plan.max_tokens}: a token budget is for text; audio batches by size")
        d = data.dataset
        aug = None
        if d.augment:
            speed, gain = (float(v) for v in d.speed), (float(v) for v in d.gain_db)
            snr = tuple(float(v) for v in d.snr_db) if d.snr_db is not None else None
            aug = AudioAugment(tuple(speed), float(d.shift_seconds), tuple(gain), snr)  # type: ignore[arg-type]
        sampler = training_batches(ds.lengths, plan.batch_size, plan.processes, plan.seed)  # similar lengths together
        return loader(ds.view(aug, plan.seed, with_idx=False), sampler, _as_is), sampler

    def eval_loader(self, ds: Any, processor: Any, batch_size: int) -> Any:
        return loader(ds.view(None, 0, with_idx=True), sorted_batches(ds.lengths, batch_size), _as_is)

    def count(self, batch: dict[str, Any]) -> tuple[int, int]:
        return len(batch["labels"]), 0

    def build_model(self, model: ModelConfig, pooling: str, data: TaskData, processor: Any, head: Head) -> Built:
        """The architecture's own pooling (the mean over frames; AST: its tokens) and a new head."""
        built, note = build_classifier(model, head.names, head.seed, head.problem_type, self.cache_dir)
        roles, notes = fixed_roles(built, self.freeze, model.init)
        return Built(built, roles, "native", (note, *notes))

    def outputs(
        self, model: Any, batches: Any, processor: Any, accelerator: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        return logits_and_labels(model, batches, accelerator)

    def load_pretrained(self, folder: Path, trust_remote_code: bool, allow_pickle: bool) -> tuple[Any, Any]:
        model = from_checkpoint(CLASSIFIER, folder, trust_remote_code, allow_pickle)
        return model, AutoFeatureExtractor.from_pretrained(folder, trust_remote_code=trust_remote_code)

    def missing(self, folder: Path) -> str | None:
        found = any((folder / n).is_file() for n in ("preprocessor_config.json", "processor_config.json"))
        return None if found else "no feature extractor (preprocessor_config.json)"

    # ---- a frozen backbone: the head's input, pooled over frames, computed once ----------------
    def applies(self, model: Any) -> bool:
        return self.head(model) is not None

    def identities(self, model: Any, processor: Any, splits: dict[str, Any]) -> dict[str, dict[str, Any]]:
        backbone = {**model_identity(model), "extractor": extractor_of(processor).to_json_string()}
        return {split: {**backbone, "clips": ds.key} for split, ds in splits.items()}

    def compute(self, model: Any, ds: Any, processor: Any, batch_size: int, accelerator: Any) -> dict[str, Any]:
        """What the head reads, for every clip: wav2vec2-style models' last hidden states averaged over the clip's
        own frames (their projector and classifier are linear, so they commute with that mean: the head is exactly
        the model's), AST's pooled tokens; through the whole model in eval mode, under the run's autocast."""
        first = next(iter(self.head(model)))

        def pooled(batch: dict[str, Any], given: Callable[[], Any]) -> Any:
            inputs = {k: v.to(accelerator.device) for k, v in model_inputs(batch).items()}
            with accelerator.autocast():
                model(**inputs)
            x = given().float()
            if x.dim() == 3:  # frames: their mean over the clip's own frames, as the model pools them
                x = masked_mean(x, frame_mask(model, x.shape[1], inputs.get("attention_mask")))
            return x

        model.eval()
        return {"pooled": layer_inputs(first, self.eval_loader(ds, processor, batch_size), pooled)}

    def name(self, model: Any) -> str:
        return "pooled"

    def head(self, model: Any) -> Any:
        """The layers after pooling: wav2vec2-style ``projector`` then ``classifier``; AST's ``classifier``."""
        classifier = getattr(model, "classifier", None)
        if classifier is None:
            return None
        projector = getattr(model, "projector", None)
        return torch.nn.Sequential(projector, classifier) if projector is not None else torch.nn.Sequential(classifier)

    def labels_of(self, ds: Any) -> np.ndarray:
        return np.asarray(ds.labels)

    # ---- predict: audio files -------------------------------------------------------------------
    def single_input(self, cfg: Any) -> tuple[dict[str, Any], list[str]]:
        audio = cfg.get("audio")
        if audio is None:
            raise FtcliError("this checkpoint reads audio: give audio=<file> (or input=<folder or file list>)")
        return {AUDIO: str(audio)}, [AUDIO]

    def input_rows(self, src: Path) -> list[dict[str, Any]] | None:
        return listed_files(src, AUDIO, AUDIO_SUFFIXES, "audio file")

    def input_columns(self, cfg: Any, dataset: Any, rows: list[dict[str, Any]], where: str) -> list[str]:
        return file_column(cfg, dataset, rows, where, AUDIO)

    def predict(
        self, loaded: Loaded, rows: list[dict[str, Any]], columns: list[str], batch_size: int, base: Path
    ) -> Any:
        """Logits of each row's clip (whole: no length limit); a relative path is relative to ``base``."""
        return predict_clips(loaded, rows, columns, batch_size, base, _logits)

    def onnx_spec(self, model: Any, processor: Any) -> OnnxSpec:
        return audio_onnx_spec(processor)


class SpeechInputs:
    """The audio inputs of :class:`AudioInputs` read by a character CTC model (``AutoModelForCTC``); the processor
    is the feature extractor with a character tokenizer over the objective's vocabulary (the label names)."""

    kind = "audio"
    card = CTC_CARD

    def __init__(self, cfg: Any, cache_dir: Path) -> None:
        self.audio = AudioInputs(cfg, cache_dir)  # columns, clips, batches, predict's rows: the same
        self.cache_dir = cache_dir

    def columns(self, dataset: DatasetConfig) -> list[tuple[str, str | None]]:
        return self.audio.columns(dataset)

    def raw(self, dataset: DatasetConfig) -> Raw:
        return self.audio.raw(dataset)

    def processor(self, model: ModelConfig, data: TaskData) -> Any:
        return ctc_processor(load_extractor(model, self.cache_dir), data.label_names, self.cache_dir)

    def encode(self, ds: Any, data: TaskData, processor: Any, model: ModelConfig) -> Any:
        return self.audio.encode(ds, data, processor, model)

    def train_loader(self, ds: Any, data: TaskData, processor: Any, plan: BatchPlan) -> tuple[Any, Any]:
        return self.audio.train_loader(ds, data, processor, plan)

    def eval_loader(self, ds: Any, processor: Any, batch_size: int) -> Any:
        return self.audio.eval_loader(ds, processor, batch_size)

    def count(self, batch: dict[str, Any]) -> tuple[int, int]:
        return len(batch["labels"]), 0

    def build_model(self, model: ModelConfig, pooling: str, data: TaskData, processor: Any, head: Head) -> Built:
        """A CTC model over the vocabulary (``head.names``: blank first)."""
        built, note = build_ctc(model, head.names, head.seed, self.cache_dir)
        roles, notes = fixed_roles(built, self.audio.freeze, model.init)
        return Built(built, roles, "native", (note, *notes))

    def outputs(
        self, model: Any, batches: Any, processor: Any, accelerator: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame fp32 logits [clips, frames, vocab] (frames past a clip's end: -100), and token-id labels."""
        model.eval()
        out = infer(lambda b: {"outputs": frame_logits(model, model_inputs(b))}, batches, accelerator)
        return out["outputs"], out["labels"]

    def load_pretrained(self, folder: Path, trust_remote_code: bool, allow_pickle: bool) -> tuple[Any, Any]:
        model = from_checkpoint(CTC, folder, trust_remote_code, allow_pickle)
        return model, AutoProcessor.from_pretrained(folder, trust_remote_code=trust_remote_code)

    def missing(self, folder: Path) -> str | None:
        if not (folder / "vocab.json").is_file():
            return "no CTC vocabulary (vocab.json)"
        return self.audio.missing(folder)

    def single_input(self, cfg: Any) -> tuple[dict[str, Any], list[str]]:
        return self.audio.single_input(cfg)

    def input_rows(self, src: Path) -> list[dict[str, Any]] | None:
        return self.audio.input_rows(src)

    def input_columns(self, cfg: Any, dataset: Any, rows: list[dict[str, Any]], where: str) -> list[str]:
        return self.audio.input_columns(cfg, dataset, rows, where)

    def predict(
        self, loaded: Loaded, rows: list[dict[str, Any]], columns: list[str], batch_size: int, base: Path
    ) -> Any:
        """Per-frame logits of each row's clip (frames past its end: -100), which the objective decodes."""
        return predict_clips(loaded, rows, columns, batch_size, base, frame_logits)

    def onnx_spec(self, model: Any, processor: Any) -> OnnxSpec:
        return audio_onnx_spec(processor)


def masked_mean(x: Any, mask: Any) -> Any:
    """[B, T, H] → [B, H]: the mean over each row's own frames (``mask`` [B, T]; None: every frame)."""
    if mask is None:
        return x.mean(1)
    return (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)


def _logits(model: Any, inputs: dict[str, Any]) -> Any:
    return model(**inputs).logits.float()


def frame_logits(model: Any, inputs: dict[str, Any]) -> Any:
    """[B, frames, vocab] fp32 logits, the frames past each clip's own set to -100 (``RAGGED_PAD``): what makes a
    clip's outputs the same in any batch."""
    logits = model(**inputs).logits.float()
    mask = frame_mask(model, logits.shape[1], inputs.get("attention_mask"))
    return logits if mask is None else logits.masked_fill(~mask[..., None], RAGGED_PAD)


def predict_clips(loaded: Loaded, rows: list[dict[str, Any]], columns: list[str], batch_size: int, base: Path, fn: Any):
    """``fn(model, inputs)`` over the rows' clips, decoded batch by batch at the model's rate, each clip alone in its
    batch's padding (the attention mask), under the accelerator's autocast."""
    extractor = extractor_of(loaded.processor)
    rate, device = rate_of(extractor), loaded.accelerator.device
    sources = [str(base / os.path.expanduser(str(r.get(columns[0]) or ""))) for r in rows]
    loaded.model.eval()

    def batches() -> Any:
        for start in range(0, len(sources), batch_size):
            idx = list(range(start, min(start + batch_size, len(sources))))
            waves, lengths = pad([decode(sources[i], rate) for i in idx])
            yield {**features_of(waves, lengths, extractor), "idx": torch.tensor(idx)}

    def forward(batch: dict[str, Any]) -> dict[str, Any]:
        inputs = {k: v.to(device) for k, v in model_inputs(batch).items()}
        with loaded.accelerator.autocast():
            return {"outputs": fn(loaded.model, inputs)}

    return infer(forward, batches())["outputs"]


def audio_onnx_spec(processor: Any) -> OnnxSpec:
    """input_values [batch, samples] (wav2vec2-style: with an int64 attention_mask) or the spectrogram the extractor
    makes; the batch and the clip's length may vary."""
    extractor = extractor_of(processor)
    waves, lengths = pad([np.random.default_rng(0).standard_normal(16000).astype(np.float32)] * 2)
    lengths[1] = 12000
    inputs = {k: v.long() if k == "attention_mask" else v for k, v in features_of(waves, lengths, extractor).items()}
    batch, time = torch.export.Dim("batch"), torch.export.Dim("samples", min=4000)
    names = list(inputs)
    waveform = reads_waveforms(extractor)  # a spectrogram's frames are fixed by its extractor (AST: max_length)
    axes: dict[str, dict[int, Any]] = {n: {0: batch, 1: time} if waveform else {0: batch} for n in names}
    return OnnxSpec(names, tuple(inputs[n] for n in names), axes)
