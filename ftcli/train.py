"""``train(cfg) -> dict[str, float]``: the whole fine-tuning run, top to bottom."""

from __future__ import annotations

import importlib.util
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from ftcli.config import FtcliError, HardwareConfig, validate
from ftcli.evaluate import LOWER_IS_BETTER, evaluate, scalar_metrics
from ftcli.progress import Progress, console


def make_accelerator(hw: HardwareConfig, grad_accum: int, log_with: str = "none", project_dir: Any = None) -> Any:
    """An Accelerator for the chosen hardware; a clear error when that hardware is absent."""
    from accelerate import Accelerator, DistributedDataParallelKwargs

    if hw.accelerator == "gpu" and not torch.cuda.is_available():
        raise FtcliError(f"hardware={hw.name}: no CUDA GPU is visible; use hardware=cpu or hardware=auto")
    if hw.accelerator == "tpu":
        try:
            import torch_xla  # noqa: F401
        except ImportError as e:
            raise FtcliError(f"hardware={hw.name}: torch_xla is not installed (needed for TPUs)") from e
    cpu = hw.accelerator == "cpu" or (hw.accelerator == "auto" and not torch.cuda.is_available())
    if cpu and hw.mixed_precision == "fp16":
        raise FtcliError("hardware.mixed_precision=fp16: not supported on CPU; use bf16 or no")
    if cpu and hw.cpu_threads:
        torch.set_num_threads(hw.cpu_threads)
    trackers = None if log_with == "none" else log_with  # metrics.jsonl stays the source of truth
    if trackers and importlib.util.find_spec(trackers) is None:  # Accelerate would drop it silently
        raise FtcliError(f"trainer.log_with={trackers}: {trackers} is not installed (pip install {trackers})")
    # ftcli's pooled head leaves the backbone's own pooler unused, and strategies may skip layers:
    # DDP must not wait for gradients that never come.
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    return Accelerator(
        cpu=cpu,
        mixed_precision=hw.mixed_precision,
        gradient_accumulation_steps=grad_accum,
        kwargs_handlers=[ddp],
        log_with=trackers,
        project_dir=project_dir,
    )


def inference_batch_size(size: int | None, device: Any) -> int:
    """An explicit size, else one that suits the device: on CPUs a batch's activations should stay in
    cache (MiniLM on 2 cores: 300 sentences/s at 32, 205 at 128, length-sorted); GPUs want more rows."""
    return size or (32 if torch.device(device).type == "cpu" else 128)


def eval_loader(ds: Any, tokenizer: Any, batch_size: int, accelerator: Any) -> Any:
    """Length-sorted inference batches that carry each example's index (to restore the order)."""
    from ftcli.data import lengths_of, loader, sorted_batches

    lengths = lengths_of(ds)
    ds = ds.add_column("idx", list(range(len(ds))))
    return accelerator.prepare(loader(ds, sorted_batches(lengths, batch_size), tokenizer))


def tracker_config(cfg: DictConfig) -> dict[str, Any]:
    """The run config flattened to dotted keys with scalar values (what TensorBoard's hparams accept)."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        for k, v in node.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                flat[f"{prefix}{k}"] = v if isinstance(v, (int, float, str, bool)) else str(v)

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return flat


def end(accelerator: Any) -> None:
    """Wait for every process and finish trackers. The process group is left by the caller once the
    DDP model is freed (``launch.leave_process_group``): destroying it first hangs a gloo worker."""
    accelerator.wait_for_everyone()
    for tracker in accelerator.trackers:
        tracker.finish()


def linear_schedule(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> Any:
    """Linear warm-up to the peak lr, then linear decay to 0 at ``total`` (HF's default schedule).
    Built on torch's LambdaLR here: importing it from transformers.optimization pulls in peft and
    transformers' Trainer (2.4 s), more than a cached feature-extraction run takes to train."""

    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _better(metric: str, new: float, best: float | None) -> bool:
    if best is None:
        return True
    return new < best if metric in LOWER_IS_BETTER else new > best


def _nonfinite(value: float, step: int, out_dir: Path, best: dict[str, Any] | None) -> str:
    """What to say when the loss stops being a number: where, and which checkpoint is still good."""
    kept = (
        f"the last good checkpoint is {out_dir / 'checkpoints' / 'best'} (step {best['step']})"
        if best
        else "no checkpoint had been saved"
    )
    return f"loss is {value} at step {step}: training stopped; {kept}; lower strategy.lr or check the data"


def train(cfg: DictConfig) -> dict[str, float]:
    """Fine-tune ``cfg.model`` on ``cfg.dataset`` with ``cfg.strategy``; return the best validation metrics."""
    from accelerate.utils import set_seed
    from torch.utils.data import DataLoader

    from ftcli.checkpoint import (
        StopSignals,
        link_checkpoint,
        load_state,
        resume_config,
        save_checkpoint,
        save_state,
        trim_log,
    )
    from ftcli.data import (
        LengthGroupedBatches,
        ShardedBatches,
        column_of,
        content_fingerprint,
        lengths_of,
        load_splits,
        loader,
        seed_source,
        tokenize,
        tokenizer_fingerprint,
    )
    from ftcli.features import FeatureDataset, HeadModel, cached_features, feature_key
    from ftcli.launch import share_config
    from ftcli.models import build_model, load_tokenizer
    from ftcli.strategies import build_strategy, count_parameters

    validate(cfg)
    cfg = resume_config(cfg)  # resume=<run>: that run's own config and run dir
    accelerator = make_accelerator(cfg.hardware, cfg.trainer.grad_accum, cfg.trainer.log_with, Path(cfg.output_dir))
    cfg = share_config(accelerator, cfg)  # ranks started apart agree on one resolved config
    tc = cfg.trainer
    eval_batch = inference_batch_size(tc.eval_batch_size, accelerator.device)
    out_dir, cache_dir = Path(cfg.output_dir), Path(cfg.cache_dir).expanduser()
    main = accelerator.is_main_process
    console.quiet = not main  # one process reports
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        for leftover in ("metrics.json", "error.txt"):  # metrics.json appears only when this run finishes
            (out_dir / leftover).unlink(missing_ok=True)
        (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    set_seed(tc.seed)

    # ---- data and model ------------------------------------------------------------------------
    with accelerator.main_process_first():  # datasets' cache is built once, then read by the others
        data = load_splits(cfg.dataset, tc.seed)
        tokenizer = load_tokenizer(cfg.model, cache_dir, data.splits["train"][data.text_columns[0]])
        tokenized = {  # training uses these two (a test split is for ftcli eval)
            s: tokenize(data.splits[s], tokenizer, data.text_columns, cfg.model.max_length)
            for s in ("train", "validation")
        }
    pooling = cfg.strategy.pooling or cfg.model.pooling
    model = build_model(cfg.model, pooling, data.label_names, tokenizer, tc.seed)
    strategy = build_strategy(cfg.strategy)
    strategy.setup(model)
    if tc.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    trainable, total = count_parameters(model)
    summary = {"trainable_params": trainable, "total_params": total, "trainable_pct": 100 * trainable / total}
    console.print(
        f"[bold]{cfg.model.name}[/] · strategy={cfg.strategy.name} · pooling={pooling} · "
        f"trainable {trainable:,} / {total:,} ({summary['trainable_pct']:.2f}%) · "
        f"train {len(data.splits['train']):,} · validation {len(data.splits['validation']):,}"
    )
    if tc.dry_run:
        return {k: float(v) for k, v in summary.items()}

    # With a frozen backbone and ftcli's pooled head, the backbone runs once per example: the head
    # trains on cached features (the full model, sharing the head, is what gets saved).
    n = accelerator.num_processes
    head_only = strategy.frozen_backbone and pooling != "native" and cfg.strategy.cache_features
    if head_only:
        model.to(accelerator.device)
        feats = {}
        for split, ds in tokenized.items():
            key = feature_key(
                model, tokenizer_fingerprint(tokenizer), cfg.model.max_length, content_fingerprint(ds), tc.seed
            )
            with accelerator.main_process_first():
                feats[split], hit = cached_features(
                    model,
                    ds,
                    lengths_of(ds),
                    tokenizer,
                    eval_batch,
                    accelerator.device,
                    cache_dir / "features" / f"{key}.safetensors",
                )
            console.print(f"features {split}: {tuple(feats[split].shape)} ({'cache hit' if hit else 'computed'})")
        train_model: Any = HeadModel(model.head)
        labels = {s: torch.tensor(column_of(ds, "labels")) for s, ds in tokenized.items()}
        n_train = len(labels["train"])  # seeded per-epoch shuffle, sharded like the token batches below
        shuffled = LengthGroupedBatches(np.ones(n_train), n * tc.batch_size, tc.seed, group=False)
        sampler = ShardedBatches(shuffled, n)
        train_batches: Any = DataLoader(
            FeatureDataset(feats["train"], labels["train"]), batch_sampler=sampler, generator=seed_source()
        )
        val_batches = DataLoader(FeatureDataset(feats["validation"], labels["validation"]), batch_size=eval_batch)
        val_batches = accelerator.prepare(val_batches)
    else:
        train_model = model
        # Global batches (per device × processes), one slice per process: n processes take the same
        # optimizer steps on the same examples as one process with the same global batch.
        budget = tc.max_tokens and tc.max_tokens * n
        grouped = LengthGroupedBatches(lengths_of(tokenized["train"]), n * tc.batch_size, tc.seed, budget)
        sampler = ShardedBatches(grouped, n)
        train_batches = loader(tokenized["train"], sampler, tokenizer)
        val_batches = eval_loader(tokenized["validation"], tokenizer, eval_batch, accelerator)

    # ---- optimisation --------------------------------------------------------------------------
    # fused AdamW: one kernel for all parameters (CPU and CUDA); XLA and others take the default
    fused = accelerator.device.type in ("cpu", "cuda") or None
    optimizer = torch.optim.AdamW(strategy.param_groups(train_model), lr=cfg.strategy.lr, fused=fused)
    if tc.compile:
        train_model = torch.compile(train_model)
    if getattr(accelerator.state, "deepspeed_plugin", None) is not None:  # a batch sampler hides the size
        accelerator.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = tc.batch_size
    train_model, optimizer, train_batches = accelerator.prepare(train_model, optimizer, train_batches)
    steps_per_epoch = math.ceil(len(train_batches) / tc.grad_accum)  # after prepare: per process
    total_steps = tc.max_steps if tc.max_steps > 0 else tc.epochs * steps_per_epoch
    epochs = math.ceil(total_steps / steps_per_epoch)
    scheduler = linear_schedule(optimizer, int(cfg.strategy.warmup_ratio * total_steps), total_steps)
    accelerator.register_for_checkpointing(scheduler)  # saved with model, optimizer and RNG in state/
    global_batch = tc.batch_size * accelerator.num_processes * tc.grad_accum
    console.print(
        f"{total_steps} optimizer steps · {epochs} epoch(s) · global batch {global_batch} "
        f"({tc.batch_size} per device × {accelerator.num_processes} processes × {tc.grad_accum} accumulated)"  # noqa: E501
        f"{' (token budget ' + str(tc.max_tokens) + ')' if tc.max_tokens else ''} · device {accelerator.device}"
    )

    # ---- the loop ------------------------------------------------------------------------------
    # resume: weights, optimizer, scheduler and RNG come back; the data position is (epoch, batches done)
    resumed = load_state(accelerator, out_dir) if cfg.resume else {}
    start_epoch, skip = resumed.get("epoch", 0), resumed.get("batch_in_epoch", 0)
    if skip >= len(train_batches):  # saved at the end of an epoch
        start_epoch, skip = start_epoch + 1, 0
    if main and resumed:
        trim_log(out_dir / "metrics.jsonl", resumed["step"])  # lines after the state are replayed
    log_file = (out_dir / "metrics.jsonl").open("a" if resumed else "w") if main else None
    if tc.log_with != "none":  # event files / runs under the run dir (project_dir)
        accelerator.init_trackers("ftcli", config=tracker_config(cfg))

    def log(record: dict[str, Any]) -> None:
        if log_file:
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()
        if tc.log_with != "none":  # trackers get the same numbers, as train/… or validation/…
            prefix = "validation" if record.get("split") == "validation" else "train"
            values = {f"{prefix}/{k}": v for k, v in record.items() if k not in ("step", "split")}
            accelerator.log({k: v for k, v in values.items() if isinstance(v, (int, float))}, step=record["step"])

    def save(name: str, metrics: dict[str, Any]) -> None:
        if main and tc.save_checkpoints:
            live = accelerator.unwrap_model(model)  # LoRA: saved merged (strategy.model_to_save)
            save_checkpoint(strategy.model_to_save(live), tokenizer, out_dir / "checkpoints" / name, cfg, metrics)
            strategy.after_save(live, out_dir / "checkpoints" / name)

    # A head-only run trains in seconds, and every full-model write costs a backbone's worth of disk:
    # its best head waits in memory and is written once, before a state save, an error or the end.
    pending: dict[str, Any] = {}

    def save_best(metrics: dict[str, Any]) -> None:
        if not head_only:
            return save("best", metrics)
        pending.update(metrics=metrics, head={k: v.detach().clone() for k, v in model.head.state_dict().items()})

    def flush_best() -> None:
        if pending:
            now = {k: v.detach().clone() for k, v in model.head.state_dict().items()}
            model.head.load_state_dict(pending["head"])
            save("best", pending.pop("metrics"))
            model.head.load_state_dict(now)
            pending.clear()

    def note_trainable(at_step: int, at_epoch: int) -> None:
        """Print and log the trainable count when a strategy's schedule changes it."""
        now, _ = count_parameters(model)
        log({"step": at_step, "epoch": at_epoch, "trainable_params": now, "trainable_pct": 100 * now / total})
        progress.note(f"step {at_step} · trainable {now:,} / {total:,} ({100 * now / total:.2f}%)")

    step, stale = int(resumed.get("step", 0)), int(resumed.get("stale", 0))
    best: float | None = resumed.get("best")
    best_metrics: dict[str, Any] = resumed.get("best_metrics", {})
    last_metrics: dict[str, Any] = resumed.get("last_metrics", {})
    seen, tokens, running, micro, t0 = 0, 0, 0.0, 0, time.perf_counter()
    eval_every = tc.eval_every_steps or steps_per_epoch
    progress = Progress(total_steps)
    if strategy.on_step(model, step, steps_per_epoch):  # the schedule where this run starts (or resumes)
        note_trainable(step, start_epoch)
    stop, signum, signals = step >= total_steps, 0, StopSignals().install()
    try:  # a failed run (NaN loss, a sweep trial that raises) must not leave our signal handlers behind
        for epoch in range(start_epoch, epochs):
            if stop:
                break
            sampler.set_epoch(epoch)
            train_batches.set_epoch(epoch)  # Accelerate re-sets the sampler's epoch from its own count
            train_model.train()
            batches = accelerator.skip_first_batches(train_batches, skip) if skip else train_batches
            for i, batch in enumerate(batches, start=skip):
                batch.pop("idx", None)  # feature rows carry their index for evaluation only
                with accelerator.accumulate(train_model):
                    loss = train_model(**batch).loss
                    penalty = strategy.penalty(accelerator.unwrap_model(train_model))
                    if penalty is not None:
                        loss = loss + penalty
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and cfg.strategy.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(train_model.parameters(), cfg.strategy.max_grad_norm)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                seen += len(batch["labels"]) * accelerator.num_processes
                if "attention_mask" in batch:  # real (unpadded) tokens, for tokens/s and model FLOPs
                    tokens += int(batch["attention_mask"].sum()) * accelerator.num_processes
                value = loss.item()
                running, micro = running + value, micro + 1
                if not math.isfinite(value):  # stop before the bad weights reach a checkpoint
                    flush_best()
                    kept = best_metrics if tc.save_checkpoints else None
                    raise FtcliError(_nonfinite(value, step + 1, out_dir, kept))
                if not accelerator.sync_gradients:
                    continue
                scheduler.step()
                step += 1
                if strategy.on_step(model, step, steps_per_epoch):  # gradual unfreezing, LP → FT
                    note_trainable(step, epoch)
                if step % tc.log_every_steps == 0 or step == total_steps:
                    elapsed = time.perf_counter() - t0
                    record = {
                        "step": step,
                        "epoch": epoch,
                        "loss": running / micro,
                        "lr": scheduler.get_last_lr()[0],
                        "samples_per_s": seen / elapsed,
                        "tokens_per_s": tokens / elapsed,
                    }
                    running, micro = 0.0, 0
                    log(record)
                    progress.update(step, record)
                else:
                    progress.update(step)
                if step % eval_every == 0 or step == total_steps:
                    metrics = evaluate(train_model, val_batches, accelerator, data.label_names)
                    flat = {"step": step, "epoch": epoch, "split": "validation", **scalar_metrics(metrics)}
                    log(flat)
                    progress.note(f"step {step} · validation {tc.metric} {metrics[tc.metric]:.4f}")
                    train_model.train()
                    if _better(tc.metric, metrics[tc.metric], best):
                        best, best_metrics, stale = metrics[tc.metric], flat, 0
                        save_best(flat)
                    else:
                        stale += 1
                        if tc.early_stopping_patience and stale >= tc.early_stopping_patience:
                            progress.note(f"early stopping: {stale} evaluations without a better {tc.metric}")
                            stop = True
                    last_metrics = flat
                signum = signals.requested(accelerator)  # SIGTERM/SIGINT: save a resumable state and stop
                if signum or (tc.save_every_steps and step % tc.save_every_steps == 0):
                    state = {
                        "epoch": epoch,
                        "batch_in_epoch": i + 1,
                        "best": best,
                        "best_metrics": best_metrics,
                        "last_metrics": last_metrics,
                        "stale": stale,
                    }
                    flush_best()  # a resumed run finds the best checkpoint its state speaks of
                    save_state(accelerator, out_dir, step, state, tc.keep_checkpoints)
                if signum:
                    progress.note(f"signal {signum}: state saved at step {step}; go on: ftcli train resume={out_dir}")
                    stop = True
                if step >= total_steps or stop:
                    stop = True
                    break
            skip = 0
    finally:
        signals.restore()
        progress.close()
    flush_best()
    if signum:
        if log_file:
            log_file.close()
        end(accelerator)
        return {"interrupted_by_signal": float(signum), "step": float(step)}
    best_dir, last_dir = out_dir / "checkpoints" / "best", out_dir / "checkpoints" / "last"
    if main and tc.save_checkpoints and best_metrics.get("step") == last_metrics.get("step") and best_dir.is_dir():
        link_checkpoint(best_dir, last_dir)  # the last evaluation was the best: same weights, no second write
    else:
        save("last", last_metrics)
    result = {**scalar_metrics(best_metrics), **summary, "train_seconds": time.perf_counter() - t0}
    result["trainable_params_final"] = count_parameters(model)[0]  # differs under gradual_unfreeze / lp_ft
    if main:
        (out_dir / "metrics.json").write_text(json.dumps(result, indent=2))
        console.print(
            f"best validation {tc.metric} {best:.4f} at step {best_metrics.get('step')} → {out_dir / 'checkpoints'}"
        )
    if log_file:
        log_file.close()
    end(accelerator)
    return result
