"""The phases of a training run, each returning what the next is given: start → data → model and strategy →
batches → optimizer and schedule → resumable state → (the loop, ``loop.py``) → finish."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate.utils import set_seed
from omegaconf import DictConfig, OmegaConf

from ftcli.config.errors import FtcliError
from ftcli.config.registry import train_metric
from ftcli.config.validate import validate
from ftcli.data.batching import in_order, loader, training_batches
from ftcli.metrics.compare import scalar_metrics
from ftcli.reporting.progress import console
from ftcli.runtime.accelerator import end, inference_batch_size, make_accelerator, resolve_precision, share_config
from ftcli.runtime.sharding import prepare
from ftcli.tasks.registry import build_task
from ftcli.tasks.task import BatchPlan, Task, TaskData
from ftcli.training.checkpoint import Keeper
from ftcli.training.features import FeatureDataset, HeadModel, cached_features, feature_key
from ftcli.training.optim import build_optimizer, build_schedule, warmup_steps
from ftcli.training.state import ResumeState, load_state, resume_config
from ftcli.training.strategies import build_strategy
from ftcli.training.strategies.base import Strategy, count_parameters


@dataclass
class Run:
    """What every phase shares: the resolved config, the accelerator, the task, where files go."""

    cfg: DictConfig
    accelerator: Any
    task: Task
    metric: str  # trainer.metric, or the task's default
    out_dir: Path
    cache_dir: Path

    @property
    def main(self) -> bool:
        return bool(self.accelerator.is_main_process)


@dataclass
class Setup:
    """The model with its strategy applied, and what the run summary says about it."""

    model: Any
    strategy: Strategy
    processor: Any  # tokenizer / image processor, saved with every checkpoint
    label_names: list[str]
    summary: dict[str, float]  # trainable and total parameters
    baseline: dict[str, float]  # measured before training (CLIP's zero-shot classifier), beside every evaluation


@dataclass
class Batches:
    train: Any  # a DataLoader of training batches (one slice of each global batch per process)
    sampler: Any  # its batch sampler (set_epoch)
    validation: Any  # prepared inference batches
    head: Any = None  # set when the head trains alone on cached frozen-backbone features


@dataclass
class Optimisation:
    model: Any  # what the optimizer steps (the model, or the head alone), prepared
    optimizer: Any
    scheduler: Any
    train: Any  # the prepared training batches
    steps_per_epoch: int
    total_steps: int
    epochs: int
    weights: Any  # where checkpoints read the full model (gathered from its shards under FSDP)


def start(cfg: DictConfig) -> Run:
    """Validate, take a resumed run's own config, start the accelerator, make the run dir."""
    validate(cfg)
    cfg = resume_config(cfg)  # resume=<run>: that run's own config and run dir
    tc = cfg.trainer
    cfg.hardware.mixed_precision, why = resolve_precision(cfg.hardware)  # config.yaml records what ran
    accelerator = make_accelerator(cfg.hardware, tc.grad_accum, tc.log_with, Path(cfg.output_dir))
    cfg = share_config(accelerator, cfg)  # ranks started apart agree on one resolved config
    cache = Path(cfg.cache_dir).expanduser()
    run = Run(cfg, accelerator, build_task(cfg.task, cache), train_metric(cfg), Path(cfg.output_dir), cache)
    console.quiet = not run.main  # one process reports
    precision = "fp32" if cfg.hardware.mixed_precision == "no" else f"{cfg.hardware.mixed_precision} autocast"
    console.print(f"precision: {precision} ({why}; hardware.mixed_precision=no forces fp32)", highlight=False)
    if run.main:
        run.out_dir.mkdir(parents=True, exist_ok=True)
        for leftover in ("metrics.json", "error.txt"):  # metrics.json appears only when this run finishes
            (run.out_dir / leftover).unlink(missing_ok=True)
        (run.out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    set_seed(tc.seed)
    return run


def load_data(run: Run) -> tuple[TaskData, dict[str, Any], Any]:
    """The task's splits, its processor, and the two splits training reads as model inputs."""
    cfg = run.cfg
    with run.accelerator.main_process_first():  # datasets' cache is built once, then read by the others
        data = run.task.load_data(cfg.dataset, cfg.trainer.seed)
        why_not = run.task.check_metric(run.metric, data.label_names)  # top-5 accuracy of 3 classes …
        if why_not:
            raise FtcliError(why_not)
        processor = run.task.load_processor(cfg.model, data)
        encoded = {  # training uses these two (a test split is for ftcli eval)
            s: run.task.encode(data.splits[s], data, processor, cfg.model) for s in ("train", "validation")
        }
    return data, encoded, processor


def build(run: Run, data: TaskData, processor: Any, encoded: dict[str, Any]) -> Setup:
    """The task's model (its baseline measured before anything trains), the strategy's freezing, and a summary line
    of what trains."""
    cfg, task, validation = run.cfg, run.task, encoded["validation"]
    # rows used: an encoded split is shorter when rows were left out (bad_images=skip), longer when split in windows
    used = {s: min(len(data.splits[s]), len(encoded[s])) for s in ("train", "validation")}
    built = task.build_model(cfg.model, cfg.strategy.pooling or cfg.model.pooling, data, processor, cfg.trainer.seed)
    model = built.model
    baseline = task.baseline.measure(model, processor, data.label_names, validation) if task.baseline else {}
    strategy = build_strategy(cfg.strategy, built.roles)
    strategy.setup(model)
    if cfg.trainer.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    trainable, total = count_parameters(model)
    if trainable == 0:
        raise FtcliError(nothing_trains(cfg.strategy.name, model))
    summary = {"trainable_params": trainable, "total_params": total, "trainable_pct": 100 * trainable / total}
    console.print(
        f"[bold]{cfg.model.name}[/] · {cfg.task.name} · strategy={cfg.strategy.name} · pooling={built.pooling} · "
        f"trainable {trainable:,} / {total:,} ({summary['trainable_pct']:.2f}%) · "
        f"train {used['train']:,} · validation {used['validation']:,}"
    )
    notes = [*built.notes, *([task.baseline.note(baseline)] if task.baseline else []), *strategy.notes]
    for note in notes:
        console.print(f"[yellow]note:[/] {note}")
    return Setup(model, strategy, processor, data.label_names, summary, baseline)


def nothing_trains(strategy: str, model: Any) -> str:
    """Why a strategy leaves nothing to train on this model, in one line."""
    biases = any(n.endswith("bias") for n, _ in model.named_parameters())
    return (
        f"strategy={strategy}: no parameter of {type(model).__name__} would train (it has no new head"
        f"{'' if biases else ' and no biases'}: a causal LM's output layer is pretrained); "
        "use lora, partial or full"
    )


def make_batches(run: Run, built: Setup, data: TaskData, encoded: dict[str, Any]) -> Batches:
    """Global batches (per device × processes), one slice per process: n processes take the same optimizer
    steps on the same examples as one process with the same global batch. A frozen backbone whose head
    can train alone runs once per example instead: its features are cached."""
    cfg, task, acc = run.cfg, run.task, run.accelerator
    tc, n = cfg.trainer, acc.num_processes
    eval_batch = inference_batch_size(tc.eval_batch_size, acc.device)
    if getattr(acc.state, "deepspeed_plugin", None) is not None:  # what DeepSpeed reads from its own config
        ds = acc.state.deepspeed_plugin.deepspeed_config
        ds["train_micro_batch_size_per_gpu"] = tc.batch_size  # a batch sampler hides the size from prepare
        ds["gradient_clipping"] = cfg.strategy.max_grad_norm  # it clips inside its step (0: not at all)
    cached = task.features is not None and task.features.applies(built.model)
    if built.strategy.frozen_backbone and cfg.strategy.cache_features and cached:
        return feature_batches(run, built, encoded, eval_batch)
    plan = BatchPlan(tc.batch_size, n, tc.seed, tc.max_tokens)
    train, sampler = task.train_loader(encoded["train"], data, built.processor, plan)
    validation = acc.prepare(task.eval_loader(encoded["validation"], built.processor, eval_batch))
    return Batches(train, sampler, validation)


def feature_batches(run: Run, built: Setup, encoded: dict[str, Any], eval_batch: int) -> Batches:
    """Batches of cached frozen-backbone features (computed once, on the main process first)."""
    features, acc, model, tc = run.task.features, run.accelerator, built.model, run.cfg.trainer
    assert features is not None
    model.to(acc.device)
    feats, labels = {}, {}
    identities = features.identities(model, built.processor, encoded)  # the weights hashed once, not per split
    for split, ds in encoded.items():
        key = feature_key({**identities[split], "precision": acc.mixed_precision})  # bf16 features: not fp32's

        def compute(ds: Any = ds) -> dict[str, torch.Tensor]:
            return features.compute(model, ds, built.processor, eval_batch, acc)

        with acc.main_process_first():
            path = run.cache_dir / "features" / f"{key}.safetensors"
            feats[split], hit = cached_features(compute, features.name(model), path)
        console.print(f"features {split}: {tuple(feats[split].shape)} ({'cache hit' if hit else 'computed'})")
        labels[split] = torch.as_tensor(features.labels_of(ds))
    sampler = training_batches(np.ones(len(labels["train"])), tc.batch_size, acc.num_processes, tc.seed, group=False)
    train = loader(FeatureDataset(feats["train"], labels["train"]), sampler)
    validation = FeatureDataset(feats["validation"], labels["validation"])
    validation_batches = loader(validation, in_order(len(validation), eval_batch))
    return Batches(train, sampler, acc.prepare(validation_batches), head=features.head(model))


def make_optimisation(run: Run, built: Setup, batches: Batches) -> Optimisation:
    """Optimizer over the strategy's parameter groups, prepared with the model and batches; the schedule
    over the step count *after* prepare (per process)."""
    cfg, acc, tc = run.cfg, run.accelerator, run.cfg.trainer
    model = HeadModel(batches.head) if batches.head is not None else built.model
    optimizer = build_optimizer(cfg.strategy, built.strategy.param_groups(model), acc.device)
    if tc.compile:
        model = torch.compile(model)
    model, optimizer, train, weights = prepare(acc, model, optimizer, batches.train, built.model, built.strategy)
    steps_per_epoch = math.ceil(len(train) / tc.grad_accum)
    total = tc.max_steps if tc.max_steps > 0 else tc.epochs * steps_per_epoch
    epochs = math.ceil(total / steps_per_epoch)
    scheduler = build_schedule(optimizer, cfg.strategy.schedule, warmup_steps(cfg.strategy.warmup_ratio, total), total)
    acc.register_for_checkpointing(scheduler)  # saved with model, optimizer and RNG in state/
    n = acc.num_processes
    budget = f" (token budget {tc.max_tokens})" if tc.max_tokens else ""
    console.print(
        f"{total} optimizer steps · {epochs} epoch(s) · global batch {tc.batch_size * n * tc.grad_accum} "
        f"({tc.batch_size} per device × {n} processes × {tc.grad_accum} accumulated){budget} · "
        f"{cfg.strategy.optimizer}, {cfg.strategy.schedule} schedule · device {acc.device}"
    )
    return Optimisation(model, optimizer, scheduler, train, steps_per_epoch, total, epochs, weights)


def restore(run: Run, opt: Optimisation) -> ResumeState:
    """A resumed run's weights, optimizer, scheduler and RNG, and where it was; a fresh state otherwise."""
    if not run.cfg.resume:
        return ResumeState()
    state = load_state(run.accelerator, run.out_dir)
    if state.batch_in_epoch >= len(opt.train):  # saved at the end of an epoch
        state.epoch, state.batch_in_epoch = state.epoch + 1, 0
    return state


@dataclass(frozen=True)
class Outcome:
    """How the fit loop ended: where it was, and the signal that stopped it (0: it ran to the end)."""

    state: ResumeState
    signum: int
    started: float  # time.perf_counter() when the loop began


def finish(run: Run, built: Setup, keeper: Keeper, outcome: Outcome) -> dict[str, float]:
    """Write the best head if it waits, ``last``, metrics.json; leave the accelerator."""
    st = outcome.state
    keeper.flush()
    if outcome.signum:
        end(run.accelerator)
        return {"interrupted_by_signal": float(outcome.signum), "step": float(st.step)}
    with built.strategy.interpolated():
        keeper.last(st.best_metrics, st.last_metrics)
    seconds = time.perf_counter() - outcome.started
    result = {**scalar_metrics(st.best_metrics), **built.summary, "train_seconds": seconds}
    result["trainable_params_final"] = count_parameters(built.model)[0]  # differs under gradual_unfreeze / lp_ft
    if run.main:
        (run.out_dir / "metrics.json").write_text(json.dumps(result, indent=2))
        beside = run.task.baseline.beside(st.best_metrics) if run.task.baseline else ""
        best = f"{st.best:.4f}{beside}" if st.best is not None else "-"
        console.print(
            f"best validation {run.metric} {best} at step {st.best_metrics.get('step')} → {run.out_dir / 'checkpoints'}"
        )
    end(run.accelerator)
    return result
