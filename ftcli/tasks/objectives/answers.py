"""The answer-span objective (extractive QA): cross-entropy over the start and the end token, SQuAD's official
exact match and F1 (v1.1's normalisation), and for SQuAD v2 data (``task.unanswerable``) the HasAns/NoAns split,
the best scores over no-answer thresholds, and a threshold tuned on validation data and kept with the checkpoint.

A question abstains (answers "") when its null score (the CLS start + end logit, lowest over its windows) minus its
best span's score is above the threshold: ``task.null_threshold`` (0.0, run_qa.py's), or the one ``ftcli eval
eval.tune_thresholds=true`` stored in the checkpoint (``null_threshold.json``; the registry reads it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import DatasetConfig
from ftcli.config.tasks.question_answering import QuestionAnsweringConfig
from ftcli.data.tables import Raw, require_columns
from ftcli.metrics.calibration import bootstrap_ci
from ftcli.metrics.qa import best_thresholds, find_best_thresh, has_answer, question_scores, squad_scores
from ftcli.runtime.files import with_file
from ftcli.runtime.inference import model_inputs
from ftcli.tasks.task import Evaluation, Labelled

NULL_THRESHOLD = "null_threshold.json"  # in a checkpoint: {"null_threshold": t, "fitted_on": ..., "split": ...}
NAMES = ["start", "end"]  # the QA head's two outputs per token
V2_ONLY = ("has_ans_f1", "no_ans_f1", "has_ans_exact_match", "no_ans_exact_match", "best_f1", "best_exact_match")


def read_null_threshold(folder: Path | None) -> float | None:
    """The no-answer threshold ``ftcli eval`` stored in a checkpoint folder (none: None)."""
    path = Path(folder) / NULL_THRESHOLD if folder is not None else None
    if path is None or not path.is_file():
        return None
    try:
        return float(json.loads(path.read_text())["null_threshold"])
    except (ValueError, KeyError, TypeError) as e:
        raise FtcliError(f"checkpoint={folder}: {NULL_THRESHOLD} is unreadable ({e})") from e


class SpanAnswers:
    """An answer span of the context per question (or none, SQuAD v2): a start and an end logit per token."""

    problem_type = ""  # transformers names none for question answering

    def __init__(self, cfg: QuestionAnsweringConfig, tuned: float | None) -> None:
        self.cfg = cfg
        self.tuned = tuned  # the no-answer threshold read from the checkpoint

    def labels(self, raw: Raw, dataset: DatasetConfig, inputs: list[tuple[str, str | None]]) -> Labelled:
        """Every split with ``labels``: its answers (texts and character starts; empty for unanswerable)."""
        require_columns(raw, [*inputs, ("SQuAD rows", "answers")])
        if not self.cfg.unanswerable:
            for split, ds in raw.splits.items():
                empty = next((i for i, a in enumerate(ds["answers"]) if not a["text"]), None)
                if empty is not None:
                    raise FtcliError(
                        f"question {ds[empty]['id']!r} (row {empty + 1}) of {raw.where[split]} has no answer "
                        "(SQuAD v2): set task.unanswerable=true to learn to abstain"
                    )
        return Labelled({s: ds.rename_column("answers", "labels") for s, ds in raw.splits.items()}, list(NAMES))

    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        """Mean of the start and the end token's cross-entropy (positions outside the window are clamped away)."""
        out = model(**model_inputs(batch))
        start, end = out.start_logits.float(), out.end_logits.float()
        gold = batch["labels"].clamp(0, start.size(1) - 1)
        ce = torch.nn.functional.cross_entropy
        return (ce(start, gold[:, 0]) + ce(end, gold[:, 1])) / 2

    def metric_error(self, metric: str, names: list[str]) -> str | None:
        if metric in V2_ONLY and not self.cfg.unanswerable:
            return f"trainer.metric={metric}: only SQuAD v2 data has it; set task.unanswerable=true"
        return None

    def threshold(self) -> float:
        """The no-answer threshold: the checkpoint's tuned one, else ``task.null_threshold``."""
        return float(self.cfg.null_threshold if self.tuned is None else self.tuned)

    def answers(self, outputs: np.ndarray, threshold: float | None = None) -> list[str]:
        """Each question's answer: its best span, or "" where v2 decoding abstains."""
        if not self.cfg.unanswerable:
            return [str(d["text"]) for d in outputs]
        t = self.threshold() if threshold is None else threshold
        return ["" if d["score_diff"] > t else str(d["text"]) for d in outputs]

    def metrics(self, outputs: np.ndarray, labels: np.ndarray, names: list[str]) -> dict[str, Any]:
        """SQuAD's exact match and F1; v2: the HasAns/NoAns split and the best scores over thresholds."""
        golds = [list(g) for g in labels]
        out: dict[str, Any] = dict(squad_scores(self.answers(outputs), golds)) if golds else {"f1": 0.0}
        if self.cfg.unanswerable and golds:
            spans, diffs = [str(d["text"]) for d in outputs], [float(d["score_diff"]) for d in outputs]
            out |= best_thresholds(spans, golds, diffs, -np.inf)
            out["null_threshold"] = self.threshold()
        if golds:
            out["loss"] = float(np.mean([d.get("loss", np.nan) for d in outputs]))
        out["examples"] = len(golds)
        return out

    def extras(self, outputs: np.ndarray, labels: np.ndarray, names: list[str], how: Evaluation) -> dict[str, Any]:
        """95% bootstrap intervals of F1 and exact match over questions; v2 with ``eval.tune_thresholds``: the
        no-answer threshold with the best F1 on ``eval.calibration_split`` (else validation)."""
        extras: dict[str, Any] = {}
        if how.options.bootstrap > 0 and len(labels):
            em, f1 = question_scores(self.answers(outputs), [list(g) for g in labels])
            rows = np.stack([em, f1], axis=1)
            fns = {"exact_match": lambda r, _: float(r[:, 0].mean()), "f1": lambda r, _: float(r[:, 1].mean())}
            ci = bootstrap_ci(rows, rows, fns, how.options.bootstrap, 0.95, how.seed)
            extras["ci95"] = {k: list(v) for k, v in ci.items()}
        if how.options.tune_thresholds and self.cfg.unanswerable and len(labels):
            extras["tuned_thresholds"] = self._tune(outputs, labels, how)
        return extras

    def _tune(self, outputs: np.ndarray, labels: np.ndarray, how: Evaluation) -> dict[str, Any]:
        """The official v2 search for the F1-best threshold on the fitting split; this split's scores at it."""
        options = how.options
        where = options.calibration_split or "validation"
        own = where == options.split or how.other is None
        fit_out, fit_labels = (outputs, labels) if own else how.other(where)  # type: ignore[misc]
        spans = [str(d["text"]) for d in fit_out]
        golds = [list(g) for g in fit_labels]
        _, f1 = question_scores(spans, golds)
        diffs = [float(d["score_diff"]) for d in fit_out]
        _, best = find_best_thresh(spans, list(f1), diffs, [has_answer(g) for g in golds], -np.inf)
        best = best if np.isfinite(best) else float(min(diffs, default=0.0)) - 1.0  # everyone answers
        after = squad_scores(self.answers(outputs, best), [list(g) for g in labels])
        note = " (the evaluated split itself: optimistic)" if where == options.split else ""
        return {"thresholds": {"null_score_diff": best}, "fitted_on": where + note, "metrics": after}

    def save_fitted(self, folder: Path, metrics: dict[str, Any]) -> str | None:
        """A tuned threshold → ``null_threshold.json`` in the checkpoint, which is rewritten whole (its manifest
        too)."""
        tuned = metrics.get("tuned_thresholds")
        if not tuned:
            return None
        t = tuned["thresholds"]["null_score_diff"]
        record = {"null_threshold": t, "fitted_on": tuned["fitted_on"], "split": metrics.get("split")}
        folder = Path(folder)
        with_file(folder, NULL_THRESHOLD, json.dumps(record, indent=2) + "\n")
        return f"no-answer threshold {t:.4f} (fitted on {tuned['fitted_on']}) → {folder / NULL_THRESHOLD}"

    def predictions(self, outputs: np.ndarray, names: list[str]) -> list[dict[str, Any]]:
        """The answer ("" where it abstains), its character span of the context and its score (start + end
        logit); v2: the no-answer score difference too."""
        rows = []
        for d, answer in zip(outputs, self.answers(outputs), strict=True):
            row = {"answer": answer, "start": int(d["start"]), "end": int(d["end"]), "score": float(d["score"])}
            if self.cfg.unanswerable:
                row["score_diff"] = float(d["score_diff"])
            rows.append(row)
        return rows

    def gold(self, values: list[Any], names: list[str]) -> np.ndarray | None:
        return None  # predict's rows carry no answer column to compare with

    def describe(self, kind: str, labels: list[str] | None) -> str:
        v2 = ", or no answer (SQuAD v2)" if self.cfg.unanswerable else ""
        return f"extractive question answering: a span of the context answers each question{v2}"
