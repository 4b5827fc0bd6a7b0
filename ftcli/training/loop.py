"""The fit loop: plain Accelerate steps; evaluation keeps the best checkpoint; signals save a resumable state."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch

from ftcli.config.errors import FtcliError
from ftcli.metrics.compare import is_better, scalar_metrics
from ftcli.reporting.progress import Progress
from ftcli.reporting.tracking import MetricsLog
from ftcli.runtime.signals import StopSignals
from ftcli.training.checkpoint import Keeper
from ftcli.training.phases import Batches, Optimisation, Outcome, Run, Setup
from ftcli.training.state import ResumeState, save_state
from ftcli.training.strategies.base import count_parameters


class Loop:
    """The fit loop: plain Accelerate steps; evaluation keeps the best checkpoint; signals save a state."""

    def __init__(
        self, run: Run, built: Setup, batches: Batches, opt: Optimisation, keeper: Keeper, state: ResumeState
    ) -> None:
        self.run, self.built, self.batches, self.opt, self.keeper, self.state = run, built, batches, opt, keeper, state
        tc = run.cfg.trainer
        self.eval_every = tc.eval_every_steps or opt.steps_per_epoch
        self.log = MetricsLog(run.cfg, run.accelerator, run.out_dir, state.step if run.cfg.resume else None)
        self.progress = Progress(opt.total_steps)
        self.seen, self.tokens, self.micro, self.running, self.t0 = 0, 0, 0, 0.0, time.perf_counter()
        self.stop, self.signum = state.step >= opt.total_steps, 0

    def fit(self) -> Outcome:
        """Train from where the state says to the last step (or a signal, early stopping, a non-finite loss)."""
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
            self.log.close()
        return Outcome(self.state, self.signum, self.t0)

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
            built = self.built
            metrics = run.task.evaluate(
                self.opt.model, self.batches.validation, built.processor, run.accelerator, built.label_names
            )
            metrics.update(built.baseline)  # CLIP: the zero-shot numbers beside the run's own
            flat = {"step": st.step, "epoch": epoch, "split": "validation", **scalar_metrics(metrics)}
            better = is_better(metric, metrics[metric], st.best)
            if better:
                self.keeper.best(flat)
        self.log(flat)
        beside = run.task.baseline.beside(metrics) if run.task.baseline else ""
        self.progress.note(f"step {st.step} · validation {metric} {metrics[metric]:.4f}{beside}")
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
