"""The next-token objective of supervised fine-tuning: cross-entropy on the answer tokens (the assistant turns; every
token with ``task.train_on_prompt`` or for plain text), the validation loss and perplexity, and the generated
answers scored against the references (exact match, token F1, ROUGE-L, JSON-item F1, label-word accuracy read from
the answer and scored from the next-token logits).

A row's label is its reference answer: a prompt/response row's response, a conversation's last assistant turn
(none for plain text). Bad rows are named by file and row before anything trains.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import DatasetConfig
from ftcli.config.tasks.causal_lm import CausalLMConfig
from ftcli.data.answers import label_words
from ftcli.data.chat import IGNORE, SftOptions, infer_shape, messages_of, text_of
from ftcli.data.tables import Raw
from ftcli.metrics.generation import (
    exact_match,
    json_f1,
    json_items,
    mean_rouge_l,
    mean_token_nll,
    named_label,
    perplexity,
    token_f1,
)
from ftcli.tasks.task import Evaluation, Labelled

GENERATED = ("accuracy", "exact_match", "token_f1", "rouge_l", "json_f1")  # metrics read from generated answers
LABEL_WORDS = ("accuracy", "scored_accuracy")  # metrics that need the answers to be label words
SHOWN = 8  # answers that eval.json shows beside their references


def sft_options(cfg: CausalLMConfig, text_column: str, max_length: int) -> SftOptions:
    """The chat encoder's options from the task config (and the dataset's text column, for plain text)."""
    return SftOptions(
        max_length=max_length,
        overflow=cfg.overflow,  # type: ignore[arg-type]
        train_on_prompt=bool(cfg.train_on_prompt),
        system_prompt=str(cfg.system_prompt),
        prompt_column=cfg.prompt_column,
        response_column=cfg.response_column,
        messages_column=cfg.messages_column,
        text_column=text_column,
    )


def answer_mask(labels: torch.Tensor) -> torch.Tensor:
    """The positions whose next token is learned: the only ones whose logits the loss needs."""
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != IGNORE
    return keep


def next_token_loss(logits: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the kept positions' logits [n, vocab] against their next tokens [n] (0 for none)."""
    if gold.numel() == 0:
        return logits.sum() * 0.0
    return torch.nn.functional.cross_entropy(logits.float(), gold)


class NextToken:
    """Next-token cross-entropy on the answers; generated answers judged against the references."""

    problem_type = ""  # no classification head: the language-model head is the pretrained one

    def __init__(self, cfg: CausalLMConfig) -> None:
        self.cfg = cfg

    def labels(self, raw: Raw, dataset: DatasetConfig, inputs: list[tuple[str, str | None]]) -> Labelled:
        """Every split with ``labels`` (the reference answer) and ``row`` (the row's number in its file), every row
        checked; the label words (when the train split's answers are a few distinct texts)."""
        options = sft_options(self.cfg, dataset.text_column, 1)
        splits = {}
        for split, ds in raw.splits.items():
            shape = infer_shape(ds.column_names, options, raw.where[split])
            references = [
                reference(row, shape, options, f"row {i + 1} of {raw.where[split]}") for i, row in enumerate(ds)
            ]
            ds = ds.remove_columns([c for c in ("labels", "row") if c in ds.column_names])
            splits[split] = ds.add_column("labels", references).add_column("row", list(range(1, len(ds) + 1)))
        names = list(dataset.label_names or label_words(splits["train"]["labels"]))
        return Labelled(splits, names)

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        """Padded rows (attention mask) or packed rows (position ids restart per example; no cache, so that the
        model builds the block-diagonal mask); logits only where a next token is learned (a boolean
        ``logits_to_keep`` flattens them to [answer tokens, vocab])."""
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if k in batch}
        keep = answer_mask(batch["labels"])  # the language-model head projects only the answers' positions
        logits = model(**inputs, use_cache=False, logits_to_keep=keep).logits
        return next_token_loss(logits, batch["labels"][:, 1:][keep[:, :-1]])

    def metric_error(self, metric: str, names: list[str]) -> str | None:
        if metric in GENERATED and not self.cfg.generate:
            return f"trainer.metric={metric}: it is read from generated answers, and task.generate=false"
        if metric in LABEL_WORDS and not names:
            return (
                f"trainer.metric={metric}: the answers are not label words (more than a few distinct texts); "
                "use loss, exact_match, token_f1 or rouge_l"
            )
        return None

    def metrics(self, outputs: np.ndarray, labels: np.ndarray, names: list[str]) -> dict[str, Any]:
        """Loss and perplexity over the answer tokens; the generated answers against the references."""
        nll = mean_token_nll([o["nll"] for o in outputs], [o["tokens"] for o in outputs])
        metrics: dict[str, Any] = {"loss": nll, "perplexity": perplexity(nll), "examples": len(labels)}
        answered = [(o, str(r)) for o, r in zip(outputs, labels, strict=True) if str(r).strip()]
        if not answered:
            return metrics
        words = sorted({*names, *label_words([r for _, r in answered])})
        scored = [(o["scored"], o["first"]) for o, _ in answered if o["scored"] >= 0]
        if scored and words:
            metrics["scored_accuracy"] = float(np.mean([p == g for p, g in scored]))
        if answered[0][0]["answer"] is None:  # task.generate=false
            return metrics
        answers, refs = [o["answer"] for o, _ in answered], [r for _, r in answered]
        metrics["exact_match"] = float(np.mean([exact_match(a, r) for a, r in zip(answers, refs, strict=True)]))
        metrics["token_f1"] = float(np.mean([token_f1(a, r) for a, r in zip(answers, refs, strict=True)]))
        metrics["rouge_l"] = mean_rouge_l(answers, refs)
        if words:
            found = [named_label(a, words) for a in answers]
            metrics["accuracy"] = float(
                np.mean([f >= 0 and words[f] == r.strip() for f, r in zip(found, refs, strict=True)])
            )
            metrics["unanswered"] = float(np.mean([f < 0 for f in found]))  # answers that name no label word
        if all(json_items(r) is not None for r in refs):
            metrics.update(json_f1(answers, refs))
        return metrics

    def extras(self, outputs: np.ndarray, labels: np.ndarray, names: list[str], how: Evaluation) -> dict[str, Any]:
        """The first answers beside their references (what the numbers are made of)."""
        shown = [
            {"answer": o["answer"], "reference": str(r)} for o, r in zip(outputs[:SHOWN], labels[:SHOWN], strict=True)
        ]
        return {"answers": shown} if shown and shown[0]["answer"] is not None else {}

    def predictions(self, outputs: np.ndarray, names: list[str]) -> list[dict[str, Any]]:
        return [{"answer": o["answer"]} for o in outputs]

    def gold(self, values: list[Any], names: list[str]) -> np.ndarray | None:
        return None  # predict compares nothing: a file's answers are not labels

    def describe(self, kind: str, labels: list[str] | None) -> str:
        words = ": answers among " + ", ".join(f"`{n}`" for n in labels) if labels else ""
        return f"text generation (supervised fine-tuning of a causal language model){words}"


def reference(row: dict[str, Any], shape: str, options: SftOptions, where: str) -> str:
    """A row's reference answer, the row checked on the way (roles, empty answers, a conversation without an
    assistant turn): one line naming the file and row."""
    if shape == "text":
        text_of(row, options.text_column, where, required="text")
        return ""
    if shape == "prompt_response":
        text_of(row, options.prompt_column, where)
        return text_of(row, options.response_column, where, required="response")
    messages = messages_of(row.get(options.messages_column), where)
    return messages[-1]["content"] if messages[-1]["role"] == "assistant" else ""


def check_generated(cfg: CausalLMConfig) -> None:
    """Stop strings that could never match."""
    if any(not s for s in cfg.generation.stop_strings):
        raise FtcliError("task.generation.stop_strings: an empty stop string would end every answer at once")
