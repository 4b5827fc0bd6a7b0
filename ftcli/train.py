"""``train(cfg) -> dict[str, float]``: the whole fine-tuning run, top to bottom, in named phases.

start → data → model and strategy → batches → optimizer and schedule → resumable state → fit
(evaluate and keep the best) → finish. What the data, model, loss and metrics *are* is the task's
(``ftcli/tasks``); what trains is the strategy's; this module only runs them.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from ftcli.checkpoint import Keeper, ResumeState, load_state, resume_config, save_state
from ftcli.config import FtcliError, is_better, train_metric, validate
from ftcli.metrics import scalar_metrics
from ftcli.progress import Progress, console
from ftcli.runtime import StopSignals, end, inference_batch_size, make_accelerator, resolve_precision, share_config
from ftcli.strategies import Strategy, build_strategy, count_parameters
from ftcli.tasks import Task, TaskData, build_task
from ftcli.tracking import MetricsLog


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
class Built:
    """The model with its strategy applied, and what the run summary says about it."""

    model: Any
    strategy: Strategy
    processor: Any  # tokenizer / image processor, saved with every checkpoint
    label_names: list[str]
    summary: dict[str, float]  # trainable and total parameters


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


def train(cfg: DictConfig) -> dict[str, float]:
    """Fine-tune ``cfg.model`` on ``cfg.dataset`` for ``cfg.task`` with ``cfg.strategy``; return the best
    validation metrics (or, for trainer.dry_run, the trainable parameter counts)."""
    run = start(cfg)
    data, encoded, processor = load_data(run)
    built = build(run, data, processor)
    if run.cfg.trainer.dry_run:
        return dict(built.summary)
    batches = make_batches(run, built, encoded)
    opt = make_optimisation(run, built, batches)
    state = restore(run, opt)
    saves = run.cfg.trainer.save_checkpoints  # every process: a sharded model is gathered by all of them
    keeper = Keeper(
        run.cfg, run.out_dir, opt.weights, processor, built.strategy, batches.head, saves, built.summary, run.main
    )
    loop = Loop(run, built, batches, opt, keeper, state)
    loop.fit()
    return finish(run, built, keeper, loop)


def start(cfg: DictConfig) -> Run:
    """Validate, take a resumed run's own config, start the accelerator, make the run dir."""
    from accelerate.utils import set_seed

    validate(cfg)
    cfg = resume_config(cfg)  # resume=<run>: that run's own config and run dir
    tc = cfg.trainer
    cfg.hardware.mixed_precision, why = resolve_precision(cfg.hardware)  # config.yaml records what ran
    accelerator = make_accelerator(cfg.hardware, tc.grad_accum, tc.log_with, Path(cfg.output_dir))
    cfg = share_config(accelerator, cfg)  # ranks started apart agree on one resolved config
    run = Run(cfg, accelerator, build_task(cfg.task), train_metric(cfg), Path(cfg.output_dir), Path(cfg.cache_dir))
    run.cache_dir = run.cache_dir.expanduser()
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
        why_not = run.task.metric_error(run.metric, data.label_names)  # top-5 accuracy of 3 classes …
        if why_not:
            raise FtcliError(why_not)
        processor = run.task.load_processor(cfg.model, run.cache_dir, data)
        encoded = {  # training uses these two (a test split is for ftcli eval)
            s: run.task.encode(data.splits[s], data.columns, processor, cfg.model) for s in ("train", "validation")
        }
    return data, encoded, processor


def build(run: Run, data: TaskData, processor: Any) -> Built:
    """The task's model, the strategy's freezing, and a summary line of what trains."""
    cfg = run.cfg
    pooling, why = run.task.pooling(cfg.strategy.pooling or cfg.model.pooling)  # a token head pools nothing
    model = run.task.build_model(cfg.model, pooling, data, processor, cfg.trainer.seed)
    strategy = build_strategy(cfg.strategy)
    if why:
        strategy.notes.append(why)
    strategy.setup(model)
    if cfg.trainer.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    trainable, total = count_parameters(model)
    summary = {"trainable_params": trainable, "total_params": total, "trainable_pct": 100 * trainable / total}
    console.print(
        f"[bold]{cfg.model.name}[/] · {cfg.task.name} · strategy={cfg.strategy.name} · pooling={pooling} · "
        f"trainable {trainable:,} / {total:,} ({summary['trainable_pct']:.2f}%) · "
        f"train {len(data.splits['train']):,} · validation {len(data.splits['validation']):,}"
    )
    for note in [*run.task.notes, *strategy.notes]:
        console.print(f"[yellow]note:[/] {note}")
    return Built(model, strategy, processor, data.label_names, summary)


def make_batches(run: Run, built: Built, encoded: dict[str, Any]) -> Batches:
    """Global batches (per device × processes), one slice per process: n processes take the same optimizer
    steps on the same examples as one process with the same global batch. A frozen backbone whose head
    can train alone runs once per example instead: its features are cached."""
    from ftcli.data import ShardedBatches

    cfg, task, acc = run.cfg, run.task, run.accelerator
    tc, n = cfg.trainer, acc.num_processes
    eval_batch = inference_batch_size(tc.eval_batch_size, acc.device)
    if getattr(acc.state, "deepspeed_plugin", None) is not None:  # what DeepSpeed reads from its own config
        ds = acc.state.deepspeed_plugin.deepspeed_config
        ds["train_micro_batch_size_per_gpu"] = tc.batch_size  # a batch sampler hides the size from prepare
        ds["gradient_clipping"] = cfg.strategy.max_grad_norm  # it clips inside its step (0: not at all)
    if built.strategy.frozen_backbone and cfg.strategy.cache_features and task.caches_features(built.model):
        return feature_batches(run, built, encoded, eval_batch)
    budget = tc.max_tokens and tc.max_tokens * n
    sampler = ShardedBatches(task.train_batches(encoded["train"], n * tc.batch_size, tc.seed, budget), n)
    train = task.loader(encoded["train"], sampler, built.processor)
    validation = acc.prepare(task.eval_loader(encoded["validation"], built.processor, eval_batch))
    return Batches(train, sampler, validation)


def feature_batches(run: Run, built: Built, encoded: dict[str, Any], eval_batch: int) -> Batches:
    """Batches of cached frozen-backbone features (computed once, on the main process first)."""
    import numpy as np
    from torch.utils.data import DataLoader

    from ftcli.data import LengthGroupedBatches, ShardedBatches, seed_source
    from ftcli.features import FeatureDataset, cached_features, feature_key

    task, acc, model, tc = run.task, run.accelerator, built.model, run.cfg.trainer
    model.to(acc.device)
    feats, labels = {}, {}
    for split, ds in encoded.items():
        identity = task.feature_identity(model, built.processor, ds, tc.seed)
        key = feature_key({**identity, "precision": acc.mixed_precision})  # bf16 features differ from fp32 ones

        def compute(ds: Any = ds) -> dict[str, torch.Tensor]:
            return task.frozen_features(model, ds, built.processor, eval_batch, acc)

        with acc.main_process_first():
            path = run.cache_dir / "features" / f"{key}.safetensors"
            feats[split], hit = cached_features(compute, task.feature_name(model), path)
        console.print(f"features {split}: {tuple(feats[split].shape)} ({'cache hit' if hit else 'computed'})")
        labels[split] = torch.as_tensor(task.labels_of(ds))
    n = acc.num_processes  # a seeded per-epoch shuffle, sharded like token batches
    shuffled = LengthGroupedBatches(np.ones(len(labels["train"])), n * tc.batch_size, tc.seed, group=False)
    sampler = ShardedBatches(shuffled, n)
    data = FeatureDataset(feats["train"], labels["train"])
    train = DataLoader(data, batch_sampler=sampler, generator=seed_source())
    validation = DataLoader(FeatureDataset(feats["validation"], labels["validation"]), batch_size=eval_batch)
    return Batches(train, sampler, acc.prepare(validation), head=task.head(model))


def make_optimisation(run: Run, built: Built, batches: Batches) -> Optimisation:
    """Optimizer over the strategy's parameter groups, prepared with the model and batches; the schedule
    over the step count *after* prepare (per process)."""
    from ftcli.features import HeadModel
    from ftcli.optim import build_optimizer, build_schedule
    from ftcli.sharding import prepare

    cfg, acc, tc = run.cfg, run.accelerator, run.cfg.trainer
    model = HeadModel(batches.head) if batches.head is not None else built.model
    optimizer = build_optimizer(cfg.strategy, built.strategy.param_groups(model), acc.device)
    if tc.compile:
        model = torch.compile(model)
    model, optimizer, train, weights = prepare(acc, model, optimizer, batches.train, built.model, built.strategy)
    steps_per_epoch = math.ceil(len(train) / tc.grad_accum)
    total = tc.max_steps if tc.max_steps > 0 else tc.epochs * steps_per_epoch
    epochs = math.ceil(total / steps_per_epoch)
    scheduler = build_schedule(optimizer, cfg.strategy.schedule, int(cfg.strategy.warmup_ratio * total), total)
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


class Loop:
    """The fit loop: plain Accelerate steps; evaluation keeps the best checkpoint; signals save a state."""

    def __init__(
        self, run: Run, built: Built, batches: Batches, opt: Optimisation, keeper: Keeper, state: ResumeState
    ) -> None:
        self.run, self.built, self.batches, self.opt, self.keeper, self.state = run, built, batches, opt, keeper, state
        tc = run.cfg.trainer
        self.eval_every = tc.eval_every_steps or opt.steps_per_epoch
        self.log = MetricsLog(run.cfg, run.accelerator, run.out_dir, state.step if run.cfg.resume else None)
        self.progress = Progress(opt.total_steps)
        self.seen, self.tokens, self.micro, self.running, self.t0 = 0, 0, 0, 0.0, time.perf_counter()
        self.stop, self.signum = state.step >= opt.total_steps, 0

    def fit(self) -> None:
        signals = StopSignals().install()
        try:  # a failed run (NaN loss, a sweep trial that raises) must not leave our signal handlers behind
            self.schedule(self.state.epoch)  # the strategy's schedule where this run starts (or resumes)
            skip = self.state.batch_in_epoch
            for epoch in range(self.state.epoch, self.opt.epochs):
                if self.stop:
                    break
                self.epoch(epoch, skip, signals)
                skip = 0
        finally:
            signals.restore()
            self.progress.close()

    def epoch(self, epoch: int, skip: int, signals: StopSignals) -> None:
        acc, opt = self.run.accelerator, self.opt
        self.batches.sampler.set_epoch(epoch)
        opt.train.set_epoch(epoch)  # Accelerate re-sets the sampler's epoch from its own count
        opt.model.train()
        batches = acc.skip_first_batches(opt.train, skip) if skip else opt.train
        for i, batch in enumerate(batches, start=skip):
            self.step(batch)
            if not acc.sync_gradients:
                continue
            self.after_step(epoch, i + 1, signals)
            if self.stop:
                return

    def step(self, batch: dict[str, Any]) -> None:
        """One micro-batch: loss (+ the strategy's penalty), backward, and the optimizer step when synced."""
        acc, opt, st_cfg = self.run.accelerator, self.opt, self.run.cfg.strategy
        batch.pop("idx", None)  # feature rows carry their index for evaluation only
        with acc.accumulate(opt.model):
            loss = self.run.task.loss(opt.model, batch)
            penalty = self.built.strategy.penalty(acc.unwrap_model(opt.model))
            if penalty is not None:
                loss = loss + penalty
            acc.backward(loss)
            if acc.sync_gradients and st_cfg.max_grad_norm > 0:
                acc.clip_grad_norm_(opt.model.parameters(), st_cfg.max_grad_norm)
            opt.optimizer.step()
            opt.optimizer.zero_grad(set_to_none=True)
        examples, tokens = self.run.task.count(batch)  # real (unpadded) tokens, for tokens/s
        self.seen, self.tokens = self.seen + examples * acc.num_processes, self.tokens + tokens * acc.num_processes
        value = loss.item()
        self.running, self.micro = self.running + value, self.micro + 1
        if not math.isfinite(value):  # stop before the bad weights reach a checkpoint
            self.keeper.flush()
            kept = self.state.best_metrics if self.run.cfg.trainer.save_checkpoints else None
            raise FtcliError(nonfinite(value, self.state.step + 1, self.run.out_dir, kept))

    def after_step(self, epoch: int, done: int, signals: StopSignals) -> None:
        """After an optimizer step: schedule, log, evaluate, and save a state when asked or due."""
        st, tc, acc = self.state, self.run.cfg.trainer, self.run.accelerator
        self.opt.scheduler.step()
        st.step += 1
        self.schedule(epoch)  # gradual unfreezing, LP → FT
        self.report(epoch)
        if st.step % self.eval_every == 0 or st.step == self.opt.total_steps:
            self.evaluate(epoch)
        self.signum = signals.requested(acc)  # SIGTERM/SIGINT: save a resumable state and stop
        if self.signum or (tc.save_every_steps and st.step % tc.save_every_steps == 0):
            st.epoch, st.batch_in_epoch = epoch, done
            self.keeper.flush()  # a resumed run finds the best checkpoint its state speaks of
            save_state(acc, self.run.out_dir, st, tc.keep_checkpoints)
        if self.signum:
            resume = f"ftcli train resume={self.run.out_dir}"
            self.progress.note(f"signal {self.signum}: state saved at step {st.step}; go on: {resume}")
        self.stop = self.stop or bool(self.signum) or st.step >= self.opt.total_steps

    def schedule(self, epoch: int) -> None:
        """Let the strategy's schedule act; print and log the trainable count when it changed."""
        model, st = self.built.model, self.state
        if self.built.strategy.on_step(model, st.step, self.opt.steps_per_epoch):
            now, total = count_parameters(model)
            self.log({"step": st.step, "epoch": epoch, "trainable_params": now, "trainable_pct": 100 * now / total})
            self.progress.note(f"step {st.step} · trainable {now:,} / {total:,} ({100 * now / total:.2f}%)")

    def report(self, epoch: int) -> None:
        step, tc = self.state.step, self.run.cfg.trainer
        if step % tc.log_every_steps and step != self.opt.total_steps:
            self.progress.update(step)
            return
        elapsed = time.perf_counter() - self.t0
        loss, acc = self.running / self.micro, self.run.accelerator
        if acc.num_processes > 1:  # each process saw its slice of the global batches: log their mean
            loss = acc.reduce(torch.tensor(loss, device=acc.device), "mean").item()
        record = {
            "step": step,
            "epoch": epoch,
            "loss": loss,
            "lr": self.opt.scheduler.get_last_lr()[0],
            "samples_per_s": self.seen / elapsed,
            "tokens_per_s": self.tokens / elapsed,
        }
        self.running, self.micro = 0.0, 0
        self.log(record)
        self.progress.update(step, record)

    def evaluate(self, epoch: int) -> None:
        """Validation metrics; the best by ``trainer.metric`` is kept; patience runs out → stop."""
        st, metric, tc = self.state, self.run.metric, self.run.cfg.trainer
        run = self.run
        with self.built.strategy.interpolated():  # WiSE-FT: the interpolated weights are what is judged and kept
            metrics = run.task.evaluate(
                self.opt.model, self.batches.validation, run.accelerator, self.built.label_names
            )
            flat = {"step": st.step, "epoch": epoch, "split": "validation", **scalar_metrics(metrics)}
            better = is_better(metric, metrics[metric], st.best)
            if better:
                self.keeper.best(flat)
        self.log(flat)
        self.progress.note(f"step {st.step} · validation {metric} {metrics[metric]:.4f}{run.task.beside(metrics)}")
        self.opt.model.train()
        if better:
            st.best, st.best_metrics, st.stale = metrics[metric], flat, 0
        else:
            st.stale += 1
            if tc.early_stopping_patience and st.stale >= tc.early_stopping_patience:
                self.progress.note(f"early stopping: {st.stale} evaluations without a better {metric}")
                self.stop = True
        st.last_metrics = flat


def nonfinite(value: float, step: int, out_dir: Path, best: dict[str, Any] | None) -> str:
    """What to say when the loss stops being a number: where, and which checkpoint is still good."""
    kept = (
        f"the last good checkpoint is {out_dir / 'checkpoints' / 'best'} (step {best['step']})"
        if best
        else "no checkpoint had been saved"
    )
    return f"loss is {value} at step {step}: training stopped; {kept}; lower strategy.lr or check the data"


def finish(run: Run, built: Built, keeper: Keeper, loop: Loop) -> dict[str, float]:
    """Write the best head if it waits, ``last``, metrics.json; leave the accelerator."""
    st = loop.state
    keeper.flush()
    loop.log.close()
    if loop.signum:
        end(run.accelerator)
        return {"interrupted_by_signal": float(loop.signum), "step": float(st.step)}
    with built.strategy.interpolated():
        keeper.last(st.best_metrics, st.last_metrics)
    result = {**scalar_metrics(st.best_metrics), **built.summary, "train_seconds": time.perf_counter() - loop.t0}
    result["trainable_params_final"] = count_parameters(built.model)[0]  # differs under gradual_unfreeze / lp_ft
    if run.main:
        (run.out_dir / "metrics.json").write_text(json.dumps(result, indent=2))
        best = f"{st.best:.4f}{run.task.beside(st.best_metrics)}" if st.best is not None else "-"
        console.print(
            f"best validation {run.metric} {best} at step {st.best_metrics.get('step')} → {run.out_dir / 'checkpoints'}"
        )
    end(run.accelerator)
    return result
