"""Word inputs for token classification: a sentence given as words (CoNLL tokens, or lists of tokens), tokenised
into sub-word windows (``data/words.py``), read by the architecture's own token-classification head
(``AutoModelForTokenClassification``). Outputs come back per sentence, each word read in the window that owns it;
predictions on raw text are entity spans with character offsets, as transformers' pipeline groups them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import DatasetConfig, ModelConfig
from ftcli.config.tasks.token_classification import TokenClassificationConfig
from ftcli.data.batching import loader, sorted_batches
from ftcli.data.conll import load_tagged
from ftcli.data.tables import Raw
from ftcli.data.text import lengths_of
from ftcli.data.words import (
    SENTENCE,
    collate,
    encode_words,
    entities_of,
    sentences_of,
    text_of,
    token_logits,
    window_batches,
    windows_of,
)
from ftcli.models.architectures import standard_roles
from ftcli.models.text import build_model, load_tokenizer
from ftcli.runtime.inference import autocast_logits, infer, model_inputs
from ftcli.tasks.inputs.text import length_grouped, missing_tokenizer, text_checkpoint, text_onnx_spec, token_count
from ftcli.tasks.task import BatchPlan, Built, Card, Head, Loaded, OnnxSpec, TaskData

AUTO = "AutoModelForTokenClassification"
CARD = Card("token-classification", AUTO, example_call='run("Maria Lopez joined Helix Biotech in Paris.")')


class WordsInputs:
    """The dataset's ``text_column`` as a list of words; a tag per word."""

    kind = "token"
    card = CARD

    def __init__(self, cfg: TokenClassificationConfig, cache_dir: Path) -> None:
        self.stride = int(cfg.stride)  # tokens shared by consecutive windows of a long sentence
        self.cache_dir = cache_dir

    def columns(self, dataset: DatasetConfig) -> list[tuple[str, str | None]]:
        return [("dataset.text_column", dataset.text_column)]

    def raw(self, dataset: DatasetConfig) -> Raw:
        return load_tagged(dataset)  # CoNLL files by their suffix, anything else as load_raw reads it

    def processor(self, model: ModelConfig, data: TaskData) -> Any:
        words = data.splits["train"][data.columns[0]]
        tokenizer = load_tokenizer(model, self.cache_dir, (" ".join(map(str, w)) for w in words))
        if not getattr(tokenizer, "is_fast", False):
            raise FtcliError(
                f"model.name_or_path={model.name_or_path}: token classification needs a fast tokenizer "
                "(tokenizer.json: it maps sub-words to words and to characters)"
            )
        return tokenizer

    def encode(self, ds: Any, data: TaskData, processor: Any, model: ModelConfig) -> Any:
        return encode_words(ds, data.columns[0], processor, model.max_length, self.stride)

    def train_loader(self, ds: Any, data: TaskData, processor: Any, plan: BatchPlan) -> tuple[Any, Any]:
        return length_grouped(ds, plan, collate(processor))

    def eval_loader(self, ds: Any, processor: Any, batch_size: int) -> Any:
        lengths = lengths_of(ds)
        ds = ds.add_column("idx", list(range(len(ds))))
        return loader(ds, sorted_batches(lengths, batch_size), collate(processor, keep=("idx", SENTENCE)))

    def count(self, batch: dict[str, Any]) -> tuple[int, int]:
        return token_count(batch)

    def build_model(self, model: ModelConfig, pooling: str, data: TaskData, processor: Any, head: Head) -> Built:
        """The architecture's own token head: every token gets a tag, no pooling applies (said when one was asked)."""
        built = build_model(
            model, "native", head.names, processor, head.seed, head.problem_type, AUTO, cache_dir=self.cache_dir
        )
        note = (
            f"pooling={pooling} is for sequence heads; token classification tags every token with the "
            f"architecture's own head ({AUTO})"
        )
        return Built(built, standard_roles(built), "native", () if pooling == "native" else (note,))

    def outputs(
        self, model: Any, batches: Any, processor: Any, accelerator: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(each sentence's [words, tags] logits, its tag ids), sentences in dataset order."""

        def forward(batch: dict[str, Any]) -> dict[str, Any]:
            inputs = {k: v for k, v in model_inputs(batch).items() if k != SENTENCE}
            return {"logits": model(**inputs).logits.float(), SENTENCE: batch[SENTENCE]}

        model.eval()
        out = infer(forward, batches, accelerator)
        if not out:
            return np.empty(0, dtype=object), np.empty(0, dtype=object)
        return sentences_of(out["logits"], out["labels"], out[SENTENCE])

    def load_pretrained(self, folder: Path, trust_remote_code: bool, allow_pickle: bool) -> tuple[Any, Any]:
        return text_checkpoint(AUTO, folder, trust_remote_code, allow_pickle)

    def missing(self, folder: Path) -> str | None:
        return missing_tokenizer(folder)

    # ---- predict: entities in raw text -----------------------------------------------------------------
    def single_input(self, cfg: Any) -> tuple[dict[str, Any], list[str]]:
        if cfg.get("text") is None:
            raise FtcliError('this checkpoint tags text: give text="..." (or input=<file>)')
        if cfg.text_pair is not None:
            raise FtcliError("text_pair: token classification tags one text; leave text_pair out")
        if not str(cfg.text).strip():
            raise FtcliError("text is empty: there is nothing to tag")
        return {"text": cfg.text}, ["text"]

    def input_rows(self, src: Path) -> list[dict[str, Any]] | None:
        return None

    def input_columns(self, cfg: Any, dataset: Any, rows: list[dict[str, Any]], where: str) -> list[str]:
        """``text_column=``, else the training data's tokens column (its words are joined by spaces), else text."""
        wanted = [cfg.text_column] if cfg.text_column else [dataset.text_column if dataset else None, "text"]
        for column in wanted:
            if column and column in rows[0]:
                return [column]
        raise FtcliError(f"text_column={wanted[0] or 'text'}: no such column in {where}; it has {', '.join(rows[0])}")

    def predict(
        self, loaded: Loaded, rows: list[dict[str, Any]], columns: list[str], batch_size: int, base: Path
    ) -> Any:
        """Each row's entities (type, score, text, character offsets), as the pipeline's simple aggregation."""
        model, processor = loaded.model, loaded.processor
        texts = [text_of(r.get(columns[0])) for r in rows]
        enc = processor(texts, add_special_tokens=False, return_offsets_mapping=True)
        layout = windows_of(processor, loaded.model_cfg.max_length, self.stride)
        spans = [layout.spans(len(ids)) for ids in enc["input_ids"]]
        model.eval()
        batches = window_batches(processor, layout, enc["input_ids"], spans, batch_size)
        logits = infer(autocast_logits(model, loaded.accelerator, "logits"), batches).get("logits", np.zeros((0, 0, 0)))
        names = [model.config.id2label[i] for i in range(model.config.num_labels)]
        found, window = np.empty(len(rows), dtype=object), 0
        for r, text in enumerate(texts):
            n = len(enc["input_ids"][r])
            own = token_logits(logits, window, spans[r], n, len(layout.prefix))
            window += len(spans[r]) if n else 0  # an empty text has no window
            found[r] = entities_of(own, names, enc["offset_mapping"][r], text)
        return found

    def onnx_spec(self, model: Any, processor: Any) -> OnnxSpec:
        return text_onnx_spec(processor)
