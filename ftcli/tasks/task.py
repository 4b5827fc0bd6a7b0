"""The Task seam: a task is *inputs* × *objective*, plus optional capabilities, behind one small interface.

Inputs (``tasks/inputs/``) say how raw rows become model inputs and which model reads them; an objective
(``tasks/objectives/``) says what a row's label is, the loss, the metrics and what a prediction looks like. A
:class:`Task` holds one of each (``tasks/registry.py`` says which, once per ``task=`` option) and its methods are
the core interface the training loop, ``ftcli eval``, ``predict`` and ``export`` call. What only some tasks can
do is a capability a caller asks for by name (``task.features``, ``task.baseline`` …), each a small protocol.

No implementation inheritance between inputs and objectives, and nothing left on ``self`` between phases: each
phase returns what the next is given (:class:`TaskData`, :class:`Built`, the processor, the encoded splits).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import DatasetConfig, EvalOptions, ModelConfig
from ftcli.data.tables import Raw, finish_splits
from ftcli.models.architectures import Roles

OtherSplit = Callable[[str], tuple[np.ndarray, np.ndarray]]  # split name → (outputs, labels)


@dataclass(frozen=True)
class TaskData:
    """A dataset's splits as the task reads them: input columns and a ``labels`` column each."""

    splits: dict[str, Any]  # split name → datasets.Dataset
    label_names: list[str]  # the head's outputs in order (class names; one name for a score)
    columns: list[str]  # the input columns (text, text pair, image, caption …)
    dataset: DatasetConfig  # where they came from: image size, augmentation, the bad-image policy


@dataclass(frozen=True)
class Built:
    """A model built for a task, and what strategies and the run summary need to know about it."""

    model: Any
    roles: Roles  # which parameters are the pretrained backbone, which never train
    pooling: str  # the pooling the head got (``native``: the architecture's own head)
    notes: tuple[str, ...] = ()  # what the run summary should say about this model


@dataclass(frozen=True)
class Loaded:
    """A checkpoint ready to predict: its model and processor, its run's model config, the accelerator it runs on,
    and the command's own config (``ftcli predict``'s generation keys)."""

    model: Any
    processor: Any
    model_cfg: Any
    accelerator: Any
    command: Any = None


@dataclass(frozen=True)
class OnnxSpec:
    """A model's inputs as ONNX sees them: their names, a sample of each, the axes that may vary; its outputs."""

    names: list[str]
    sample: tuple[Any, ...]
    dynamic: dict[str, dict[int, Any]]
    outputs: tuple[str, ...] = ("logits",)  # the model output's fields ONNX returns (QA: start and end logits)


class Inputs(Protocol):
    """How raw rows become model inputs, and which model reads them (``tasks/inputs/``)."""

    kind: str  # what a row holds, for people: "text", "image", "token"

    def columns(self, dataset: DatasetConfig) -> list[tuple[str, str | None]]: ...
    def raw(self, dataset: DatasetConfig) -> Raw: ...
    def processor(self, model: ModelConfig, data: TaskData) -> Any: ...
    def encode(self, ds: Any, data: TaskData, processor: Any, model: ModelConfig) -> Any: ...
    def train_loader(self, ds: Any, data: TaskData, processor: Any, plan: BatchPlan) -> tuple[Any, Any]: ...
    def eval_loader(self, ds: Any, processor: Any, batch_size: int) -> Any: ...
    def count(self, batch: dict[str, Any]) -> tuple[int, int]: ...
    def build_model(self, model: ModelConfig, pooling: str, data: TaskData, processor: Any, head: Head) -> Built: ...
    def outputs(self, model: Any, batches: Any, processor: Any, accelerator: Any) -> tuple[Any, Any]: ...
    def load_pretrained(self, folder: Path, trust_remote_code: bool, allow_pickle: bool) -> tuple[Any, Any]: ...
    def missing(self, folder: Path) -> str | None: ...


class Objective(Protocol):
    """What a row's label is, the loss, the metrics, what a prediction looks like (``tasks/objectives/``)."""

    problem_type: str  # as transformers' config.problem_type names it ("" for none)

    def labels(self, raw: Raw, dataset: DatasetConfig, inputs: list[tuple[str, str | None]]) -> Labelled: ...
    def loss(self, model: Any, batch: dict[str, Any]) -> Any: ...
    def metrics(self, outputs: np.ndarray, labels: np.ndarray, names: list[str]) -> dict[str, Any]: ...
    def extras(self, outputs: np.ndarray, labels: np.ndarray, names: list[str], how: Evaluation) -> dict[str, Any]: ...
    def predictions(self, outputs: np.ndarray, names: list[str]) -> list[dict[str, Any]]: ...
    def gold(self, values: list[Any], names: list[str]) -> np.ndarray | None: ...
    def metric_error(self, metric: str, names: list[str]) -> str | None: ...
    def describe(self, kind: str, labels: list[str] | None) -> str: ...


@dataclass(frozen=True)
class Labelled:
    """An objective's reading of the raw splits: each with a ``labels`` column, and the label names."""

    splits: dict[str, Any]
    names: list[str]


@dataclass(frozen=True)
class Head:
    """What the objective asks of the model's head: as many outputs as label names, and the problem type."""

    names: list[str]
    problem_type: str
    seed: int  # the new head (and a random backbone) start the same every run


@dataclass(frozen=True)
class BatchPlan:
    """How training batches are cut: the global batch (every process's rows), its seed and token budget."""

    batch_size: int  # per device
    processes: int
    seed: int
    max_tokens: int | None = None  # per device


@dataclass(frozen=True)
class Evaluation:
    """What ``ftcli eval`` asks beyond the metrics (``eval.*``), and the outputs of other splits on demand."""

    options: EvalOptions
    seed: int
    other: OtherSplit | None = None


# ---- capabilities: what some tasks can do, asked for by name -----------------------------------------------


@runtime_checkable
class FeatureCache(Protocol):
    """A frozen backbone run once per example: the head trains alone on its cached features."""

    def applies(self, model: Any) -> bool: ...
    def identities(self, model: Any, processor: Any, splits: dict[str, Any]) -> dict[str, dict[str, Any]]: ...
    def compute(self, model: Any, ds: Any, processor: Any, batch_size: int, accelerator: Any) -> dict[str, Any]: ...
    def name(self, model: Any) -> str: ...
    def head(self, model: Any) -> Any: ...
    def labels_of(self, ds: Any) -> np.ndarray: ...


@runtime_checkable
class Baseline(Protocol):
    """A number measured before training (CLIP's zero-shot classifier) that every evaluation shows beside its own."""

    def measure(self, model: Any, processor: Any, names: list[str], validation: Any) -> dict[str, float]: ...
    def note(self, baseline: dict[str, float]) -> str: ...
    def beside(self, metrics: dict[str, Any]) -> str: ...


@runtime_checkable
class Predictor(Protocol):
    """``ftcli predict``: raw rows (the command line's one input, a table, a folder) → model outputs."""

    def single_input(self, cfg: Any) -> tuple[dict[str, Any], list[str]]: ...
    def input_rows(self, src: Path) -> list[dict[str, Any]] | None: ...
    def input_columns(self, cfg: Any, dataset: Any, rows: list[dict[str, Any]], where: str) -> list[str]: ...
    def predict(
        self, loaded: Loaded, rows: list[dict[str, Any]], columns: list[str], batch_size: int, base: Path
    ) -> Any: ...


@runtime_checkable
class Chat(Protocol):
    """``ftcli chat``: the next answer of a conversation, streamed piece by piece as it is written."""

    def reply(self, loaded: Loaded, messages: list[dict[str, str]], stream: Callable[[str], None]) -> str: ...


@runtime_checkable
class ZeroShot(Protocol):
    """A classifier whose head can be made for any label set from the class names (CLIP's text tower)."""

    def plain(self, model: Any) -> bool: ...
    def relabel(
        self, model: Any, processor: Any, names: list[str], templates: list[str] | None = None, key: str = "templates"
    ) -> None: ...


@runtime_checkable
class OnnxExport(Protocol):
    """``ftcli export format=onnx``: the model as ONNX sees it."""

    def onnx_spec(self, model: Any, processor: Any) -> OnnxSpec: ...


@dataclass(frozen=True)
class Card:
    """What a checkpoint's model card says about loading it in plain transformers."""

    pipeline_tag: str  # transformers' pipeline (and the Hub's tag)
    auto_model: str  # the Auto class that loads its checkpoints
    processor_class: str = "AutoTokenizer"
    example_call: str = 'run("a gorgeous, witty, seductive movie", truncation=True)'
    predict_example: str = 'text="..."'  # ``ftcli predict checkpoint=<folder> <this>``


@runtime_checkable
class Fitted(Protocol):
    """What ``ftcli eval`` fits and stores in a checkpoint (multi-label thresholds), read back on load."""

    def save_fitted(self, folder: Path, metrics: dict[str, Any]) -> str | None: ...


@dataclass(frozen=True)
class Task:
    """One ``task=`` option: inputs × objective, and what else it can do. Its methods are the core interface."""

    name: str  # the option (configs/task/<name>.yaml)
    reports: tuple[str, ...]  # its metrics, the first one trainer.metric's default
    inputs: Inputs
    objective: Objective
    card: Card
    features: FeatureCache | None = None
    baseline: Baseline | None = None
    predictor: Predictor | None = None
    onnx: OnnxExport | None = None
    fitted: Fitted | None = None
    zero_shot: ZeroShot | None = None
    chat: Chat | None = None

    @property
    def metric(self) -> str:
        """The metric that picks the best checkpoint unless ``trainer.metric`` says otherwise."""
        return self.reports[0]

    def load_data(self, dataset: DatasetConfig, seed: int) -> TaskData:
        """The dataset's splits with ``labels`` (held-out validation and seeded subsets taken), input columns kept."""
        inputs = self.inputs.columns(dataset)
        labelled = self.objective.labels(self.inputs.raw(dataset), dataset, inputs)
        columns = [c for _, c in inputs if c]
        splits = finish_splits(labelled.splits, dataset, seed, [*columns, "labels"])
        return TaskData(splits, labelled.names, columns, dataset)

    def load_processor(self, model: ModelConfig, data: TaskData) -> Any:
        """The tokenizer (or image processor) that turns rows into tensors; saved with checkpoints."""
        return self.inputs.processor(model, data)

    def encode(self, ds: Any, data: TaskData, processor: Any, model: ModelConfig) -> Any:
        """A split as model inputs (cached across runs)."""
        return self.inputs.encode(ds, data, processor, model)

    def build_model(self, model: ModelConfig, pooling: str, data: TaskData, processor: Any, seed: int) -> Built:
        """The model the inputs read, with the head the objective needs (``pooling``: strategy's, else the model's)."""
        head = Head(data.label_names, self.objective.problem_type, seed)
        return self.inputs.build_model(model, pooling, data, processor, head)

    def train_loader(self, ds: Any, data: TaskData, processor: Any, plan: BatchPlan) -> tuple[Any, Any]:
        """(a DataLoader of this process's slice of every global training batch, its sampler with set_epoch)."""
        return self.inputs.train_loader(ds, data, processor, plan)

    def eval_loader(self, ds: Any, processor: Any, batch_size: int) -> Any:
        """Inference batches (any order) whose rows carry ``idx``, their position in ``ds``."""
        return self.inputs.eval_loader(ds, processor, batch_size)

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        """The training loss of ``model`` on ``batch`` (the strategy's penalty is added by the loop)."""
        return self.objective.loss(model, batch)

    def count(self, batch: dict[str, Any]) -> tuple[int, int]:
        """(examples, input tokens) in a batch, for throughput; tokens 0 where they mean nothing."""
        return self.inputs.count(batch)

    def outputs(
        self, model: Any, batches: Any, processor: Any, accelerator: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(model outputs, labels) over ``batches`` in dataset order (see :func:`ftcli.runtime.inference.infer`)."""
        return self.inputs.outputs(model, batches, processor, accelerator)

    def metrics(self, outputs: np.ndarray, labels: np.ndarray, names: list[str]) -> dict[str, Any]:
        """Every metric of the task (its ``reports`` among them) from outputs and labels."""
        return self.objective.metrics(outputs, labels, names)

    def evaluate(self, model: Any, batches: Any, processor: Any, accelerator: Any, names: list[str]) -> dict[str, Any]:
        """Metrics of ``model`` over ``batches``, and how fast it went."""
        start = time.perf_counter()
        outputs, labels = self.outputs(model, batches, processor, accelerator)
        metrics = self.metrics(outputs, labels, names)
        metrics["samples_per_s"] = len(labels) / max(time.perf_counter() - start, 1e-9)
        return metrics

    def eval_extras(self, outputs: np.ndarray, labels: np.ndarray, names: list[str], how: Evaluation) -> dict:
        """What ``ftcli eval`` adds to the metrics: intervals, calibration, fitted thresholds …"""
        return self.objective.extras(outputs, labels, names, how)

    def check_metric(self, metric: str, names: list[str]) -> str | None:
        """Why ``metric`` cannot pick checkpoints on this data (top-5 accuracy of 5 classes), or None."""
        return self.objective.metric_error(metric, names)

    def load_pretrained(self, folder: Path, trust_remote_code: bool, allow_pickle: bool) -> tuple[Any, Any]:
        """(model, processor) from a checkpoint folder through transformers' Auto classes, after checking the
        folder holds what the processor needs."""
        missing = self.inputs.missing(folder)
        if missing:
            raise FtcliError(f"checkpoint={folder}: {missing}; incomplete")
        return self.inputs.load_pretrained(folder, trust_remote_code, allow_pickle)
