"""Typed schemas for every config group (dataclasses): the shape of the YAML tree, with the ranges and choices
validation checks in field metadata.

The YAML tree under ``configs/`` holds the values of each option; these dataclasses hold the shape and the defaults:
every group option lists its schema first in its defaults, so Hydra rejects unknown keys and wrong types while
composing. Light on purpose: ``ftcli --help`` imports it (no torch).
"""

from __future__ import annotations

from dataclasses import MISSING as DC_MISSING
from dataclasses import dataclass, field
from typing import Any, ClassVar

from omegaconf import MISSING


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


POOLED = ("mean", "cls", "pooler", "last")  # what ftcli's pooled head offers (models/shipped/modeling_ftcli.pool)
POOLINGS = ("native", *POOLED)  # native: the architecture's own head


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
    # causal LMs whose tokenizer has no chat template: a Jinja template, or "chatml" (ChatML's); None: its own
    chat_template: str | None = None
    # causal LMs: load the pretrained weights quantised by bitsandbytes (4bit: QLoRA's NF4 with double quantisation
    # and bf16 compute) under strategy=lora; needs a CUDA GPU
    quantization: str = opt("none", choices=("none", "4bit", "8bit"))
    trust_remote_code: bool = False  # run code shipped with a hub model: only when you trust it
    allow_pickle: bool = False  # load .bin/.pt weights (unpickling can run code): only when you trust them


@dataclass
class TaskConfig(Schema):
    """What problem a run solves (configs/task): inputs, head, loss and metrics. Each task's schema
    subclasses this one; ``option`` names its YAML and ``metrics`` what ``trainer.metric`` may pick."""

    metrics: ClassVar[tuple[str, ...]] = ()  # the first one is trainer.metric's default
    inputs: ClassVar[str] = (
        "text"  # what its rows hold: "text", "image" or "audio" (dataset keys are checked against it)
    )
    name: str = MISSING


CLASSIFICATION_METRICS = ("accuracy", "top5_accuracy", "f1_macro", "precision_macro", "recall_macro", "mcc", "loss")


RETRIEVAL_METRICS = tuple(f"{d}_{m}" for d in ("i2t", "t2i") for m in ("r1", "r5", "r10", "mean_rank"))


GLUE_TASKS = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli")


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
    # top encoder layers that train (with the head): the top layers change most in fine-tuning, the lower ones hold
    # general features
    unfreeze_layers: int = opt(2, ge=0)


@dataclass
class BitFitConfig(StrategyConfig):
    option = "bitfit"  # only biases and the head train: no keys of its own; the schema tells build_strategy


@dataclass
class LoraConfig(StrategyConfig):
    option = "lora"
    r: int = opt(8, ge=1)  # rank of the update B·A on every Linear of every layer
    alpha: int = opt(16, ge=1)  # the update is scaled by alpha / r (the LoRA paper's alpha = 2r)
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
    source: str = opt("files", choices=("files", "hub", "imagefolder", "audiofolder"))
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
    # random resized crop: share of the image's area (Inception's / torchvision's default)
    crop_scale: list[float] = opt(factory=lambda: [0.08, 1.0])
    crop_ratio: list[float] = opt(factory=lambda: [0.75, 1.3333333])  # ... and aspect ratio range of the crop
    hflip: bool = True  # random horizontal flip (off for digits, text, anything with a handedness)
    bad_images: str = opt("error", choices=("error", "skip"))  # unreadable/missing: stop naming it, or skip counted
    empty_text: str = opt("error", choices=("error", "skip"))  # an empty text or caption cell: name its row, or skip
    # audio (task=audio_classification, speech_recognition); data_dir and augment above serve them too
    audio_column: str | None = None  # files: audio paths (relative to the file); hub: an Audio feature
    max_seconds: float | None = opt(30.0, gt=0.0)  # longest clip (at the model's rate); None: any length
    truncate: bool = False  # a longer clip: stop naming it, or (true) keep its first max_seconds (counted)
    bad_audio: str = opt("error", choices=("error", "skip"))  # unreadable/empty: stop naming it, or skip counted
    # training batches (augment=true): each clip's speed, shift, gain and noise drawn uniformly from these
    speed: list[float] = opt(factory=lambda: [0.9, 1.1])  # playback rate (tempo and pitch; Kaldi's 0.9–1.1)
    shift_seconds: float = opt(0.1, ge=0.0)  # moved up to this, either way, within the clip
    gain_db: list[float] = opt(factory=lambda: [-6.0, 6.0])
    snr_db: list[float] | None = opt(factory=lambda: [10.0, 40.0])  # white noise at this SNR; None: no noise


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
    fsdp_sharding: str = opt("FULL_SHARD", choices=("FULL_SHARD", "SHARD_GRAD_OP"))  # FULL_SHARD: like ZeRO-3
    num_machines: int = opt(1, ge=1)  # nodes; each runs the same command with its own machine_rank
    machine_rank: int = opt(0, ge=0)
    main_process_ip: str | None = None  # rank-0 node's address (num_machines > 1)
    main_process_port: int | None = opt(None, ge=1, le=65535)  # None: a free port (one machine)


@dataclass
class TrainerConfig:
    epochs: int = opt(3, ge=1)
    max_steps: int = opt(-1, ge=-1)  # > 0 overrides epochs
    batch_size: int = opt(32, ge=1)  # per device
    eval_batch_size: int | None = opt(None, ge=1)  # None: 32 on CPU (activations stay in cache), 128 on GPU/TPU
    grad_accum: int = opt(1, ge=1)
    seed: int = 42
    # picks checkpoints/best; None: the task's first metric (accuracy, pearson, cer …); loss, mse, mae, cer and wer
    # are minimised
    metric: str | None = None
    early_stopping_patience: int | None = opt(None, ge=1)  # evaluations without improvement
    eval_every_steps: int | None = opt(None, ge=1)  # None: once per epoch
    log_every_steps: int = opt(20, ge=1)  # a metrics.jsonl line and a progress update
    max_tokens: int | None = opt(None, ge=16)  # token budget per training batch (dynamic batch size)
    compile: bool = False  # torch.compile the model (pays off on GPU)
    dry_run: bool = False  # build everything, report trainable parameters, do not train
    log_with: str = opt(
        "none", choices=("none", "tensorboard", "wandb", "mlflow")
    )  # trackers too (metrics.jsonl stays)
    save_checkpoints: bool = True  # checkpoints/best and checkpoints/last
    save_every_steps: int | None = opt(None, ge=1)  # resumable state (model, optimizer, RNG, data position)
    keep_checkpoints: int = opt(2, ge=1)  # newest resumable states kept on disk
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory, slower steps


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
class GenerationOverrides:
    """``ftcli predict`` / ``ftcli chat``: the keys of a causal LM's ``task.generation`` (config/tasks/causal_lm.py)
    to change for this command; None keeps the checkpoint's."""

    max_new_tokens: int | None = opt(None, ge=1)
    do_sample: bool | None = None
    temperature: float | None = opt(None, gt=0.0)
    top_p: float | None = opt(None, gt=0.0, le=1.0)
    seed: int | None = None
    stop_strings: list[str] | None = None


@dataclass
class PredictConfig:
    checkpoint: str = MISSING  # a checkpoint folder or a run directory (uses its best checkpoint)
    text: str | None = None  # one input: print its label and probabilities
    text_pair: str | None = None  # sentence-pair models: the second text
    image: str | None = None  # image models: one image file
    question: str | None = None  # question answering: one question (with context)
    context: str | None = None  # ... and the passage that holds its answer
    audio: str | None = None  # audio models: one audio file (its label, or its transcript)
    labels: list[str] | None = None  # CLIP: zero-shot over these class names instead of the trained ones
    prompt: str | None = None  # causal LMs: one prompt (through the chat template): print the answer
    # causal LMs: generation keys that differ from the checkpoint's task.generation (max_new_tokens=16 …)
    generation: GenerationOverrides = opt(factory=GenerationOverrides)
    input: str | None = None  # CSV/TSV/JSON/JSONL file (images: also a folder or a .txt list of paths)
    output: str | None = None  # where the rows go, with label and probabilities (format by extension)
    text_column: str | None = None  # None: the column the checkpoint was trained on
    text_pair_column: str | None = None
    image_column: str | None = None  # image paths in input=<table>; None: "image", else the training data's
    audio_column: str | None = None  # audio paths in input=<table>; None: "audio", else the training data's
    quoting: str | None = opt(None, choices=("minimal", "none"))  # CSV/TSV quotes; None: as the run's dataset
    batch_size: int | None = opt(None, ge=1)  # None: 32 on CPU, 128 on accelerators
    hardware: HardwareConfig = MISSING
    output_dir: str = MISSING


@dataclass
class ChatConfig:
    checkpoint: str = MISSING  # a causal-LM checkpoint folder, a run directory, or a model folder / id
    # generation keys that differ from the checkpoint's task.generation (max_new_tokens=256, do_sample=true …)
    generation: GenerationOverrides = opt(factory=GenerationOverrides)
    system_prompt: str | None = None  # default | none | the text; None: the checkpoint's task.system_prompt
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
