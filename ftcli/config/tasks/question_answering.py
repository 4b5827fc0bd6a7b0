"""The ``task=question_answering`` schema: extractive QA, an answer span of the context per question (SQuAD)."""

from __future__ import annotations

from dataclasses import dataclass

from ftcli.config.schemas import TaskConfig, opt


@dataclass
class QuestionAnsweringConfig(TaskConfig):
    option = "question_answering"
    # SQuAD's official scores (answers normalised as its script does); v2 data adds the HasAns/NoAns split and the
    # best scores over no-answer thresholds
    metrics = (
        "f1",
        "exact_match",
        "has_ans_f1",
        "no_ans_f1",
        "has_ans_exact_match",
        "no_ans_exact_match",
        "best_f1",
        "best_exact_match",
        "loss",
    )
    # context tokens shared by consecutive windows of a context longer than model.max_length (run_qa.py: 128 with
    # max_length 384; the default suits the models' 128)
    doc_stride: int = opt(32, ge=0)
    n_best: int = opt(20, ge=1)  # highest start and end logits of a window paired up when decoding
    max_answer_length: int = opt(30, ge=1)  # the longest answer, in tokens
    # SQuAD v2: questions may have no answer (empty answers). Training points them at the CLS token; a question
    # abstains when (null score − best span score) > its threshold: null_threshold, or the one `ftcli eval
    # eval.tune_thresholds=true` tuned on validation data and stored in the checkpoint
    unanswerable: bool = False
    null_threshold: float = 0.0
