"""Every ``task=`` option: which inputs and which objective make it, and what else it can do. One line each.

A task's name is spelled once, in its schema's ``option`` (``config/schemas.py``), and its YAML file; this table
holds its builder under that schema. A task schema without a builder fails here, at import.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ftcli.config.errors import FtcliError
from ftcli.config.registry import schema_of, subclasses
from ftcli.config.schemas import TaskConfig
from ftcli.config.tasks.audio_classification import AudioClassificationConfig
from ftcli.config.tasks.causal_lm import CausalLMConfig
from ftcli.config.tasks.clip_classification import ClipClassificationConfig
from ftcli.config.tasks.clip_contrastive import ClipContrastiveConfig
from ftcli.config.tasks.glue import GlueTaskConfig
from ftcli.config.tasks.image_classification import ImageClassificationConfig
from ftcli.config.tasks.image_regression import ImageRegressionConfig
from ftcli.config.tasks.question_answering import QuestionAnsweringConfig
from ftcli.config.tasks.relation_extraction import RelationExtractionConfig
from ftcli.config.tasks.speech_recognition import SpeechRecognitionConfig
from ftcli.config.tasks.text_classification import TextClassificationConfig
from ftcli.config.tasks.text_multilabel import TextMultiLabelConfig
from ftcli.config.tasks.text_regression import TextRegressionConfig
from ftcli.config.tasks.token_classification import TokenClassificationConfig
from ftcli.data.images.cache import default_cache_dir
from ftcli.tasks.inputs.audio import AudioInputs, SpeechInputs
from ftcli.tasks.inputs.chat import ChatInputs, UntrainedBaseline
from ftcli.tasks.inputs.clip import ClipCaptions, ClipImages, ZeroShotBaseline
from ftcli.tasks.inputs.images import ImageInputs
from ftcli.tasks.inputs.marked import MarkedText
from ftcli.tasks.inputs.questions import QuestionInputs
from ftcli.tasks.inputs.text import TextInputs
from ftcli.tasks.inputs.words import WordsInputs
from ftcli.tasks.objectives.answers import SpanAnswers, read_null_threshold
from ftcli.tasks.objectives.classification import Classification
from ftcli.tasks.objectives.contrastive import Contrastive
from ftcli.tasks.objectives.ctc import Transcription
from ftcli.tasks.objectives.glue import Glue
from ftcli.tasks.objectives.multilabel import MultiLabel, read_thresholds
from ftcli.tasks.objectives.regression import Regression
from ftcli.tasks.objectives.relations import Relations
from ftcli.tasks.objectives.sft import NextToken
from ftcli.tasks.objectives.tagging import Tagging
from ftcli.tasks.task import Task

Builder = Callable[[Any, Path, Path | None], Task]  # (task config, cache dir, checkpoint folder or None) → Task


def _plain(schema: type[TaskConfig], inputs: Any, objective: Any, **capabilities: Any) -> Task:
    """A task whose inputs predict and export (every one here does), with the capabilities given."""
    return Task(
        schema.option, schema.metrics, inputs, objective, inputs.card, predictor=inputs, onnx=inputs, **capabilities
    )


def _text(cfg: Any, cache: Path, objective: Any, schema: type[TaskConfig], **more: Any) -> Task:
    inputs = TextInputs(cache)
    return _plain(schema, inputs, objective, features=inputs, **more)


def _image(cfg: Any, cache: Path, _: Path | None) -> Task:
    inputs = ImageInputs(cache)
    return _plain(ImageClassificationConfig, inputs, Classification(), features=inputs)


def _audio(cfg: Any, cache: Path, _: Path | None) -> Task:
    inputs = AudioInputs(cfg, cache)
    return _plain(AudioClassificationConfig, inputs, Classification(), features=inputs)


def _clip(cfg: Any, cache: Path, _: Path | None) -> Task:
    inputs, objective = ClipImages(cfg, cache), Classification()
    baseline = ZeroShotBaseline(inputs, objective.metrics)
    return _plain(ClipClassificationConfig, inputs, objective, features=inputs, baseline=baseline, zero_shot=inputs)


def _contrastive(cfg: Any, cache: Path, _: Path | None) -> Task:
    inputs, objective = ClipCaptions(cfg, cache), Contrastive()
    return _plain(
        ClipContrastiveConfig, inputs, objective, baseline=ZeroShotBaseline(inputs, objective.metrics), zero_shot=inputs
    )


def _qa(cfg: Any, cache: Path, checkpoint: Path | None) -> Task:
    objective = SpanAnswers(cfg, read_null_threshold(checkpoint))  # the threshold ftcli eval tuned and stored
    return _plain(QuestionAnsweringConfig, QuestionInputs(cfg, cache), objective, fitted=objective)


def _causal_lm(cfg: Any, cache: Path, _: Path | None) -> Task:
    inputs, objective = ChatInputs(cfg, cache), NextToken(cfg)
    baseline = UntrainedBaseline(inputs, objective.metrics) if cfg.get("baseline", True) else None
    return Task(
        CausalLMConfig.option,
        CausalLMConfig.metrics,
        inputs,
        objective,
        inputs.card,
        predictor=inputs,
        baseline=baseline,
        zero_shot=inputs,
        chat=inputs,
    )


def _multilabel(cfg: Any, cache: Path, checkpoint: Path | None) -> Task:
    objective = MultiLabel(cfg, read_thresholds(checkpoint))  # thresholds ftcli eval tuned and stored
    return _text(cfg, cache, objective, TextMultiLabelConfig, fitted=objective)


TASKS: dict[type[TaskConfig], Builder] = {
    TextClassificationConfig: lambda cfg, cache, _: _text(cfg, cache, Classification(), TextClassificationConfig),
    TextRegressionConfig: lambda cfg, cache, _: _text(cfg, cache, Regression(), TextRegressionConfig),
    TextMultiLabelConfig: _multilabel,
    GlueTaskConfig: lambda cfg, cache, _: _text(cfg, cache, Glue(cfg), GlueTaskConfig),
    TokenClassificationConfig: lambda cfg, cache, _: _plain(
        TokenClassificationConfig, WordsInputs(cfg, cache), Tagging(cfg)
    ),
    ImageClassificationConfig: _image,
    ImageRegressionConfig: lambda cfg, cache, _: _plain(ImageRegressionConfig, ImageInputs(cache), Regression()),
    ClipClassificationConfig: _clip,
    ClipContrastiveConfig: _contrastive,
    QuestionAnsweringConfig: _qa,
    RelationExtractionConfig: lambda cfg, cache, _: _plain(
        RelationExtractionConfig, MarkedText(cfg, cache), Relations(cfg)
    ),
    AudioClassificationConfig: _audio,
    SpeechRecognitionConfig: lambda cfg, cache, _: _plain(
        SpeechRecognitionConfig, SpeechInputs(cfg, cache), Transcription(cfg)
    ),
    CausalLMConfig: _causal_lm,
}
_MISSING = [s.__name__ for s in subclasses(TaskConfig) if s.option and s not in TASKS]
if _MISSING:
    raise ImportError(f"task schemas without a builder in TASKS: {', '.join(_MISSING)}")


def build_task(cfg: Any, cache_dir: Path | None = None, checkpoint: Path | None = None) -> Task:
    """The Task for a ``task`` config node, chosen by its schema (a saved config: by its name); ``cache_dir``: where
    it keeps what it computes once (default: ftcli's cache); ``checkpoint``: a folder whose fitted values it reads."""
    schema = schema_of("task", cfg)
    if schema not in TASKS:
        raise FtcliError(f"task={cfg.name}: no such task; choose one of {', '.join(task_names())}")
    return TASKS[schema](cfg, Path(cache_dir) if cache_dir is not None else default_cache_dir(), checkpoint)


def task_names() -> list[str]:
    return sorted(s.option for s in TASKS)
