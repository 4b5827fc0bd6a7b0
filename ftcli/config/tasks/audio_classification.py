"""The ``task=audio_classification`` schema: one label per clip (a spoken keyword, a speaker's emotion, a sound)."""

from __future__ import annotations

from dataclasses import dataclass

from ftcli.config.schemas import CLASSIFICATION_METRICS, TaskConfig


@dataclass
class AudioClassificationConfig(TaskConfig):
    option = "audio_classification"
    inputs = "audio"
    metrics = CLASSIFICATION_METRICS  # top5_accuracy: reported when there are more than 5 classes
    # wav2vec2-style models: their pretrained convolutional feature encoder (raw samples → frames) never trains,
    # whatever the strategy: pre-training made it good and fine-tuning it on little data overfits (transformers'
    # freeze_feature_encoder, on in its examples). false lets it train; model.init=random trains it regardless
    # (a random encoder has nothing to keep)
    freeze_feature_encoder: bool = True
