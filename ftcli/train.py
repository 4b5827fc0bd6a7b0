"""``train(cfg) -> dict[str, float]``: the whole fine-tuning run, top to bottom."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from ftcli.config import FtcliError, HardwareConfig, validate
from ftcli.evaluate import LOWER_IS_BETTER, evaluate, scalar_metrics
from ftcli.progress import Progress, console


def make_accelerator(hw: HardwareConfig, grad_accum: int) -> Any:
    """An Accelerator for the chosen hardware; a clear error when that hardware is absent."""
    from accelerate import Accelerator

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
    return Accelerator(cpu=cpu, mixed_precision=hw.mixed_precision, gradient_accumulation_steps=grad_accum)


def eval_loader(ds: Any, tokenizer: Any, batch_size: int, accelerator: Any) -> Any:
    """Length-sorted inference batches that carry each example's index (to restore the order)."""
    from ftcli.data import lengths_of, loader, sorted_batches

    lengths = lengths_of(ds)
    ds = ds.add_column("idx", list(range(len(ds))))
    return accelerator.prepare(loader(ds, sorted_batches(lengths, batch_size), tokenizer))


def _better(metric: str, new: float, best: float | None) -> bool:
    if best is None:
        return True
    return new < best if metric in LOWER_IS_BETTER else new > best


def train(cfg: DictConfig) -> dict[str, float]:
    """Fine-tune ``cfg.model`` on ``cfg.dataset`` with ``cfg.strategy``; return the best validation metrics."""
    from accelerate.utils import set_seed
    from torch.utils.data import DataLoader
    from transformers import get_linear_schedule_with_warmup

    from ftcli.checkpoint import save_checkpoint
    from ftcli.data import LengthGroupedBatches, lengths_of, load_splits, loader, tokenize, tokenizer_fingerprint
    from ftcli.features import FeatureDataset, HeadModel, cached_features, feature_key
    from ftcli.models import build_model, load_tokenizer
    from ftcli.strategies import build_strategy, count_parameters

    validate(cfg)
    tc = cfg.trainer
    out_dir, cache_dir = Path(cfg.output_dir), Path(cfg.cache_dir).expanduser()
    accelerator = make_accelerator(cfg.hardware, tc.grad_accum)
    main = accelerator.is_main_process
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    set_seed(tc.seed)

    # ---- data and model ------------------------------------------------------------------------
    with accelerator.main_process_first():  # datasets' cache is built once, then read by the others
        data = load_splits(cfg.dataset, tc.seed)
        tokenizer = load_tokenizer(cfg.model, cache_dir, data.splits["train"][data.text_columns[0]])
        tokenized = {s: tokenize(ds, tokenizer, data.text_columns, cfg.model.max_length) for s, ds in data.splits.items()}
    pooling = cfg.strategy.pooling or cfg.model.pooling
    model = build_model(cfg.model, pooling, data.label_names, tokenizer, tc.seed)
    strategy = build_strategy(cfg.strategy)
    strategy.setup(model)
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
    head_only = strategy.frozen_backbone and pooling != "native" and cfg.strategy.cache_features
    if head_only:
        model.to(accelerator.device)
        feats = {}
        for split, ds in tokenized.items():
            key = feature_key(model, tokenizer_fingerprint(tokenizer), cfg.model.max_length, ds._fingerprint, tc.seed)
            with accelerator.main_process_first():
                feats[split], hit = cached_features(
                    model, ds, lengths_of(ds), tokenizer, tc.eval_batch_size, accelerator.device,
                    cache_dir / "features" / f"{key}.safetensors",
                )  # fmt: skip
            console.print(f"features {split}: {tuple(feats[split].shape)} ({'cache hit' if hit else 'computed'})")
        train_model: Any = HeadModel(model.head)
        labels = {s: torch.tensor(ds["labels"]) for s, ds in tokenized.items()}
        gen = torch.Generator().manual_seed(tc.seed)
        train_batches: Any = DataLoader(
            FeatureDataset(feats["train"], labels["train"]), batch_size=tc.batch_size, shuffle=True, generator=gen
        )
        val_batches = DataLoader(FeatureDataset(feats["validation"], labels["validation"]), batch_size=tc.eval_batch_size)
        val_batches = accelerator.prepare(val_batches)
        sampler = None
    else:
        train_model = model
        sampler = LengthGroupedBatches(lengths_of(tokenized["train"]), tc.batch_size, tc.seed, tc.max_tokens)
        train_batches = loader(tokenized["train"], sampler, tokenizer)
        val_batches = eval_loader(tokenized["validation"], tokenizer, tc.eval_batch_size, accelerator)

    # ---- optimisation --------------------------------------------------------------------------
    fused = accelerator.device.type == "cuda"  # fused AdamW kernels on GPU; foreach on CPU
    optimizer = torch.optim.AdamW(strategy.param_groups(train_model), lr=cfg.strategy.lr, fused=fused or None)
    if tc.compile:
        train_model = torch.compile(train_model)
    train_model, optimizer, train_batches = accelerator.prepare(train_model, optimizer, train_batches)
    steps_per_epoch = math.ceil(len(train_batches) / tc.grad_accum)  # after prepare: per process
    total_steps = tc.max_steps if tc.max_steps > 0 else tc.epochs * steps_per_epoch
    epochs = math.ceil(total_steps / steps_per_epoch)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.strategy.warmup_ratio * total_steps), total_steps)
    global_batch = tc.batch_size * accelerator.num_processes * tc.grad_accum
    console.print(
        f"{total_steps} optimizer steps · {epochs} epoch(s) · global batch {global_batch}"
        f"{' (token budget ' + str(tc.max_tokens) + ')' if tc.max_tokens else ''} · device {accelerator.device}"
    )

    # ---- the loop ------------------------------------------------------------------------------
    log_file = (out_dir / "metrics.jsonl").open("w") if main else None

    def log(record: dict[str, Any]) -> None:
        if log_file:
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()

    def save(name: str, metrics: dict[str, Any]) -> None:
        if main and tc.save_checkpoints:
            live = accelerator.unwrap_model(model)  # LoRA: saved merged (strategy.model_to_save)
            save_checkpoint(strategy.model_to_save(live), tokenizer, out_dir / "checkpoints" / name, cfg, metrics)
            strategy.after_save(live, out_dir / "checkpoints" / name)

    def note_trainable(at_step: int, at_epoch: int) -> None:
        """Print and log the trainable count when a strategy's schedule changes it."""
        now, _ = count_parameters(model)
        log({"step": at_step, "epoch": at_epoch, "trainable_params": now, "trainable_pct": 100 * now / total})
        progress.note(f"step {at_step} · trainable {now:,} / {total:,} ({100 * now / total:.2f}%)")

    step, best, best_metrics, last_metrics, stale = 0, None, {}, {}, 0
    seen, running, micro, t0 = 0, 0.0, 0, time.perf_counter()
    eval_every = tc.eval_every_steps or steps_per_epoch
    progress = Progress(total_steps)
    stop = False
    for epoch in range(epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        if strategy.on_epoch_start(model, epoch):
            note_trainable(step, epoch)
        train_model.train()
        for batch in train_batches:
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
            running, micro = running + loss.item(), micro + 1
            if not accelerator.sync_gradients:
                continue
            scheduler.step()
            step += 1
            if strategy.on_step(model, step, steps_per_epoch):  # gradual unfreezing, LP → FT
                note_trainable(step, epoch)
            if not math.isfinite(loss.item()):
                raise FtcliError(f"loss is {loss.item()} at step {step}: lower strategy.lr or check the data")
            if step % tc.log_every_steps == 0 or step == total_steps:
                rate = seen / (time.perf_counter() - t0)
                record = {"step": step, "epoch": epoch, "loss": running / micro,
                          "lr": scheduler.get_last_lr()[0], "samples_per_s": rate}  # fmt: skip
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
                    save("best", flat)
                else:
                    stale += 1
                    if tc.early_stopping_patience and stale >= tc.early_stopping_patience:
                        progress.note(f"early stopping: {stale} evaluations without a better {tc.metric}")
                        stop = True
                last_metrics = flat
            if step >= total_steps or stop:
                stop = True
                break
        if stop:
            break
    progress.close()
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
    accelerator.end_training()
    return result
