"""Batched generation with a causal LM: greedy or seeded sampling from left-padded prompts with a KV cache
(transformers' ``generate``), stop strings, and the answers as text.

Sampling draws from a generator seeded by ``seed`` and the batch's first row, inside a forked RNG: the same rows get
the same answers whatever the batch order or the number of processes, and the training run's own random stream
(dropout, shuffling) is left as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ftcli.config.tasks.causal_lm import GenerationConfig


def generate_ids(
    model: Any,
    tokenizer: Any,
    batch: dict[str, torch.Tensor],
    options: GenerationConfig,
    key: int = 0,
    past: Any = None,
    synced: bool = False,
    streamer: Any = None,
) -> torch.Tensor:
    """The new tokens after each left-padded prompt of ``batch`` (``[rows, new]``, pad after an answer's end).

    ``past``: a KV cache of the prompts' first positions (what an evaluation pass already computed); ``synced``:
    every process keeps stepping until all are done (sharded weights need every process in every forward);
    ``key``: tells batches apart for sampling (the batch's first row).
    """
    width = batch["input_ids"].shape[1]
    kwargs: dict[str, Any] = {
        "max_new_tokens": int(options.max_new_tokens),
        "do_sample": bool(options.do_sample),
        "pad_token_id": tokenizer.pad_token_id,
        "synced_gpus": synced,
        "streamer": streamer,
    }
    if past is not None:
        kwargs["cache"] = past  # transformers 5's name (past_key_values is deprecated)
    if options.do_sample:
        kwargs.update(temperature=float(options.temperature), top_p=float(options.top_p), top_k=0)
    else:  # greedy: no sampling knobs (a checkpoint's generation_config may carry some)
        kwargs.update(temperature=None, top_p=None, top_k=None)
    if options.stop_strings:
        kwargs.update(stop_strings=list(options.stop_strings), tokenizer=tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(options.seed) * 1_000_003 + key)
        out = model.generate(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=True, **kwargs
        )
    return out[:, width:]


def end_ids(model: Any, tokenizer: Any) -> set[int]:
    """The tokens that end an answer: the generation config's end-of-sequence ids and the tokenizer's."""
    ids = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    found = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        found.add(int(tokenizer.eos_token_id))
    return found


def answer_text(ids: Sequence[int], tokenizer: Any, ends: set[int], stops: Sequence[str]) -> str:
    """One answer as text: up to its first end token, special tokens dropped, cut before the first stop string."""
    kept = []
    for t in ids:
        if int(t) in ends or int(t) < 0:
            break
        kept.append(int(t))
    text = str(tokenizer.decode(kept, skip_special_tokens=True))
    for stop in stops:
        at = text.find(stop)
        if at >= 0:
            text = text[:at]
    return text.strip()
