"""The Task seam: everything that differs between problems, behind one small interface.

A task is *inputs* × *objective*. Inputs (``text.py``: tokenise, length-group, pad per batch) say how
raw rows become model inputs and which backbone reads them; the objective (``classification.py``,
``regression.py``) says what a row's label is, the head's size, the loss, the metrics and what a
prediction looks like. A concrete task (``text_classification.py``) combines one of each and names its
schema. The training loop, strategies, checkpoints, sweeps and launch only ever call these methods.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ftcli.config.schemas import DatasetConfig, ModelConfig, TaskConfig

OtherSplit = Callable[[str], tuple[np.ndarray, np.ndarray]]  # split → (outputs, labels)


@dataclass(frozen=True)
class Loaded:
    """A checkpoint ready to predict: its model and processor, its run's model config, the accelerator it runs on."""

    model: Any
    processor: Any
    model_cfg: Any
    accelerator: Any

    def with_processor(self, processor: Any) -> Loaded:
        return Loaded(self.model, processor, self.model_cfg, self.accelerator)


@dataclass
class OnnxSpec:
    """What torch.onnx.export needs: a module with named tensor inputs → logits, sample inputs, dynamic axes."""

    module: Any
    names: list[str]
    sample: tuple[Any, ...]
    dynamic: dict[str, dict[int, Any]]


@dataclass
class TaskData:
    """A dataset's splits as the task reads them: input columns and a ``labels`` column each."""

    splits: dict[str, Any]  # split name → datasets.Dataset
    label_names: list[str]  # the head's outputs in order (class names; one name for a score)
    columns: list[str]  # the input columns (text, text pair …)


class Task:
    """One problem: how its rows become inputs, which model reads them, its loss, metrics and predictions."""

    schema: ClassVar[type[TaskConfig]] = TaskConfig
    problem_type: ClassVar[str] = ""  # as transformers' config.problem_type names it
    auto_model: ClassVar[str] = "AutoModelForSequenceClassification"  # the Auto class that loads checkpoints
    pipeline_tag: ClassVar[str] = ""  # transformers' pipeline (and the Hub's tag) for its checkpoints
    inputs: ClassVar[str] = ""  # what a row holds, for people: "text", "image" …
    # how a model card shows plain transformers loading a checkpoint, and ftcli predicting with it
    processor_class: ClassVar[str] = "AutoTokenizer"
    example_call: ClassVar[str] = 'run("a gorgeous, witty, seductive movie", truncation=True)'
    predict_example: ClassVar[str] = 'text="..."'

    def __init__(self, cfg: TaskConfig) -> None:
        self.cfg = cfg
        self.notes: list[str] = []  # what the run summary should say about the model built for this task

    @property
    def metric(self) -> str:
        """The metric that picks the best checkpoint unless ``trainer.metric`` says otherwise."""
        return self.schema.metrics[0]

    # ---- inputs: raw rows → model inputs (``text.py``) ----------------------------------------
    def input_columns(self, dataset: DatasetConfig) -> list[tuple[str, str | None]]:
        """(dataset key, column) pairs of the inputs the data must have."""
        raise NotImplementedError

    def raw(self, dataset: DatasetConfig) -> Any:
        """The dataset's splits as loaded (``data.Raw``): files or a hub dataset; images: also a folder."""
        from ftcli.data.tables import load_raw

        return load_raw(dataset)

    def load_processor(self, model: ModelConfig, cache_dir: Path, data: TaskData) -> Any:
        """The tokenizer (or image processor) that turns rows into tensors; saved with checkpoints."""
        raise NotImplementedError

    def encode(self, ds: Any, columns: list[str], processor: Any, model: ModelConfig) -> Any:
        """A split as model inputs read from its input ``columns`` (cached across runs)."""
        raise NotImplementedError

    def train_batches(self, ds: Any, batch_size: int, seed: int, max_tokens: int | None) -> Any:
        """A sampler of *global* training batches (lists of rows) with ``set_epoch``."""
        raise NotImplementedError

    def loader(self, ds: Any, batch_sampler: Any, processor: Any) -> Any:
        """A DataLoader over ``ds`` whose rows ``batch_sampler`` chooses, collated into tensors."""
        raise NotImplementedError

    def eval_loader(self, ds: Any, processor: Any, batch_size: int) -> Any:
        """Inference batches (any order) whose rows carry ``idx``, their position in ``ds``."""
        raise NotImplementedError

    def labels_of(self, ds: Any) -> np.ndarray:
        """The labels of an encoded split, in its order."""
        from ftcli.data.batching import column_of

        return np.asarray(column_of(ds, "labels"))

    def count(self, batch: dict[str, Any]) -> tuple[int, int]:
        """(examples, input tokens) in a batch, for throughput; tokens 0 where they mean nothing."""
        return len(batch["labels"]), 0

    def pooling(self, requested: str) -> tuple[str, str | None]:
        """The pooling the model gets when ``requested`` (strategy.pooling, else model.pooling) is asked for,
        and a note when that is not what was asked: a sequence head pools token states; a token head
        classifies each one and overrides this."""
        return requested, None

    def uses_remote_code(self, pooling: str | None) -> bool:
        """Whether its checkpoints need ``trust_remote_code`` (ftcli's pooled text head ships its code)."""
        return pooling != "native"

    def build_model(self, model: ModelConfig, pooling: str, data: TaskData, processor: Any, seed: int) -> Any:
        raise NotImplementedError

    def missing_processor(self, folder: Path) -> str | None:
        """What a checkpoint folder lacks to rebuild the processor, or None."""
        return None

    def checkpoint_labels(self, model: Any, processor: Any, dataset: Any, seed: int, options: Any) -> list[str]:
        """The names of a loaded checkpoint's outputs, in order (``ftcli eval``; ``options``: cfg.eval)."""
        return [model.config.id2label[i] for i in range(model.config.num_labels)]

    def load_pretrained(self, folder: Path, trust_remote_code: bool, allow_pickle: bool) -> tuple[Any, Any]:
        """(model, processor) from a checkpoint folder through transformers' Auto classes."""
        raise NotImplementedError

    def load_fitted(self, folder: Path) -> None:
        """Read what ``ftcli eval`` fitted and stored beside a checkpoint's weights (multi-label: thresholds)."""

    def save_fitted(self, folder: Path, metrics: dict[str, Any]) -> str | None:
        """Store in checkpoint ``folder`` what an evaluation fitted (``metrics``, as eval_extras made them);
        a line saying what was written, or None."""
        return None

    def caches_features(self, model: Any) -> bool:
        """Whether a frozen backbone can be run once and the head trained on its cached features."""
        return False

    def feature_identity(self, model: Any, processor: Any, ds: Any, seed: int) -> dict[str, Any]:
        """Everything the frozen features of ``ds`` depend on (their cache key)."""
        raise NotImplementedError

    def frozen_features(self, model: Any, ds: Any, processor: Any, batch_size: int, accelerator: Any) -> dict[str, Any]:
        """Every variant (pooling) of the backbone's features of ``ds``, [N, H] each, in dataset order, on the
        accelerator's device and under its autocast."""
        raise NotImplementedError

    def feature_name(self, model: Any) -> str:
        """Which of :meth:`frozen_features`' variants the model's head reads."""
        raise NotImplementedError

    def head(self, model: Any) -> Any:
        """The module that maps features to outputs (trained alone on cached features)."""
        raise NotImplementedError

    # ---- objective: labels, loss, metrics, predictions (``classification.py`` …) --------------
    def load_data(self, dataset: DatasetConfig, seed: int) -> TaskData:
        raise NotImplementedError

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        """The training loss of ``model`` on ``batch`` (the strategy's penalty is added by the loop)."""
        from ftcli.runtime.inference import model_inputs

        return self.criterion(model(**model_inputs(batch)).logits, batch["labels"])

    def criterion(self, outputs: Any, labels: Any) -> Any:
        raise NotImplementedError

    def metric_error(self, metric: str, label_names: list[str]) -> str | None:
        """Why ``metric`` cannot pick checkpoints on this data (top-5 accuracy of 5 classes), or None."""
        return None

    def metrics(self, outputs: np.ndarray, labels: np.ndarray, names: list[str]) -> dict[str, Any]:
        """Every metric of the task (the schema's ``metrics`` among them) from outputs and labels."""
        raise NotImplementedError

    def outputs(self, model: Any, batches: Any, accelerator: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """(model outputs, labels) over ``batches`` in dataset order (see :func:`ftcli.runtime.inference.infer`)."""
        from ftcli.runtime.inference import infer, model_inputs

        model.eval()
        out = infer(lambda b: {"outputs": model(**model_inputs(b)).logits.float()}, batches, accelerator)
        return out["outputs"], out["labels"]

    def evaluate(self, model: Any, batches: Any, accelerator: Any, names: list[str]) -> dict[str, Any]:
        """Metrics of ``model`` over ``batches``, and how fast it went."""
        import time

        start = time.perf_counter()
        outputs, labels = self.outputs(model, batches, accelerator)
        metrics = self.metrics(outputs, labels, names)
        metrics["samples_per_s"] = len(labels) / max(time.perf_counter() - start, 1e-9)
        return metrics

    def beside(self, metrics: dict[str, Any]) -> str:
        """What a validation line shows beside the metric (CLIP: its zero-shot baseline); '' for most tasks."""
        return ""

    def eval_extras(
        self, outputs: np.ndarray, labels: np.ndarray, options: Any, seed: int, other: OtherSplit | None = None
    ) -> dict[str, Any]:
        """What ``ftcli eval`` adds to the metrics: intervals, calibration … (``options``: cfg.eval;
        ``other(split)``: outputs and labels of another split, for what must be fitted elsewhere)."""
        return {}

    def predictions(self, outputs: np.ndarray, names: list[str]) -> list[dict[str, Any]]:
        """One dict per row for ``ftcli predict``: the prediction and what supports it."""
        raise NotImplementedError

    def single_input(self, cfg: Any) -> tuple[dict[str, Any], list[str]]:
        """The one input ``ftcli predict`` was given on the command line, as a row and its input columns."""
        raise NotImplementedError

    def input_rows(self, src: Path) -> list[dict[str, Any]] | None:
        """predict's ``input=`` as rows when it is not a table (a folder of images …); None: read the table."""
        return None

    def input_columns_of(self, cfg: Any, dataset: Any, rows: list[dict[str, Any]], where: str) -> list[str]:
        """The input columns of predict's rows (the command line's, else the training data's), checked."""
        raise NotImplementedError

    def predict_outputs(
        self, loaded: Loaded, rows: list[dict[str, Any]], columns: list[str], batch_size: int
    ) -> np.ndarray:
        """The model's outputs for raw rows, in row order."""
        raise NotImplementedError

    def onnx_spec(self, model: Any, processor: Any) -> OnnxSpec:
        """The model as ONNX sees it: its input names, a sample of each, the axes that may vary."""
        raise NotImplementedError

    def card_task(self, labels: list[str] | None) -> str:
        """The task in a few words for a checkpoint's model card."""
        raise NotImplementedError

    def gold(self, values: list[Any], names: list[str]) -> np.ndarray | None:
        """A column of labels from a predict input file as the task's labels, or None if it is not one."""
        return None
