"""Question inputs for extractive question answering: a question and its context read together in windows of
``model.max_length`` tokens that overlap by ``task.doc_stride`` (``data/qa.py``), by the architecture's own
question-answering head (``AutoModelForQuestionAnswering``: a start and an end logit per token).

Outputs come back per question, decoded over all its windows: the best span (``task.n_best`` candidates per
window, at most ``task.max_answer_length`` tokens) as text of the context, with its score and its no-answer score
difference (SQuAD v2). The objective applies the no-answer threshold and scores them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import DatasetConfig, ModelConfig
from ftcli.config.tasks.question_answering import QuestionAnsweringConfig
from ftcli.data.batching import loader, sorted_batches
from ftcli.data.qa import (
    check_qa_rows,
    collate_windows,
    decode_answers,
    encode_windows,
    load_qa,
    read_qa_file,
    stored_windows,
    tokenize_windows,
    window_batches,
)
from ftcli.data.tables import Raw
from ftcli.data.text import lengths_of
from ftcli.models.architectures import standard_roles
from ftcli.models.text import build_model, load_tokenizer
from ftcli.runtime.inference import infer, model_inputs
from ftcli.tasks.inputs.text import length_grouped, missing_tokenizer, text_checkpoint, text_onnx_spec, token_count
from ftcli.tasks.task import BatchPlan, Built, Card, Head, Loaded, OnnxSpec, TaskData

AUTO = "AutoModelForQuestionAnswering"
CARD = Card(
    "question-answering",
    AUTO,
    example_call='run(question="Who founded Helix?", context="Helix was founded by Maria Lopez in 2004.")',
    predict_example='question="Who founded Helix?" context="Helix was founded by Maria Lopez in 2004."',
)
COLUMNS = ("id", "context", "question")  # SQuAD's row layout (answers: the objective's labels)


class QuestionInputs:
    """SQuAD rows (``id``, ``context``, ``question``): question + context windows, a start and an end per token."""

    kind = "question"
    card = CARD

    def __init__(self, cfg: QuestionAnsweringConfig, cache_dir: Path) -> None:
        self.cfg = cfg  # doc_stride, n_best, max_answer_length
        self.cache_dir = cache_dir

    def columns(self, dataset: DatasetConfig) -> list[tuple[str, str | None]]:
        return [("SQuAD rows", c) for c in COLUMNS]

    def raw(self, dataset: DatasetConfig) -> Raw:
        return load_qa(dataset)  # every row checked: one line naming the file and row

    def processor(self, model: ModelConfig, data: TaskData) -> Any:
        train = data.splits["train"]
        tokenizer = load_tokenizer(model, self.cache_dir, [*train["question"], *train["context"]])
        if not getattr(tokenizer, "is_fast", False):
            raise FtcliError(
                f"model.name_or_path={model.name_or_path}: question answering needs a fast tokenizer "
                "(tokenizer.json: its offsets map answers to tokens and back)"
            )
        return tokenizer

    def encode(self, ds: Any, data: TaskData, processor: Any, model: ModelConfig) -> Any:
        return encode_windows(ds, processor, model.max_length, self.cfg.doc_stride, answers="labels")

    def train_loader(self, ds: Any, data: TaskData, processor: Any, plan: BatchPlan) -> tuple[Any, Any]:
        return length_grouped(ds, plan, collate_windows(processor))

    def eval_loader(self, ds: Any, processor: Any, batch_size: int) -> Any:
        lengths = lengths_of(ds)
        ds = ds.add_column("idx", list(range(len(ds))))
        return loader(ds, sorted_batches(lengths, batch_size), collate_windows(processor, keep=("idx",)))

    def count(self, batch: dict[str, Any]) -> tuple[int, int]:
        return token_count(batch)

    def build_model(self, model: ModelConfig, pooling: str, data: TaskData, processor: Any, head: Head) -> Built:
        """The architecture's own QA head (a start and an end logit per token); no pooling applies."""
        built = build_model(
            model, "native", head.names, processor, head.seed, head.problem_type, AUTO, cache_dir=self.cache_dir
        )
        note = f"pooling={pooling} is for sequence heads; question answering reads every token ({AUTO})"
        return Built(built, standard_roles(built), "native", () if pooling == "native" else (note,))

    def outputs(
        self, model: Any, batches: Any, processor: Any, accelerator: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(each question's decoded answer, its gold answers), questions in dataset order. The windows' offsets and
        contexts are read from the loader's dataset (``eval_loader``'s windows)."""
        windows_ds = getattr(batches, "dataset", None)
        if windows_ds is None or "offsets" not in getattr(windows_ds, "column_names", ()):
            raise FtcliError("question answering evaluates batches of its eval_loader (they carry the windows)")

        def forward(batch: dict[str, Any]) -> dict[str, Any]:
            out = model(**model_inputs(batch))
            return {"start": out.start_logits.float(), "end": out.end_logits.float()}

        model.eval()
        logits = infer(forward, batches, accelerator)
        windows, contexts, golds = stored_windows(windows_ds)
        decoded = self.decode(windows, logits, contexts)
        losses = window_losses(logits, windows)
        for d, row in zip(decoded, per_example(losses, windows["example_index"], len(golds)), strict=True):
            d["loss"] = row  # the training loss of its windows (validation loss in the learning curves)
        gold = np.empty(len(golds), dtype=object)
        gold[:] = golds
        return decoded, gold

    def decode(self, windows: dict[str, list[Any]], logits: dict[str, np.ndarray], contexts: list[str]) -> np.ndarray:
        """Each question's best span over its windows (no threshold: the objective applies it)."""
        if not contexts:
            return np.empty(0, dtype=object)
        cfg = self.cfg
        answers = decode_answers(
            windows, logits["start"], logits["end"], contexts, cfg.n_best, cfg.max_answer_length, None
        )
        out = np.empty(len(answers), dtype=object)
        out[:] = answers
        return out

    def load_pretrained(self, folder: Path, trust_remote_code: bool, allow_pickle: bool) -> tuple[Any, Any]:
        return text_checkpoint(AUTO, folder, trust_remote_code, allow_pickle)

    def missing(self, folder: Path) -> str | None:
        return missing_tokenizer(folder)

    # ---- predict: questions about contexts -------------------------------------------------------------
    def single_input(self, cfg: Any) -> tuple[dict[str, Any], list[str]]:
        question, context = cfg.get("question"), cfg.get("context")
        if question is None or context is None:
            raise FtcliError('this checkpoint answers questions: give question="..." context="..." (or input=<file>)')
        return {"question": question, "context": context}, ["question", "context"]

    def input_rows(self, src: Path) -> list[dict[str, Any]] | None:
        """SQuAD's nested JSON (and flat JSON lists) through the QA reader; other tables: predict reads them."""
        return read_qa_file(src, labelled=False) if src.suffix.lower() == ".json" else None

    def input_columns(self, cfg: Any, dataset: Any, rows: list[dict[str, Any]], where: str) -> list[str]:
        for column in ("question", "context"):
            if column not in rows[0]:
                raise FtcliError(f"input={where}: no {column} column; it has {', '.join(rows[0])}")
        return ["question", "context"]

    def predict(
        self, loaded: Loaded, rows: list[dict[str, Any]], columns: list[str], batch_size: int, base: Path
    ) -> Any:
        """Each row's best span over its windows, under the accelerator's autocast."""
        checked = check_qa_rows(
            ({"question": r.get("question"), "context": r.get("context")} for r in rows), "input", False
        )
        questions, contexts = [r["question"] for r in checked], [r["context"] for r in checked]
        windows = tokenize_windows(
            loaded.processor, questions, contexts, loaded.model_cfg.max_length, self.cfg.doc_stride
        )
        model, accelerator = loaded.model, loaded.accelerator

        def forward(batch: dict[str, Any]) -> dict[str, Any]:
            inputs = {k: v.to(accelerator.device) for k, v in model_inputs(batch).items()}
            with accelerator.autocast():
                out = model(**inputs)
            return {"start": out.start_logits.float(), "end": out.end_logits.float()}

        model.eval()
        logits = infer(forward, window_batches(loaded.processor, windows, batch_size))
        return self.decode(windows, logits, contexts)

    def onnx_spec(self, model: Any, processor: Any) -> OnnxSpec:
        spec = text_onnx_spec(processor)
        return OnnxSpec(spec.names, spec.sample, spec.dynamic, ("start_logits", "end_logits"))


def window_losses(logits: dict[str, np.ndarray], windows: dict[str, list[Any]]) -> np.ndarray:
    """Each window's training loss (mean of the start and end cross-entropy) over its own tokens."""
    out = np.zeros(len(windows["offset_mapping"]))
    for w, (offsets, gold) in enumerate(zip(windows["offset_mapping"], logits["labels"], strict=True)):
        n = len(offsets)
        for which, target in (("start", gold[0]), ("end", gold[1])):
            row = logits[which][w, :n].astype(np.float64)
            top = row.max()
            out[w] += (np.log(np.exp(row - top).sum()) + top - row[min(int(target), n - 1)]) / 2
    return out


def per_example(values: np.ndarray, example: list[int], n: int) -> list[float]:
    """The mean of each example's windows' values."""
    sums, counts = np.zeros(n), np.zeros(n)
    np.add.at(sums, example, values)
    np.add.at(counts, example, 1)
    return list(sums / np.maximum(counts, 1))
