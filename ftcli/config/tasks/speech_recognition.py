"""The ``task=speech_recognition`` schema: a transcript per clip, a character CTC head (wav2vec2, HuBERT, WavLM)."""

from __future__ import annotations

from dataclasses import dataclass

from ftcli.config.schemas import TaskConfig


@dataclass
class SpeechRecognitionConfig(TaskConfig):
    option = "speech_recognition"
    inputs = "audio"
    metrics = ("cer", "wer", "loss")  # corpus-level character and word error rates (jiwer's), lower is better
    # as for audio_classification: the convolutional feature encoder stays as pre-training left it
    freeze_feature_encoder: bool = True
    lowercase: bool = True  # transcripts (and the character vocabulary) in lower case: "Go" and "go" are one word
