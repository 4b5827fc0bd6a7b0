"""Text inputs for any objective: columns of text (or text pairs), a tokenizer, length-grouped batches
with dynamic padding, and a backbone with the architecture's own head or ftcli's pooled head."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import DatasetConfig, ModelConfig
from ftcli.tasks.base import Loaded, OnnxSpec, Task, TaskData


class TextTask(Task):
    """Inputs: the dataset's ``text_column`` (and ``text_pair_column``), tokenised by the model's tokenizer."""

    pipeline_tag = "text-classification"  # transformers' pipeline for sequence classifiers and regressors
    inputs = "text"

    def input_columns(self, dataset: DatasetConfig) -> list[tuple[str, str | None]]:
        return [("text_column", dataset.text_column), ("text_pair_column", dataset.text_pair_column)]

    def load_processor(self, model: ModelConfig, cache_dir: Path, data: TaskData) -> Any:
        from ftcli.models.text import load_tokenizer

        return load_tokenizer(model, cache_dir, data.splits["train"][data.columns[0]])

    def encode(self, ds: Any, columns: list[str], processor: Any, model: ModelConfig) -> Any:
        from ftcli.data.text import tokenize

        return tokenize(ds, processor, columns, model.max_length)

    def train_batches(self, ds: Any, batch_size: int, seed: int, max_tokens: int | None) -> Any:
        from ftcli.data.batching import LengthGroupedBatches
        from ftcli.data.text import lengths_of

        return LengthGroupedBatches(lengths_of(ds), batch_size, seed, max_tokens)

    def loader(self, ds: Any, batch_sampler: Any, processor: Any) -> Any:
        from ftcli.data.text import loader

        return loader(ds, batch_sampler, processor)

    def eval_loader(self, ds: Any, processor: Any, batch_size: int) -> Any:
        from ftcli.data.text import eval_loader

        return eval_loader(ds, processor, batch_size)

    def count(self, batch: dict[str, Any]) -> tuple[int, int]:
        mask = batch.get("attention_mask")  # absent from cached-feature batches
        return len(batch["labels"]), int(mask.sum()) if mask is not None else 0

    def build_model(self, model: ModelConfig, pooling: str, data: TaskData, processor: Any, seed: int) -> Any:
        from ftcli.models.text import build_model

        return build_model(model, pooling, data.label_names, processor, seed, self.problem_type)

    def missing_processor(self, folder: Path) -> str | None:
        from ftcli.models.loading import has_tokenizer_files

        return None if has_tokenizer_files(folder) else "no tokenizer files (tokenizer.json, vocab.txt, ...)"

    def load_pretrained(self, folder: Path, trust_remote_code: bool, allow_pickle: bool) -> tuple[Any, Any]:
        import transformers
        from transformers import AutoTokenizer

        from ftcli.models.text import register_pooled_classifier

        register_pooled_classifier()  # ftcli's own head loads without trust_remote_code
        auto = getattr(transformers, self.auto_model)
        safetensors_only = None if allow_pickle else True
        model = auto.from_pretrained(folder, trust_remote_code=trust_remote_code, use_safetensors=safetensors_only)
        return model, AutoTokenizer.from_pretrained(folder)

    # ---- predict: raw rows ---------------------------------------------------------------------
    def single_input(self, cfg: Any) -> tuple[dict[str, Any], list[str]]:
        if cfg.get("text") is None:
            raise FtcliError('this checkpoint reads text: give text="..." (or input=<file>)')
        pair = [] if cfg.text_pair is None else ["text_pair"]
        return {"text": cfg.text, "text_pair": cfg.text_pair}, ["text", *pair]

    def input_columns_of(self, cfg: Any, dataset: Any, rows: list[dict[str, Any]], where: str) -> list[str]:
        text = cfg.text_column or (dataset.text_column if dataset is not None else "text")
        pair = cfg.text_pair_column or (dataset.text_pair_column if dataset is not None else None)
        for key, col in (("text_column", text), ("text_pair_column", pair)):
            if col is not None and col not in rows[0]:
                raise FtcliError(f"{key}={col}: no such column in {where}; it has {', '.join(rows[0])}")
        return [text, *([pair] if pair else [])]

    def predict_outputs(self, loaded: Loaded, rows: list[dict[str, Any]], columns: list[str], batch_size: int) -> Any:
        """Length-sorted batches (little padding) under the accelerator's autocast; outputs in row order."""
        from ftcli.data.text import text_batches
        from ftcli.runtime.inference import infer, model_inputs

        model, processor, accelerator = loaded.model, loaded.processor, loaded.accelerator
        texts = [[str(r.get(c) or "") for r in rows] for c in columns]
        batches = text_batches(
            processor, texts[0], texts[1] if len(texts) > 1 else None, loaded.model_cfg.max_length, batch_size
        )
        device = accelerator.device
        model.eval()

        def forward(batch: dict[str, Any]) -> dict[str, Any]:
            with accelerator.autocast():
                return {"outputs": model(**{k: v.to(device) for k, v in model_inputs(batch).items()}).logits.float()}

        return infer(forward, batches)["outputs"]

    def onnx_spec(self, model: Any, processor: Any) -> OnnxSpec:
        """input_ids, attention_mask (token_type_ids where the tokenizer gives them), dynamic batch and length."""
        import torch

        texts = ["a short one", "and a somewhat longer second sentence here"]
        sample = processor(texts, padding=True, return_tensors="pt")
        names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in sample]
        if names[:2] != ["input_ids", "attention_mask"]:
            raise FtcliError(f"format=onnx: the tokenizer gives {names}; input_ids and attention_mask are needed")
        batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
        dynamic = {k: {0: batch, 1: seq} for k in names}
        return OnnxSpec(logits_only(model), names, tuple(sample[k] for k in names), dynamic)

    # ---- a frozen backbone: pooled features, computed once ------------------------------------
    def caches_features(self, model: Any) -> bool:
        return getattr(model.config, "model_type", "") == "ftcli_pooled"  # a native head has its own pooler

    def feature_identity(self, model: Any, processor: Any, ds: Any, seed: int) -> dict[str, Any]:
        """Backbone, tokenizer and token ids (not the pooling: one pass stores every pooling, so a sweep
        over poolings runs the backbone once)."""
        from ftcli.data.text import content_fingerprint, tokenizer_fingerprint

        source = getattr(model.backbone.config, "_name_or_path", "")
        return {
            "backbone": model.config.backbone,
            "source": source,
            "commit": getattr(model.backbone.config, "_commit_hash", None),
            "tokenizer": tokenizer_fingerprint(processor),
            "data": content_fingerprint(ds),
            "seed": None if source else seed,  # a randomly initialised backbone is reproducible through its seed
        }

    def frozen_features(self, model: Any, ds: Any, processor: Any, batch_size: int, accelerator: Any) -> dict[str, Any]:
        """Every pooling of the backbone's token states over length-sorted batches (the ones ``ftcli eval``
        forms, so a checkpoint's evaluation reproduces the numbers computed from these features), under the
        run's autocast (bf16 where the device computes it natively: twice the sentences per second)."""
        import time

        from ftcli.config.schemas import POOLED
        from ftcli.models.shipped.modeling_ftcli import pool
        from ftcli.reporting.progress import Progress
        from ftcli.runtime.inference import infer, model_inputs

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
        import torch

        return {p: torch.from_numpy(out[p]) for p in names}

    def feature_name(self, model: Any) -> str:
        return str(model.config.pooling)

    def head(self, model: Any) -> Any:
        return model.head


def logits_only(model: Any) -> Any:
    """The model with named tensor inputs and one output, the logits (what ONNX consumers want)."""
    from torch import nn

    class LogitsOnly(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
            extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
            return self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).logits

    return LogitsOnly().eval()
