"""Text inputs for any objective: columns of text (or text pairs), a tokenizer, length-grouped batches with dynamic
padding, and a backbone with the architecture's own head or ftcli's pooled head.

Besides the core inputs interface it can cache a frozen backbone's pooled features, predict on raw text and say
what ONNX sees. The module functions below serve the word (token-classification) inputs too.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoTokenizer

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import POOLED, DatasetConfig, ModelConfig
from ftcli.data.batching import column_of, loader, training_batches
from ftcli.data.tables import Raw, drop_empty, load_raw
from ftcli.data.text import (
    collator,
    content_fingerprint,
    eval_loader,
    lengths_of,
    text_batches,
    tokenize,
    tokenizer_fingerprint,
)
from ftcli.models.architectures import standard_roles
from ftcli.models.loading import from_checkpoint, has_tokenizer_files, model_identity
from ftcli.models.shipped.modeling_ftcli import pool
from ftcli.models.text import build_model, load_tokenizer, register_pooled_classifier
from ftcli.reporting.progress import Progress
from ftcli.runtime.inference import autocast_logits, infer, logits_of, model_inputs
from ftcli.tasks.task import BatchPlan, Built, Card, Head, Loaded, OnnxSpec, TaskData

CARD = Card("text-classification", "AutoModelForSequenceClassification")


class TextInputs:
    """The dataset's ``text_column`` (and ``text_pair_column``), tokenised by the model's tokenizer."""

    kind = "text"
    card = CARD

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir  # the tiny model's vocabulary is trained once and kept there

    def columns(self, dataset: DatasetConfig) -> list[tuple[str, str | None]]:
        return [("dataset.text_column", dataset.text_column), ("dataset.text_pair_column", dataset.text_pair_column)]

    def raw(self, dataset: DatasetConfig) -> Raw:
        return drop_empty(load_raw(dataset), self.columns(dataset), dataset.empty_text == "skip")

    def processor(self, model: ModelConfig, data: TaskData) -> Any:
        return load_tokenizer(model, self.cache_dir, data.splits["train"][data.columns[0]])

    def encode(self, ds: Any, data: TaskData, processor: Any, model: ModelConfig) -> Any:
        return tokenize(ds, processor, data.columns, model.max_length)

    def train_loader(self, ds: Any, data: TaskData, processor: Any, plan: BatchPlan) -> tuple[Any, Any]:
        return length_grouped(ds, plan, collator(processor))

    def eval_loader(self, ds: Any, processor: Any, batch_size: int) -> Any:
        return eval_loader(ds, processor, batch_size)

    def count(self, batch: dict[str, Any]) -> tuple[int, int]:
        return token_count(batch)

    def build_model(self, model: ModelConfig, pooling: str, data: TaskData, processor: Any, head: Head) -> Built:
        built = build_model(
            model, pooling, head.names, processor, head.seed, head.problem_type, cache_dir=self.cache_dir
        )
        return Built(built, standard_roles(built), pooling)

    def outputs(
        self, model: Any, batches: Any, processor: Any, accelerator: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        return logits_and_labels(model, batches, accelerator)

    def load_pretrained(self, folder: Path, trust_remote_code: bool, allow_pickle: bool) -> tuple[Any, Any]:
        return text_checkpoint("AutoModelForSequenceClassification", folder, trust_remote_code, allow_pickle)

    def missing(self, folder: Path) -> str | None:
        return missing_tokenizer(folder)

    # ---- predict: raw rows ---------------------------------------------------------------------
    def single_input(self, cfg: Any) -> tuple[dict[str, Any], list[str]]:
        if cfg.get("text") is None:
            raise FtcliError('this checkpoint reads text: give text="..." (or input=<file>)')
        pair = [] if cfg.text_pair is None else ["text_pair"]
        return {"text": cfg.text, "text_pair": cfg.text_pair}, ["text", *pair]

    def input_rows(self, src: Path) -> list[dict[str, Any]] | None:
        return None  # a table: predict reads it

    def input_columns(self, cfg: Any, dataset: Any, rows: list[dict[str, Any]], where: str) -> list[str]:
        text = cfg.text_column or (dataset.text_column if dataset is not None else "text")
        pair = cfg.text_pair_column or (dataset.text_pair_column if dataset is not None else None)
        for key, col in (("text_column", text), ("text_pair_column", pair)):
            if col is not None and col not in rows[0]:
                raise FtcliError(f"{key}={col}: no such column in {where}; it has {', '.join(rows[0])}")
        return [text, *([pair] if pair else [])]

    def predict(
        self, loaded: Loaded, rows: list[dict[str, Any]], columns: list[str], batch_size: int, base: Path
    ) -> Any:
        """Length-sorted batches (little padding) under the accelerator's autocast; outputs in row order."""
        texts = [[str(r.get(c) or "") for r in rows] for c in columns]
        pairs = texts[1] if len(texts) > 1 else None
        batches = text_batches(loaded.processor, texts[0], pairs, loaded.model_cfg.max_length, batch_size)
        loaded.model.eval()
        return infer(autocast_logits(loaded.model, loaded.accelerator), batches)["outputs"]

    def onnx_spec(self, model: Any, processor: Any) -> OnnxSpec:
        return text_onnx_spec(processor)

    # ---- a frozen backbone: pooled features, computed once ------------------------------------
    def applies(self, model: Any) -> bool:
        return getattr(model.config, "model_type", "") == "ftcli_pooled"  # a native head has its own pooler

    def identities(self, model: Any, processor: Any, splits: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """What the features are computed from: the backbone's weights as loaded (a folder retrained in place gets
        new features), its config, the tokenizer and each split's token ids (not the pooling: one pass stores every
        pooling, so a sweep over poolings runs the backbone once)."""
        backbone = {**model_identity(model.backbone), "tokenizer": tokenizer_fingerprint(processor)}
        return {split: {**backbone, "data": content_fingerprint(ds)} for split, ds in splits.items()}

    def compute(self, model: Any, ds: Any, processor: Any, batch_size: int, accelerator: Any) -> dict[str, Any]:
        """Every pooling of the backbone's token states over length-sorted batches (the ones ``ftcli eval`` forms,
        so a checkpoint's evaluation reproduces the numbers computed from these features), under the run's
        autocast."""
        has_pooler = getattr(model.backbone, "pooler", None) is not None
        names = [p for p in POOLED if p != "pooler" or has_pooler]
        batches = self.eval_loader(ds, processor, batch_size)
        progress, done, t0 = Progress(len(batches), label="features"), [0, 0], time.perf_counter()

        def pooled(batch: dict[str, Any]) -> dict[str, Any]:
            inputs = {k: v.to(accelerator.device) for k, v in model_inputs(batch).items()}
            with accelerator.autocast():
                states = model.backbone(**inputs)
            hidden, pooler = states.last_hidden_state, getattr(states, "pooler_output", None)
            return {p: pool(hidden, inputs["attention_mask"], p, pooler).float() for p in names}

        def tick(rows: int) -> None:
            done[0], done[1] = done[0] + 1, done[1] + rows
            last = done[0] == len(batches)
            rate = f"{done[1] / (time.perf_counter() - t0):.0f} sentences/s" if done[0] % 50 == 0 or last else None
            progress.update(done[0], info=rate)

        model.eval()
        try:
            out = infer(pooled, batches, on_batch=tick)
        finally:
            progress.close()
        return {p: torch.from_numpy(out[p]) for p in names}

    def name(self, model: Any) -> str:
        return str(model.config.pooling)

    def head(self, model: Any) -> Any:
        return model.head

    def labels_of(self, ds: Any) -> np.ndarray:
        return np.asarray(column_of(ds, "labels"))


# ---- what the word inputs share ---------------------------------------------------------------------------


def length_grouped(ds: Any, plan: BatchPlan, collate: Any) -> tuple[Any, Any]:
    """Training batches of similar length, padded per batch by ``collate``: (loader, sampler)."""
    sampler = training_batches(lengths_of(ds), plan.batch_size, plan.processes, plan.seed, plan.max_tokens)
    return loader(ds, sampler, collate), sampler


def token_count(batch: dict[str, Any]) -> tuple[int, int]:
    """(examples, real tokens) of a batch; no tokens in a batch of cached features."""
    mask = batch.get("attention_mask")
    return len(batch["labels"]), int(mask.sum()) if mask is not None else 0


def logits_and_labels(model: Any, batches: Any, accelerator: Any) -> tuple[np.ndarray, np.ndarray]:
    """(fp32 logits, labels) over ``batches`` in dataset order."""
    model.eval()
    out = infer(lambda b: {"outputs": logits_of(model, b).float()}, batches, accelerator)
    return out["outputs"], out["labels"]


def text_checkpoint(auto_class: str, folder: Path, trust_remote_code: bool, allow_pickle: bool) -> tuple[Any, Any]:
    """(model, tokenizer) of a text checkpoint; ftcli's pooled head loads without ``trust_remote_code``."""
    register_pooled_classifier()
    model = from_checkpoint(auto_class, folder, trust_remote_code, allow_pickle)
    return model, AutoTokenizer.from_pretrained(folder)


def missing_tokenizer(folder: Path) -> str | None:
    return None if has_tokenizer_files(folder) else "no tokenizer files (tokenizer.json, vocab.txt, ...)"


def text_onnx_spec(processor: Any) -> OnnxSpec:
    """input_ids, attention_mask (token_type_ids where the tokenizer gives them), dynamic batch and length."""
    texts = ["a short one", "and a somewhat longer second sentence here"]
    sample = processor(texts, padding=True, return_tensors="pt")
    names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in sample]
    if names[:2] != ["input_ids", "attention_mask"]:
        raise FtcliError(f"format=onnx: the tokenizer gives {names}; input_ids and attention_mask are needed")
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    return OnnxSpec(names, tuple(sample[k] for k in names), {k: {0: batch, 1: seq} for k in names})
