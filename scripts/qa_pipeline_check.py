"""Does plain transformers answer what `ftcli predict` answers? transformers 5 has no question-answering pipeline,
so the other side is transformers 4's pipeline rule, rebuilt on plain transformers and numpy (pipeline_answer).

    python scripts/qa_pipeline_check.py outputs/<run>          # the run's validation questions

Prints how many questions get the same character span both ways, and the first disagreement if any; exit
status 1 when any differs. The rule: each window (max_length tokens, doc_stride of overlap, as the checkpoint
was trained) softmaxes its start and end logits over its context tokens, scores a span by p(start)·p(end) with
start <= end < start + max_answer_len, and the best-scoring span of any window wins.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np


def pipeline_answer(
    model: Any, tokenizer: Any, question: str, context: str, max_length: int = 384, doc_stride: int = 128,
    max_answer_len: int = 30,
) -> tuple[int, int]:  # fmt: skip
    """transformers 4's question-answering pipeline's answer: its character span of ``context``."""
    import torch

    enc = tokenizer(
        question, context, truncation="only_second", max_length=max_length, stride=doc_stride,
        return_overflowing_tokens=True, return_offsets_mapping=True, padding=True, return_tensors="pt",
    )  # fmt: skip
    offsets = enc.pop("offset_mapping").tolist()
    enc.pop("overflow_to_sample_mapping", None)
    with torch.no_grad():
        out = model(**enc)
    best, span = -1.0, (0, 0)
    for w in range(len(offsets)):
        in_context = np.array([s == 1 for s in enc.sequence_ids(w)])

        def probs(logits: Any, keep: np.ndarray = in_context) -> np.ndarray:
            x = np.where(keep, logits.numpy().astype(np.float64), -np.inf)
            return np.exp(x - x.max()) / np.exp(x - x.max()).sum()

        scores = np.tril(np.triu(np.outer(probs(out.start_logits[w]), probs(out.end_logits[w]))), max_answer_len - 1)
        s, e = np.unravel_index(scores.argmax(), scores.shape)
        if scores[s, e] > best:
            best, span = scores[s, e], (offsets[w][s][0], offsets[w][e][1])
    return span


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a run dir or checkpoint folder")
    args = parser.parse_args()

    from pathlib import Path

    import torch
    from accelerate import Accelerator

    from ftcli.tasks.task import Loaded
    from ftcli.training.checkpoint import load_checkpoint, resolve_checkpoint, task_of

    torch.set_grad_enabled(False)
    ckpt = resolve_checkpoint(args.checkpoint)
    model, tokenizer, run_cfg = load_checkpoint(ckpt)
    model.float().eval()
    task = task_of(run_cfg, ckpt)
    data = task.load_data(run_cfg.dataset, run_cfg.trainer.seed)
    rows = [{"question": r["question"], "context": r["context"]} for r in data.splits["validation"]]
    loaded = Loaded(model, tokenizer, run_cfg.model, Accelerator(cpu=True, mixed_precision="no"))
    ours = task.objective.predictions(task.predictor.predict(loaded, rows, ["question", "context"], 32, Path(".")), [])
    length, stride = run_cfg.model.max_length, run_cfg.task.doc_stride
    same, first = 0, None
    for row, o in zip(rows, ours, strict=True):
        theirs = pipeline_answer(model, tokenizer, row["question"], row["context"], length, stride)
        if (o["start"], o["end"]) == theirs:
            same += 1
        elif first is None:
            first = (row["question"], o["answer"], row["context"][theirs[0] : theirs[1]])
    print(f"{same} of {len(rows)} validation questions: the same answer span from ftcli predict and the pipeline rule")
    if first is not None:
        print(f"first difference: {first[0]!r}\n  ftcli:    {first[1]!r}\n  pipeline: {first[2]!r}")
    sys.exit(0 if same == len(rows) else 1)


if __name__ == "__main__":
    main()
