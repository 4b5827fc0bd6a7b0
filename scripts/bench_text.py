#!/usr/bin/env python
"""The text peers of scripts/bench.py, one job per process: ``python scripts/bench_text.py JOB 'JSON spec'``.

Each job reads the TSV files scripts/bench_data.py wrote (``csv``, no ftcli, no Hydra), does its whole work and
prints one JSON line: accuracy on the validation file (the final epoch's weights), the samples/s of its own
training or evaluation loop (context only: targets are judged on the parent's whole-process clock), the
precision it ran at, and whether ftcli or Hydra got imported (the parent refuses a peer that did).

Jobs (what an expert would write, at its best settings on a CPU; the recipe is the spec's, the same as ftcli's):

- ``trainer``: HF ``Trainer``. ``best``: MiniLM with a mean-pooling head (how it was trained; the same head as
  ftcli's: dropout 0.1 + linear, N(0, 0.02)), ``DataCollatorWithPadding``, ``group_by_length``, fused AdamW,
  weight decay off biases and LayerNorms, linear schedule with warm-up, bf16 autocast only where the CPU has
  native bf16. ``stock``: run_glue's recipe (pad to 128, BERT's pooler head, fp32, Trainer defaults): context.
- ``loop``: the same model, head and recipe in a plain PyTorch loop, no Trainer import: one tokenisation,
  length-grouped batches padded per batch, fused AdamW, ``inference_mode`` evaluation sorted by length;
  ``compile``: the model under ``torch.compile(dynamic=True)`` (compile time inside the process's time).
- ``st_logreg``: sentence-transformers ``encode`` of the training and validation sentences once, then
  scikit-learn ``LogisticRegression`` on the embeddings: the standard frozen-feature recipe.
- ``eval_trainer`` / ``eval_loop`` / ``eval_pipeline``: a saved checkpoint evaluated by ``Trainer.evaluate``
  (dynamic padding), a length-sorted plain loop, and ``pipeline("text-classification", batch_size=…)``.
- ``sft_trainer``: TRL's ``SFTTrainer`` with a LoRA ``peft_config`` on the SFT rows (JSONL prompt/response), at
  ftcli's recipe: the final validation loss, training tokens/s and the loss curve.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from typing import Any

csv.field_size_limit(sys.maxsize)


def read_tsv(path: str) -> tuple[list[str], list[int]]:
    """(sentences, labels) of a ``sentence``/``label`` TSV (GLUE's: bare quotes inside sentences)."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [r["sentence"] for r in rows], [int(r["label"]) for r in rows]


def autocast(precision: str) -> Any:
    import contextlib

    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()


def mean_pool_classifier(path: str, num_labels: int, dropout: float = 0.1) -> Any:
    """MiniLM + mean pooling + dropout + linear head (N(0, 0.02), zero bias): ftcli's head, in plain torch."""
    from torch import nn
    from transformers import AutoModel

    class MeanPoolClassifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = AutoModel.from_pretrained(path)
            self.dropout = nn.Dropout(dropout)
            self.out = nn.Linear(self.backbone.config.hidden_size, num_labels)
            nn.init.normal_(self.out.weight, 0.0, 0.02)
            nn.init.zeros_(self.out.bias)

        def forward(self, input_ids: Any, attention_mask: Any, labels: Any = None, **kw: Any) -> dict[str, Any]:
            hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask, **kw).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(hidden.dtype)
            logits = self.out(self.dropout((hidden * m).sum(1) / m.sum(1).clamp(min=1.0)))
            out = {"logits": logits}
            if labels is not None:
                out["loss"] = nn.functional.cross_entropy(logits.float(), labels)
            return out

    return MeanPoolClassifier()


def decay_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on weight matrices only: biases and LayerNorm weights (1-d) are left alone."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [
        {"params": [p for _, p in params if p.ndim > 1], "weight_decay": weight_decay},
        {"params": [p for _, p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]


def linear_warmup(warmup: int, total: int) -> Any:
    """HF's linear schedule: 0 → peak over ``warmup`` steps, then linearly to 0 at ``total``."""

    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def grouped_batches(lengths: list[int], batch_size: int, seed: int, epoch: int, chunk: int = 64) -> list[list[int]]:
    """Shuffle, sort by length within chunks of ``chunk`` batches, cut, shuffle the batches."""
    import numpy as np

    rng = np.random.default_rng([seed, epoch])
    perm = rng.permutation(len(lengths))
    lens = np.asarray(lengths)
    out: list[list[int]] = []
    for start in range(0, len(perm), chunk * batch_size):
        part = perm[start : start + chunk * batch_size]
        part = part[np.argsort(lens[part], kind="stable")]
        out += [part[i : i + batch_size].tolist() for i in range(0, len(part), batch_size)]
    return [out[i] for i in rng.permutation(len(out))]


def pad(encoded: list[list[int]], rows: list[int], pad_id: int) -> dict[str, Any]:
    """input_ids and attention_mask of ``rows``, padded to the longest of them."""
    import torch

    width = max(len(encoded[r]) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(encoded[r])] = torch.tensor(encoded[r])
        mask[i, : len(encoded[r])] = 1
    return {"input_ids": ids, "attention_mask": mask}


def sorted_predictions(model: Any, encoded: list[list[int]], pad_id: int, batch: int, precision: str) -> list[int]:
    """Argmax predictions in the input order, computed in length-sorted batches under inference_mode."""
    import torch

    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    preds = [0] * len(encoded)
    model.eval()
    with torch.inference_mode(), autocast(precision):
        for start in range(0, len(order), batch):
            rows = order[start : start + batch]
            logits = model(**pad(encoded, rows, pad_id))["logits"]
            for r, p in zip(rows, logits.argmax(-1).tolist(), strict=True):
                preds[r] = p
    return preds


def accuracy(preds: Any, labels: list[int]) -> float:
    return sum(int(p) == y for p, y in zip(preds, labels, strict=True)) / len(labels)


# ---------------------------------------------------------------------------------------------------
# training peers


def loop_job(spec: dict[str, Any]) -> dict[str, Any]:
    """A plain PyTorch loop with ftcli's tricks (no Trainer import); ``spec["compile"]``: torch.compile."""
    import torch
    from transformers import AutoTokenizer

    torch.manual_seed(spec["seed"])
    sentences, labels = read_tsv(spec["train"])
    dev_sentences, dev_labels = read_tsv(spec["validation"])
    tok = AutoTokenizer.from_pretrained(spec["model"])
    enc = tok(sentences, truncation=True, max_length=128)["input_ids"]
    dev_enc = tok(dev_sentences, truncation=True, max_length=128)["input_ids"]
    model = mean_pool_classifier(spec["model"], 2)
    step_model = torch.compile(model, dynamic=True) if spec.get("compile") else model
    opt = torch.optim.AdamW(decay_groups(model, spec["weight_decay"]), lr=spec["lr"], fused=True)
    steps = spec["epochs"] * math.ceil(len(enc) / spec["batch_size"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, linear_warmup(int(spec["warmup_ratio"] * steps), steps))
    y = torch.tensor(labels)
    start, seen = time.perf_counter(), 0
    for epoch in range(spec["epochs"]):
        step_model.train()
        for rows in grouped_batches([len(e) for e in enc], spec["batch_size"], spec["seed"], epoch):
            with autocast(spec["precision"]):
                loss = step_model(**pad(enc, rows, tok.pad_token_id), labels=y[rows])["loss"]
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), spec["max_grad_norm"])
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            seen += len(rows)
    rate = seen / (time.perf_counter() - start)
    preds = sorted_predictions(step_model, dev_enc, tok.pad_token_id, spec["eval_batch_size"], spec["precision"])
    return {"accuracy": accuracy(preds, dev_labels), "samples_per_s": rate, "precision": spec["precision"]}


def trainer_job(spec: dict[str, Any]) -> dict[str, Any]:
    """HF Trainer at its best settings for this job (or run_glue's stock recipe, for context)."""
    import numpy as np
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer

    transformers.utils.logging.set_verbosity_error()
    stock = spec["variant"] == "stock"
    sentences, labels = read_tsv(spec["train"])
    dev_sentences, dev_labels = read_tsv(spec["validation"])
    tok = AutoTokenizer.from_pretrained(spec["model"])
    kw = {"padding": "max_length", "max_length": 128} if stock else {"max_length": 128}
    train = labelled(tok(sentences, truncation=True, **kw), labels)
    dev = labelled(tok(dev_sentences, truncation=True, **kw), dev_labels)
    transformers.set_seed(spec["seed"])  # before the new head is made
    if stock:
        model = AutoModelForSequenceClassification.from_pretrained(spec["model"], num_labels=2)
    else:
        model = mean_pool_classifier(spec["model"], 2)
    trainer = Trainer(
        model=model,
        args=training_args(spec, stock),
        train_dataset=train,
        eval_dataset=dev,
        compute_metrics=lambda p: {"accuracy": float((np.argmax(p.predictions, -1) == p.label_ids).mean())},
        data_collator=None if stock else DataCollatorWithPadding(tok),
    )
    out = trainer.train().metrics
    ev = trainer.evaluate()
    return {
        "accuracy": ev["eval_accuracy"],
        "samples_per_s": out["train_samples_per_second"],
        "precision": trainer.accelerator.mixed_precision,  # what Accelerate ran: "bf16" or "no"
    }


def labelled(batch: Any, labels: list[int]) -> list[dict[str, Any]]:
    """A tokenizer's column batch as one dict per example, with its label: a dataset the Trainer takes."""
    keys = list(batch.keys())
    rows = zip(*(batch[k] for k in keys), strict=True)
    return [{**dict(zip(keys, values, strict=True)), "labels": y} for values, y in zip(rows, labels, strict=True)]


def training_args(spec: dict[str, Any], stock: bool) -> Any:
    """TrainingArguments: the spec's recipe (best), or the Trainer's defaults but for lr/batch/epochs (stock)."""
    import tempfile

    from transformers import TrainingArguments

    recipe = {} if stock else {"weight_decay": spec["weight_decay"], "warmup_steps": spec["warmup_ratio"]}
    return TrainingArguments(
        output_dir=tempfile.mkdtemp(),
        per_device_train_batch_size=spec["batch_size"],
        per_device_eval_batch_size=spec["eval_batch_size"],
        learning_rate=spec["lr"],
        num_train_epochs=spec["epochs"],
        lr_scheduler_type="linear",
        optim="adamw_torch_fused",
        max_grad_norm=spec["max_grad_norm"],
        seed=spec["seed"],
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=spec["precision"] == "bf16" and not stock,
        disable_tqdm=True,
        remove_unused_columns=False,  # the mean-pool module's forward takes **kw: nothing to drop
        train_sampling_strategy="random" if stock else "group_by_length",
        **recipe,
    )


def st_logreg_job(spec: dict[str, Any]) -> dict[str, Any]:
    """sentence-transformers encode once (train + validation) + scikit-learn LogisticRegression."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sklearn.linear_model import LogisticRegression

    sentences, labels = read_tsv(spec["train"])
    dev_sentences, dev_labels = read_tsv(spec["validation"])
    model = SentenceTransformer(spec["model"], device="cpu")
    start = time.perf_counter()
    with torch.inference_mode(), autocast(spec["precision"]):
        x = model.encode(sentences, batch_size=spec["encode_batch_size"], convert_to_numpy=True)
        x_dev = model.encode(dev_sentences, batch_size=spec["encode_batch_size"], convert_to_numpy=True)
    rate = (len(sentences) + len(dev_sentences)) / (time.perf_counter() - start)
    clf = LogisticRegression(C=spec["C"], max_iter=2000, random_state=spec["seed"])
    clf.fit(x.astype("float32"), labels)
    return {
        "accuracy": accuracy(clf.predict(x_dev.astype("float32")), dev_labels),
        "samples_per_s": rate,
        "precision": spec["precision"],
    }


# ---------------------------------------------------------------------------------------------------
# evaluation peers: a saved checkpoint (ftcli's pooled classifier loads in plain transformers)


def _checkpoint(spec: dict[str, Any]) -> tuple[Any, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(spec["checkpoint"], trust_remote_code=True)
    return model, AutoTokenizer.from_pretrained(spec["checkpoint"])


def eval_loop_job(spec: dict[str, Any]) -> dict[str, Any]:
    """Load, tokenise, predict in length-sorted batches under inference_mode, accuracy."""
    sentences, labels = read_tsv(spec["validation"])
    model, tok = _checkpoint(spec)
    start = time.perf_counter()
    enc = tok(sentences, truncation=True, max_length=128)["input_ids"]
    preds = sorted_predictions(model, enc, tok.pad_token_id, spec["eval_batch_size"], spec["precision"])
    rate = len(sentences) / (time.perf_counter() - start)
    return {"accuracy": accuracy(preds, labels), "samples_per_s": rate, "precision": spec["precision"]}


EVAL_ONLY = {"lr": 0.0, "epochs": 1, "weight_decay": 0.0, "warmup_ratio": 0.0, "max_grad_norm": 1.0}  # no training


def eval_trainer_job(spec: dict[str, Any]) -> dict[str, Any]:
    """Trainer.evaluate with dynamic padding at the spec's precision."""
    import numpy as np
    import transformers
    from transformers import DataCollatorWithPadding, Trainer

    transformers.utils.logging.set_verbosity_error()
    sentences, labels = read_tsv(spec["validation"])
    model, tok = _checkpoint(spec)
    enc = tok(sentences, truncation=True, max_length=128)
    dev = labelled(enc, labels)
    trainer = Trainer(
        model=model,
        args=training_args({**spec, **EVAL_ONLY, "batch_size": spec["eval_batch_size"]}, stock=False),
        eval_dataset=dev,
        compute_metrics=lambda p: {"accuracy": float((np.argmax(p.predictions, -1) == p.label_ids).mean())},
        data_collator=DataCollatorWithPadding(tok),
    )
    ev = trainer.evaluate()
    return {
        "accuracy": ev["eval_accuracy"],
        "samples_per_s": ev["eval_samples_per_second"],
        "precision": trainer.accelerator.mixed_precision,
    }


def eval_pipeline_job(spec: dict[str, Any]) -> dict[str, Any]:
    """pipeline("text-classification") over the sentences, batched."""
    from transformers import pipeline

    sentences, labels = read_tsv(spec["validation"])
    model, tok = _checkpoint(spec)
    pipe = pipeline("text-classification", model=model, tokenizer=tok, device="cpu", batch_size=spec["eval_batch_size"])
    start = time.perf_counter()
    with autocast(spec["precision"]):
        out = pipe(sentences, truncation=True, max_length=128)
    rate = len(sentences) / (time.perf_counter() - start)
    label2id = {str(k): int(v) for k, v in model.config.label2id.items()}
    return {
        "accuracy": accuracy([label2id[o["label"]] for o in out], labels),
        "samples_per_s": rate,
        "precision": spec["precision"],
    }


def sft_trainer_job(spec: dict[str, Any]) -> dict[str, Any]:
    """TRL's SFTTrainer at ftcli's recipe: the same model folder, rows (prompt/completion, the loss on the completion
    only), LoRA rank/alpha/dropout/targets, maximum length, packing off, batch, lr, schedule, warm-up, weight decay,
    clipping, epochs and precision. At its own best on this CPU: gradient checkpointing off (SFTConfig turns it on;
    a 135M model has memory to spare) and length-grouped batches (as ftcli's). Returns the final validation loss,
    training tokens/s and the loss curve."""
    import torch
    import transformers
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    transformers.utils.logging.set_verbosity_error()
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])

    def rows(path: str) -> Any:
        """Prompts through the chat template (with its generation prompt); completions as they are (TRL adds EOS,
        <|im_end|> here): the loss covers the answer and its end of turn, the tokens ftcli's loss covers."""
        with open(path, encoding="utf-8") as f:
            items = [json.loads(x) for x in f if x.strip()]
        turns = [[{"role": "user", "content": r["prompt"]}] for r in items]
        prompts = [tokenizer.apply_chat_template(t, tokenize=False, add_generation_prompt=True) for t in turns]
        return Dataset.from_dict({"prompt": prompts, "completion": [r["response"] for r in items]})

    train, dev = rows(spec["train"]), rows(spec["validation"])
    model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=torch.float32)
    args = SFTConfig(
        output_dir=spec["out"],
        per_device_train_batch_size=spec["batch_size"],
        per_device_eval_batch_size=spec["eval_batch_size"],
        learning_rate=spec["lr"],
        num_train_epochs=spec["epochs"],
        lr_scheduler_type="linear",
        warmup_steps=spec["warmup_ratio"],
        weight_decay=spec["weight_decay"],
        max_grad_norm=spec["max_grad_norm"],
        optim="adamw_torch_fused",
        max_length=spec["max_length"],
        packing=False,
        completion_only_loss=True,
        gradient_checkpointing=False,
        train_sampling_strategy="group_by_length",
        seed=spec["seed"],
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=spec["precision"] == "bf16",
        disable_tqdm=True,
    )
    lora = LoraConfig(
        r=spec["lora_r"],
        lora_alpha=spec["lora_alpha"],
        lora_dropout=spec["lora_dropout"],
        target_modules=spec["lora_targets"],
        task_type="CAUSAL_LM",
    )
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=train, eval_dataset=dev, processing_class=tokenizer, peft_config=lora
    )
    tokens = spec["epochs"] * sum(len(x) for x in trainer.train_dataset["input_ids"])
    out = trainer.train()
    loss = trainer.evaluate()["eval_loss"]
    curve = [[h["step"], h["loss"]] for h in trainer.state.log_history if "loss" in h and "step" in h]
    return {
        "accuracy": None,
        "val_loss": loss,
        "tokens_per_s": tokens / out.metrics["train_runtime"],
        "samples_per_s": out.metrics["train_samples_per_second"],
        "precision": spec["precision"],
        "loss_curve": curve,
    }


JOBS = {
    "loop": loop_job,
    "trainer": trainer_job,
    "st_logreg": st_logreg_job,
    "eval_loop": eval_loop_job,
    "eval_trainer": eval_trainer_job,
    "eval_pipeline": eval_pipeline_job,
    "sft_trainer": sft_trainer_job,
}


def main() -> None:
    job, spec = sys.argv[1], json.loads(sys.argv[2])
    if spec.get("threads"):
        import torch

        torch.set_num_threads(spec["threads"])
    result = JOBS[job](spec)
    result["imported"] = sorted(m for m in ("ftcli", "hydra", "omegaconf") if m in sys.modules)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
