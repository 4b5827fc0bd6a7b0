"""Typed schemas for every config group, their ConfigStore registration, and validation.

The YAML tree under ``configs/`` is the single source of truth for values; these dataclasses are
the source of truth for *shape*: every group option lists its schema first in its defaults, so
Hydra rejects unknown keys and wrong types while composing. Ranges and choices live in field
metadata and are checked by :func:`validate`, which reports every bad key at once.

This module must stay light: ``ftcli --help`` imports it, and it must not pull in torch.
"""

from __future__ import annotations

import difflib
import re
import typing
from dataclasses import MISSING as DC_MISSING
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from ftcli.poolings import POOLINGS as POOLED

T = TypeVar("T")
PACKAGE_DIR = Path(__file__).resolve().parent
ASSETS_DIR = PACKAGE_DIR / "assets"


class FtcliError(Exception):
    """A user mistake. The CLI prints the message on one line and exits with status 2."""


def first_line(e: BaseException) -> str:
    """An exception's message cut to its first line (libraries' errors can run to pages), else its type."""
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


def config_dir() -> Path:
    """The config tree: inside the package for a wheel install, ``./configs`` for an editable one."""
    packaged = PACKAGE_DIR / "configs"
    return packaged if packaged.is_dir() else PACKAGE_DIR.parent / "configs"


def opt(
    default: Any = DC_MISSING,
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    choices: tuple[str, ...] | None = None,
    factory: Any = None,
) -> Any:
    """A dataclass field with the constraints :func:`validate` checks."""
    meta = {k: v for k, v in dict(gt=gt, ge=ge, lt=lt, le=le, choices=choices).items() if v is not None}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def subclasses(base: type[T]) -> list[type[T]]:
    """Every subclass of ``base``, depth first, each once: how schemas and implementations are registered."""
    found: list[type[T]] = []
    for sub in base.__subclasses__():
        found += [sub, *subclasses(sub)]
    return list(dict.fromkeys(found))


POOLINGS = ("native", *POOLED)  # native: the architecture's own head; the rest: ftcli's pooled head
# Metrics that are minimised; every other metric is maximised (checkpoints/best, sweeps, the leaderboard).
LOWER_IS_BETTER = frozenset({"loss", "mse", "mae"})


def is_better(metric: str, new: float, best: float | None) -> bool:
    if best is None:
        return True
    return new < best if metric in LOWER_IS_BETTER else new > best


class Schema:
    """A config group's schema. An option with keys of its own subclasses it and names itself in ``option``
    (its YAML lists ``<option>_schema`` in its defaults)."""

    option: ClassVar[str] = ""


@dataclass
class ModelConfig(Schema):
    name: str = MISSING  # short name used in run directories
    name_or_path: str = MISSING  # hub id or local folder
    init: str = opt("pretrained", choices=("pretrained", "random"))
    # "native": the architecture's own classification head; otherwise ftcli's pooled head.
    pooling: str = opt("native", choices=POOLINGS)
    finetune_lr: float = opt(5e-5, gt=0.0, le=1.0)  # the full fine-tuning step that suits this model
    max_length: int = opt(128, ge=8)  # longer inputs are truncated
    classifier_dropout: float = opt(0.1, ge=0.0, lt=1.0)
    config_overrides: dict[str, Any] = opt(factory=dict)  # architecture sizes for init=random
    vocab_size: int | None = opt(None, ge=100)  # init=random: WordPiece vocab trained on the train text
    trust_remote_code: bool = False  # run code shipped with a hub model: only when you trust it
    allow_pickle: bool = False  # load .bin/.pt weights (unpickling can run code): only when you trust them


@dataclass
class TaskConfig(Schema):
    """What problem a run solves (configs/task): inputs, head, loss and metrics. Each task's schema
    subclasses this one; ``option`` names its YAML and ``metrics`` what ``trainer.metric`` may pick."""

    metrics: ClassVar[tuple[str, ...]] = ()  # the first one is trainer.metric's default
    inputs: ClassVar[str] = "text"  # what its rows hold: "text" or "image" (dataset keys are checked against it)
    name: str = MISSING


@dataclass
class TextClassificationConfig(TaskConfig):
    option = "text_classification"
    metrics = ("accuracy", "f1_macro", "precision_macro", "recall_macro", "mcc", "loss")


@dataclass
class ImageClassificationConfig(TaskConfig):
    option = "image_classification"
    inputs = "image"
    # top5_accuracy: reported when there are more than 5 classes
    metrics = ("accuracy", "top5_accuracy", "f1_macro", "precision_macro", "recall_macro", "mcc", "loss")


CLASSIFICATION_METRICS = ("accuracy", "top5_accuracy", "f1_macro", "precision_macro", "recall_macro", "mcc", "loss")
RETRIEVAL_METRICS = tuple(f"{d}_{m}" for d in ("i2t", "t2i") for m in ("r1", "r5", "r10", "mean_rank"))


@dataclass
class ClipClassificationConfig(TaskConfig):
    """CLIP's image tower as a classifier whose head starts as the zero-shot classifier (configs/task)."""

    option = "clip_classification"
    inputs = "image"
    metrics = CLASSIFICATION_METRICS
    # prompts per class name, averaged in embedding space ("{}" is the class name)
    templates: list[str] = opt(factory=lambda: ["a photo of a {}."])
    head_init: str = opt("zeroshot", choices=("zeroshot", "random"))  # random: to measure what zero-shot gives


@dataclass
class ClipContrastiveConfig(TaskConfig):
    """Both CLIP towers trained on image–caption pairs with CLIP's symmetric InfoNCE (configs/task)."""

    option = "clip_contrastive"
    inputs = "image"
    metrics = (*CLASSIFICATION_METRICS[:-1], *RETRIEVAL_METRICS, "loss")  # accuracy: zero-shot, from prompts
    templates: list[str] = opt(factory=lambda: ["a photo of a {}."])
    caption_column: str = "caption"  # absent from the data: each row's caption is templates[0] of its label


@dataclass
class TextRegressionConfig(TaskConfig):
    option = "text_regression"
    metrics = ("pearson", "spearman", "mse", "mae", "loss")


@dataclass
class TextMultiLabelConfig(TaskConfig):
    option = "text_multilabel"
    metrics = ("f1_micro", "f1_macro", "subset_accuracy", "precision_micro", "recall_micro", "loss")
    # a label is predicted when its sigmoid reaches this; `ftcli eval eval.tune_thresholds=true` tunes one per
    # label on validation data and stores them in the checkpoint (predict then uses those)
    threshold: float = opt(0.5, gt=0.0, lt=1.0)


TAG_SCHEMES = ("IOB1", "IOB2", "BIOES")


@dataclass
class TokenClassificationConfig(TaskConfig):
    option = "token_classification"
    metrics = ("f1", "precision", "recall", "accuracy", "loss")  # entity-level (seqeval's semantics); accuracy: tags
    # how the data's tags mark entities; auto: read them as any of the three (B-/I-/E-/S-/O prefixes).
    # The model always learns IOB2 tags (what transformers' token-classification pipeline groups).
    tag_scheme: str = opt("auto", choices=("auto", *TAG_SCHEMES))
    stride: int = opt(32, ge=0)  # tokens shared by consecutive windows of a sentence longer than model.max_length


GLUE_TASKS = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli")


@dataclass
class GlueTaskConfig(TaskConfig):
    option = "glue"
    # score: the benchmark's official number for the task (CoLA: MCC; STS-B: mean of Pearson and Spearman;
    # MRPC, QQP: mean of F1 and accuracy; MNLI: matched accuracy; the others: accuracy)
    metrics = ("score", "accuracy", "f1", "mcc", "pearson", "spearman", "loss")
    benchmark: str | None = opt(None, choices=GLUE_TASKS)  # which GLUE task (configs/task/glue.yaml: dataset.task)


@dataclass
class StrategyConfig(Schema):
    name: str = MISSING
    freeze: str = opt("none", choices=("none", "backbone"))
    pooling: str | None = opt(None, choices=POOLINGS)  # None: the model's own choice
    lr: float = opt(MISSING, gt=0.0, le=1.0)
    weight_decay: float = opt(0.01, ge=0.0)
    warmup_ratio: float = opt(0.06, ge=0.0, lt=1.0)
    max_grad_norm: float = opt(1.0, ge=0.0)  # 0 turns clipping off
    optimizer: str = opt("adamw", choices=("adamw", "sgd"))  # adamw: fused where the device has it
    momentum: float = opt(0.9, ge=0.0, lt=1.0)  # sgd only
    nesterov: bool = False  # sgd only
    schedule: str = opt("linear", choices=("linear", "cosine", "constant"))  # after warm-up (warmup_ratio)
    cache_features: bool = True  # freeze=backbone: compute pooled features once, train the head on them
    # Layer-wise lr decay: each encoder layer below the top gets this factor of the lr above it
    # (embeddings one more); 1.0 turns it off. The head and the top layer train at strategy.lr.
    layer_lr_decay: float = opt(1.0, gt=0.0, le=1.0)
    # l2sp: add reg_lambda/2·‖θ − θ0‖² over trainable pretrained weights and reg_lambda/2·‖θ‖² over new
    # ones (the head, LoRA matrices); it replaces AdamW's weight decay (set to 0 under l2sp).
    regularization: str = opt("none", choices=("none", "l2sp"))
    reg_lambda: float = opt(0.01, ge=0.0)
    # WiSE-FT: what is evaluated and saved is (1 − α)·θ0 + α·θ (θ0: the weights before training, CLIP's
    # zero-shot head included); 0 = the start, 1 = the fine-tuned model; None: no interpolation.
    wise_alpha: float | None = opt(None, ge=0.0, le=1.0)


@dataclass
class PartialConfig(StrategyConfig):
    option = "partial"
    unfreeze_layers: int = opt(2, ge=0)  # top encoder layers that train (with the head); the rest stay frozen


@dataclass
class BitFitConfig(StrategyConfig):
    option = "bitfit"  # only biases and the head train: no keys of its own; the schema tells build_strategy


@dataclass
class LoraConfig(StrategyConfig):
    option = "lora"
    r: int = opt(8, ge=1)  # rank of the update B·A
    alpha: int = opt(16, ge=1)  # the update is scaled by alpha / r
    dropout: float = opt(0.1, ge=0.0, lt=1.0)  # on the LoRA branch's input
    # leaf names of the Linear layers to adapt inside the encoder layers; None: per architecture
    target_modules: list[str] | None = None
    # Checkpoints are always merged (plain transformers loads them); this also writes peft's adapter
    # files (LoRA matrices + head, a few MB) to <checkpoint>/adapter.
    save_adapter: bool = False


@dataclass
class GradualUnfreezeConfig(StrategyConfig):
    option = "gradual_unfreeze"
    unfreeze_every: float = opt(1.0, gt=0.0)  # epochs between unfreezing one more layer group (top down)


@dataclass
class LpFtConfig(StrategyConfig):
    option = "lp_ft"
    lp_epochs: float = opt(0.5, gt=0.0)  # epochs of linear probing (backbone frozen) before everything trains
    head_lr: float | None = opt(None, gt=0.0, le=1.0)  # the head's lr (a new layer learns faster); None: lr


@dataclass
class DatasetConfig(Schema):
    name: str = MISSING
    source: str = opt("files", choices=("files", "hub", "imagefolder"))
    path: str | None = None  # hub: dataset id or local folder for datasets.load_dataset
    config_name: str | None = None  # hub: the dataset's configuration ("sst2" of "glue")
    train_split: str = "train"
    validation_split: str = "validation"
    test_split: str | None = None
    train_file: str | None = None  # files: CSV/TSV/JSON/JSONL/Parquet
    validation_file: str | None = None
    test_file: str | None = None
    quoting: str = opt("minimal", choices=("minimal", "none"))  # CSV/TSV quote handling
    text_column: str = "sentence"
    text_pair_column: str | None = None  # sentence-pair tasks
    label_column: str = "label"
    label_names: list[str] | None = None  # id order; inferred from the data when absent
    label_columns: list[str] | None = None  # multi-label: one 0/1 column per label (instead of a list column)
    max_train_samples: int | None = opt(None, ge=1)  # seeded random subset, as run_glue names it
    max_eval_samples: int | None = opt(None, ge=1)
    # images (task=image_classification)
    data_dir: str | None = None  # imagefolder: <data_dir>/<class>/<image>, or train/ validation/ test/ inside
    image_column: str | None = None  # files: image paths (relative to the file); hub: an Image feature
    image_size: int | None = opt(None, ge=8)  # model input side; None: the model's own (its image processor's)
    augment: bool = True  # training batches: random resized crop (+ flip); evaluation never augments
    crop_scale: list[float] = opt(factory=lambda: [0.08, 1.0])  # random resized crop: share of the image's area
    crop_ratio: list[float] = opt(factory=lambda: [0.75, 1.3333333])  # ... and aspect ratio range of the crop
    hflip: bool = True  # random horizontal flip (off for digits, text, anything with a handedness)
    bad_images: str = opt("error", choices=("error", "skip"))  # unreadable/missing: stop naming it, or skip counted


@dataclass
class GlueConfig(DatasetConfig):
    option = "glue"
    task: str = opt("sst2", choices=GLUE_TASKS)  # the GLUE task; its columns and labels come from `tasks`
    tasks: dict[str, Any] = opt(factory=dict)  # per task: text_column, text_pair_column, label_names, splits


@dataclass
class HardwareConfig(Schema):
    name: str = MISSING
    accelerator: str = opt("auto", choices=("auto", "cpu", "gpu", "tpu"))
    # auto: bf16 autocast where the device runs it natively (AMX / AVX512-BF16 CPUs, Ampere+ GPUs), else fp32
    mixed_precision: str = opt("auto", choices=("auto", "no", "fp16", "bf16"))
    num_processes: int = opt(1, ge=0)  # per machine; 0: one per visible GPU
    cpu_threads: int | None = opt(None, ge=1)  # None: one per physical core
    # How processes share the work: "no" (one process), "ddp" (replicas), "fsdp"/"deepspeed"
    # (sharded weights and optimizer state), "xla" (TPU cores). Anything but "no" launches workers.
    distributed: str = opt("no", choices=("no", "ddp", "fsdp", "deepspeed", "xla"))
    zero_stage: int = opt(2, ge=0, le=3)  # deepspeed: 1 optimizer, 2 +gradients, 3 +weights sharded
    # fsdp (FSDP2): FULL_SHARD frees each layer's gathered weights after its forward; SHARD_GRAD_OP keeps them
    fsdp_sharding: str = opt("FULL_SHARD", choices=("FULL_SHARD", "SHARD_GRAD_OP"))
    num_machines: int = opt(1, ge=1)  # nodes; each runs the same command with its own machine_rank
    machine_rank: int = opt(0, ge=0)
    main_process_ip: str | None = None  # rank-0 node's address (num_machines > 1)
    main_process_port: int | None = opt(None, ge=1, le=65535)  # None: a free port (one machine)


@dataclass
class TrainerConfig:
    epochs: int = opt(3, ge=1)
    max_steps: int = opt(-1, ge=-1)  # > 0 overrides epochs
    batch_size: int = opt(32, ge=1)  # per device
    eval_batch_size: int | None = opt(None, ge=1)  # None: 32 on CPU, 128 on accelerators
    grad_accum: int = opt(1, ge=1)
    seed: int = 42
    metric: str | None = None  # picks checkpoints/best; None: the task's first metric (accuracy, pearson …)
    early_stopping_patience: int | None = opt(None, ge=1)  # evaluations without improvement
    eval_every_steps: int | None = opt(None, ge=1)  # None: once per epoch
    log_every_steps: int = opt(20, ge=1)
    max_tokens: int | None = opt(None, ge=16)  # token budget per training batch (dynamic batch size)
    compile: bool = False  # torch.compile the model (pays off on GPU)
    dry_run: bool = False  # build everything, report trainable parameters, do not train
    log_with: str = opt("none", choices=("none", "tensorboard", "wandb", "mlflow"))  # trackers via Accelerate
    save_checkpoints: bool = True
    save_every_steps: int | None = opt(None, ge=1)  # resumable state (model, optimizer, RNG, data position)
    keep_checkpoints: int = opt(2, ge=1)  # newest resumable states kept on disk
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory, ~30% slower


@dataclass
class TrainConfig:
    task: TaskConfig = MISSING
    model: ModelConfig = MISSING
    strategy: StrategyConfig = MISSING
    dataset: DatasetConfig = MISSING
    hardware: HardwareConfig = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    output_dir: str = MISSING
    cache_dir: str = MISSING  # tokenised datasets and frozen features, reused across runs
    resume: str | None = None  # a run dir or "latest": continue it with its own config


# config group → the schema of its options; an option with keys of its own has a subclass (``option``)
GROUPS: dict[str, type[Schema]] = {
    "task": TaskConfig,
    "model": ModelConfig,
    "strategy": StrategyConfig,
    "dataset": DatasetConfig,
    "hardware": HardwareConfig,
}


def schema_of(group: str, node: Any) -> Any:
    """The schema of a group's node: its own type when composed by Hydra, else the subclass its name
    (the option) names — a saved config.yaml has lost its types."""
    base = GROUPS[group]
    own = OmegaConf.get_type(node) if OmegaConf.is_config(node) else None
    if isinstance(own, type) and issubclass(own, base):
        return own
    name = OmegaConf.select(node, "name") if OmegaConf.is_config(node) else None
    return next((s for s in subclasses(base) if s.option and s.option == name), base)


def train_metric(cfg: Any) -> str:
    """``trainer.metric``, or the task's own default (accuracy for classification, pearson for regression)."""
    schema: type[TaskConfig] = schema_of("task", cfg.task)
    return str(cfg.trainer.metric or schema.metrics[0])


def typed_train_config(saved: Any) -> Any:
    """A saved, resolved train config under its typed schema again: each group's own schema included
    (lp_ft's lp_epochs, lora's rank, a task's keys), which the generic group schema would reject."""
    schema = OmegaConf.structured(TrainConfig)
    if OmegaConf.select(saved, "task") is None:  # a run saved before tasks existed: text classification
        saved = OmegaConf.merge({"task": {"name": TextClassificationConfig.option}}, saved)
    for group in GROUPS:
        node = OmegaConf.select(saved, group)
        if node is not None:
            schema[group] = OmegaConf.structured(schema_of(group, node))
    return OmegaConf.merge(schema, saved)


@dataclass
class EvalOptions:
    split: str = opt("validation", choices=("train", "validation", "test"))
    batch_size: int | None = opt(None, ge=1)  # None: the training run's eval_batch_size (or its default)
    ece_bins: int = opt(15, ge=2)  # equal-width confidence bins for ECE and the reliability diagram
    bootstrap: int = opt(1000, ge=0)  # resamples for 95% intervals of accuracy and F1; 0 turns them off
    temperature_scaling: bool = False  # fit one temperature on held-out data; report ECE before and after
    calibration_split: str | None = opt(None, choices=("train", "validation", "test"))  # None: half of split
    # multi-label: one decision threshold per label, the best F1 on calibration_split (None: validation);
    # stored in the checkpoint (thresholds.json), which predict and later evals then use
    tune_thresholds: bool = False
    plots: bool = True  # PNGs and report.md in the run dir (needs matplotlib: the plots extra)
    allow_pickle: bool = False  # load a checkpoint whose weights are pickle files (can run code)
    # a CLIP model folder not written by ftcli (zero-shot, no training): the prompts of each class name
    templates: list[str] = opt(factory=lambda: ["a photo of a {}."])


@dataclass
class EvalConfig:
    # a checkpoint folder, a run dir (its best checkpoint), a multirun dir, or a list of any of them
    checkpoint: Any = MISSING
    task: Any = None  # set only by a dataset that picks its task; the checkpoint's own task is what runs
    dataset: DatasetConfig = MISSING
    hardware: HardwareConfig = MISSING
    eval: EvalOptions = field(default_factory=EvalOptions)
    output_dir: str = MISSING
    cache_dir: str = MISSING


@dataclass
class PredictConfig:
    checkpoint: str = MISSING  # a checkpoint folder or a run directory (uses its best checkpoint)
    text: str | None = None  # one input: print its label and probabilities
    text_pair: str | None = None  # sentence-pair models: the second text
    image: str | None = None  # image models: one image file
    labels: list[str] | None = None  # CLIP: zero-shot over these class names instead of the trained ones
    input: str | None = None  # CSV/TSV/JSON/JSONL file (images: also a folder or a .txt list of paths)
    output: str | None = None  # where the rows go, with label and probabilities (format by extension)
    text_column: str | None = None  # None: the column the checkpoint was trained on
    text_pair_column: str | None = None
    image_column: str | None = None  # image paths in input=<table>; None: "image", else the training data's
    quoting: str | None = opt(None, choices=("minimal", "none"))  # CSV/TSV quotes; None: as the run's dataset
    batch_size: int | None = opt(None, ge=1)  # None: 32 on CPU, 128 on accelerators
    hardware: HardwareConfig = MISSING
    output_dir: str = MISSING


@dataclass
class ExportConfig:
    checkpoint: str = MISSING  # a checkpoint folder or a run directory (uses its best checkpoint)
    format: str = opt("onnx", choices=("onnx", "safetensors"))
    output: str | None = None  # a folder; None: the run dir
    opset: int = opt(18, ge=14)  # ONNX opset
    verify: bool = True  # onnx: compare onnxruntime's logits with PyTorch's on the validation split
    verify_samples: int | None = opt(None, ge=1)  # None: the whole split
    atol: float = opt(1e-4, gt=0.0)  # largest allowed |logit difference| when verifying
    output_dir: str = MISSING


def register_configs() -> None:
    """Put the schemas in Hydra's ConfigStore; each group option names its schema in its defaults."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="eval_schema", node=EvalConfig)
    cs.store(name="predict_schema", node=PredictConfig)
    cs.store(name="export_schema", node=ExportConfig)
    for group, schema in GROUPS.items():
        cs.store(group=group, name="schema", node=schema)
        for sub in subclasses(schema):  # <option>_schema: the option's YAML lists it in its defaults
            cs.store(group=group, name=f"{sub.option}_schema", node=sub)
    if not OmegaConf.has_resolver("asset"):
        # ${asset:sst2/train.tsv} → the copy shipped inside the package (works offline).
        OmegaConf.register_new_resolver("asset", lambda rel: str(ASSETS_DIR / rel))


# ----------------------------------------------------------------------------------------------
# validation


def did_you_mean(word: str, options: list[str] | tuple[str, ...]) -> str:
    """' (did you mean 'x'?)' for the option closest to ``word``, or ''."""
    prefixed = [o for o in options if o.startswith(word) or word.startswith(o)]
    close = prefixed or difflib.get_close_matches(word, options, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _check_value(key: str, value: Any, meta: dict[str, Any]) -> str | None:
    if value is None:
        return None
    if "choices" in meta and value not in meta["choices"]:
        hint = did_you_mean(str(value), meta["choices"])
        return f"{key}={value}: must be one of {', '.join(meta['choices'])}{hint}"
    bounds = (
        ("gt", ">", lambda v, b: v > b),
        ("ge", ">=", lambda v, b: v >= b),
        ("lt", "<", lambda v, b: v < b),
        ("le", "<=", lambda v, b: v <= b),
    )
    for name, sym, ok in bounds:
        if name in meta and not ok(value, meta[name]):
            return f"{key}={value}: must be {sym} {meta[name]}"
    return None


UNRESOLVED = "\0"  # marks an interpolation that failed to resolve (said only when nothing else is wrong)


def _walk(node: Any, schema: Any, prefix: str, errors: list[str]) -> None:
    known = [f.name for f in fields(schema)]
    for extra in (k for k in node if k not in known):  # `+key=value` gets past Hydra's struct check
        hint = did_you_mean(str(extra), known)
        errors.append(f"unknown key '{prefix}{extra}'{hint}; known keys: {', '.join(known)}")
    for f in fields(schema):
        key = f"{prefix}{f.name}"
        if OmegaConf.is_missing(node, f.name):
            errors.append(f"{key} is required but not set (add {key}=...)")
            continue
        try:
            value = node[f.name]
        except InterpolationResolutionError as e:  # e.g. ${.tasks.${.task}...} of a task that does not exist
            errors.append(f"{UNRESOLVED}{key}: {first_line(e)}")
            continue
        sub = OmegaConf.get_type(node, f.name) if isinstance(value, DictConfig) else None
        if isinstance(value, DictConfig) and sub is not None and is_dataclass(sub):
            _walk(value, sub, key + ".", errors)
            continue
        message = _check_value(key, value, dict(f.metadata))
        if message:
            errors.append(message)


def validate(cfg: DictConfig) -> None:
    """Check ranges and choices of a composed config; raise one FtcliError naming every bad key."""
    errors: list[str] = []
    schema = OmegaConf.get_type(cfg)
    if schema is None or not is_dataclass(schema):
        raise FtcliError("internal: config has no schema")
    _walk(cfg, schema, "", errors)
    if hasattr(cfg, "trainer") and cfg.trainer.max_steps == 0:
        errors.append("trainer.max_steps=0: use -1 (epochs decide) or a positive number of steps")
    if hasattr(cfg, "trainer") and hasattr(cfg, "task") and cfg.trainer.metric is not None:
        allowed = schema_of("task", cfg.task).metrics
        if cfg.trainer.metric not in allowed:
            hint = did_you_mean(str(cfg.trainer.metric), allowed)
            errors.append(
                f"trainer.metric={cfg.trainer.metric}: task {cfg.task.name} reports {', '.join(allowed)}{hint}"
            )
    if hasattr(cfg, "strategy"):
        errors += _strategy_errors(cfg.strategy)
    if hasattr(cfg, "dataset"):
        errors += _dataset_errors(cfg.dataset)
    if hasattr(cfg, "dataset") and cfg.get("task") is not None:  # eval: null unless a dataset picks one
        errors += _inputs_errors(cfg.dataset, schema_of("task", cfg.task))
    if hasattr(cfg, "hardware"):
        errors += _hardware_errors(cfg.hardware)
    if hasattr(cfg, "strategy") and hasattr(cfg, "hardware"):
        errors += _strategy_on_hardware_errors(cfg.strategy, cfg.hardware)
    resolved = [e for e in errors if not e.startswith(UNRESOLVED)]  # a bad value explains its interpolations
    errors = resolved or [e.removeprefix(UNRESOLVED) for e in errors]
    if errors:
        raise FtcliError("; ".join(errors))


def _strategy_errors(st: DictConfig) -> list[str]:
    """Keys that only mean something for another choice: said, not silently ignored."""
    if st.optimizer == "sgd":
        return ["strategy.nesterov=true needs strategy.momentum > 0"] if st.nesterov and st.momentum == 0 else []
    return ["strategy.nesterov=true: only strategy.optimizer=sgd has Nesterov momentum"] if st.nesterov else []


def _dataset_errors(ds: DictConfig) -> list[str]:
    """The augmentation ranges: two numbers, low to high, in their domain."""
    errors = []
    for key, top in (("crop_scale", 1.0), ("crop_ratio", None)):
        pair = list(ds.get(key) or [])
        if len(pair) != 2 or not all(isinstance(v, (int, float)) for v in pair) or not 0 < pair[0] <= pair[1]:
            errors.append(f"dataset.{key}={pair}: must be [low, high] with 0 < low <= high")
        elif top is not None and pair[1] > top:
            errors.append(f"dataset.{key}={pair}: high must be <= {top}")
    return errors


def _inputs_errors(ds: DictConfig, task: type[TaskConfig]) -> list[str]:
    """Image data under a text task: say which task (and which dataset options) read images."""
    images = "task=image_classification (dataset=imagefolder, image_files or image_hub choose it)"
    if task.inputs == "image":
        return []
    if ds.get("source") == "imagefolder":
        return [f"dataset.source=imagefolder: an image folder needs {images}"]
    if ds.get("image_column"):
        return [f"dataset.image_column={ds.image_column}: images need {images}; task={task.option} reads text"]
    return []


def _strategy_on_hardware_errors(st: DictConfig, hw: DictConfig) -> list[str]:
    """A strategy that cannot work where it would run."""
    if hw.distributed == "deepspeed" and schema_of("strategy", st) in (GradualUnfreezeConfig, LpFtConfig):
        return [  # DeepSpeed's ZeRO optimizer is built from the weights that train at the start, once
            f"strategy={st.name} with hardware.distributed=deepspeed: DeepSpeed gives optimizer state only to the "
            "weights that train at the start, so the ones unfrozen later would never move; use fsdp or ddp"
        ]
    return []


def _hardware_errors(hw: DictConfig) -> list[str]:
    """Combinations of hardware keys that cannot run (each key is fine on its own)."""
    errors = []
    if hw.machine_rank >= hw.num_machines:
        errors.append(f"hardware.machine_rank={hw.machine_rank}: must be < num_machines ({hw.num_machines})")
    if hw.accelerator == "cpu" and hw.distributed not in ("no", "ddp", "fsdp", "deepspeed"):
        errors.append(f"hardware.distributed={hw.distributed}: runs on TPUs (hardware=tpu); on CPU: ddp/fsdp/deepspeed")
    if hw.distributed == "deepspeed" and hw.zero_stage == 3:  # weights partitioned from the model's construction on
        errors.append(
            "hardware.zero_stage=3: ftcli builds models outside DeepSpeed's zero.Init and cannot gather ZeRO-3's "
            "partitioned weights into checkpoints; for sharded weights use hardware=fsdp (cpu_fsdp), else zero_stage<=2"
        )
    if hw.num_processes == 0 and hw.accelerator == "cpu":
        errors.append("hardware.num_processes=0 means one per GPU; on CPU give a number")
    return errors


def explain(exc: BaseException, config_name: str = "train") -> str:
    """Turn Hydra/OmegaConf composition errors into one line: key, bad value, what is allowed."""
    from hydra.errors import MissingConfigException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in chain:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    for err in chain:
        if isinstance(err, MissingConfigException) and err.options is not None:
            group = (err.missing_cfg_file or "").rsplit("/", 1)
            name = group[-1]
            options = [o for o in err.options if not o.endswith("schema")]
            hint = did_you_mean(name, options)
            where = group[0] if len(group) == 2 else "config"
            return f"{where}={name}: no such option; choose one of {', '.join(options)}{hint}"
    for err in chain:
        if isinstance(err, ConfigKeyError | ConfigAttributeError | ValidationError):
            key = err.full_key or ""
            if isinstance(err, ConfigKeyError | ConfigAttributeError):
                allowed = _keys_beside(key, config_name)
                node_type = getattr(err, "object_type", None)  # the node's own schema (a strategy subclass)
                if isinstance(node_type, type) and is_dataclass(node_type):
                    allowed = [f.name for f in fields(node_type)]
                leaf = key.rsplit(".", 1)[-1]
                hint = did_you_mean(leaf, allowed)
                listing = f"; known keys: {', '.join(allowed)}" if allowed else ""
                return f"unknown key '{key}'{hint}{listing}"
            msg = str(err.msg).splitlines()[0]
            return f"{key}: {msg}" if key else msg
    text = " ".join(str(exc).split())
    text = re.sub(r"\s*Config search path:.*", "", text)
    return text


def _keys_beside(full_key: str, config_name: str = "train") -> list[str]:
    """The keys a schema allows next to ``full_key`` (for 'did you mean')."""
    roots = {"eval": EvalConfig, "predict": PredictConfig, "export": ExportConfig}
    node: Any = roots.get(config_name, TrainConfig)
    for part in full_key.split(".")[:-1]:
        hints = typing.get_type_hints(node) if is_dataclass(node) else {}
        if part not in hints:
            return []
        node = hints[part]
    return [f.name for f in fields(node)] if is_dataclass(node) else []
