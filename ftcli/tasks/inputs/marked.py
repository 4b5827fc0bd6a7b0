"""Marked-sentence inputs for relation extraction: a sentence with its subject and object spans marked by entity
markers (``task.marker``: typed ``[S:PERSON] … [/S:PERSON]`` or plain ``[S] … [/S]``, new special tokens whose
embeddings start from existing words'), read by a head over the two start markers' states
(``models/relations.py``). ``task.marker=none`` reads the sentence alone through the pooled text head: the
baseline that shows what the markers add.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import DatasetConfig, ModelConfig
from ftcli.config.tasks.relation_extraction import RelationExtractionConfig
from ftcli.data.relations import (
    COLUMNS,
    check_relation_rows,
    example_of,
    load_relations,
    mark,
    marker_seed_text,
    marker_vocabulary,
    markers,
)
from ftcli.data.relations import MARKER as MARKER_TOKEN
from ftcli.data.tables import Raw
from ftcli.data.text import collator, eval_loader, text_batches, tokenize
from ftcli.models.architectures import standard_roles
from ftcli.models.relations import build_relation_model, register_relation_classifier
from ftcli.models.text import build_model, load_tokenizer
from ftcli.runtime.inference import autocast_logits, infer
from ftcli.tasks.inputs.text import (
    length_grouped,
    logits_and_labels,
    missing_tokenizer,
    text_checkpoint,
    text_onnx_spec,
    token_count,
)
from ftcli.tasks.task import BatchPlan, Built, Card, Head, Loaded, OnnxSpec, TaskData

CARD = Card(
    "text-classification",
    "AutoModelForSequenceClassification",
    example_call='run("[S:PERSON] Maria Lopez [/S:PERSON] joined [O:ORGANIZATION] Helix [/O:ORGANIZATION] .")',
    predict_example="'text=\"[S:PERSON]Maria Lopez[/S:PERSON] joined [O:ORGANIZATION]Helix[/O:ORGANIZATION]\"'",
)
MARKED = "marked"  # the column of marked sentences the tokenizer reads


class MarkedText:
    """Relation rows (a sentence, subject and object spans, their types): the sentence with markers."""

    kind = "text"
    card = CARD

    def __init__(self, cfg: RelationExtractionConfig, cache_dir: Path) -> None:
        self.marker = str(cfg.marker)  # typed, plain or none
        self.cache_dir = cache_dir

    def columns(self, dataset: DatasetConfig) -> list[tuple[str, str | None]]:
        return [("relation rows", c) for c in COLUMNS]

    def raw(self, dataset: DatasetConfig) -> Raw:
        return load_relations(dataset)  # every row checked: one line naming the file and row

    def marked(self, row: dict[str, Any]) -> str:
        """A row's sentence with its markers (none: as it is)."""
        ex = example_of(row)
        return ex.text if self.marker == "none" else mark(ex, self.marker).text

    def processor(self, model: ModelConfig, data: TaskData) -> Any:
        """The model's tokenizer with every marker the splits need as a special token."""
        rows = [r for ds in data.splits.values() for r in ds]
        tokenizer = load_tokenizer(model, self.cache_dir, [self.marked(r) for r in data.splits["train"]])
        if self.marker != "none":
            needed = marker_vocabulary([example_of(r) for r in rows], self.marker)
            tokenizer.add_tokens(needed, special_tokens=True)
        return tokenizer

    def encode(self, ds: Any, data: TaskData, processor: Any, model: ModelConfig) -> Any:
        ds = ds.map(lambda r: {MARKED: self.marked(r)}, desc="mark entities")
        return tokenize(ds, processor, [MARKED], model.max_length).remove_columns(list(COLUMNS))

    def train_loader(self, ds: Any, data: TaskData, processor: Any, plan: BatchPlan) -> tuple[Any, Any]:
        return length_grouped(ds, plan, collator(processor))

    def eval_loader(self, ds: Any, processor: Any, batch_size: int) -> Any:
        return eval_loader(ds, processor, batch_size)

    def count(self, batch: dict[str, Any]) -> tuple[int, int]:
        return token_count(batch)

    def build_model(self, model: ModelConfig, pooling: str, data: TaskData, processor: Any, head: Head) -> Built:
        """Markers: the head over the two start markers; none: the pooled text head with the run's pooling."""
        if self.marker == "none":
            built = build_model(
                model, pooling, head.names, processor, head.seed, head.problem_type, cache_dir=self.cache_dir
            )
            return Built(built, standard_roles(built), pooling)
        seeds = {m: marker_seed_text(m) for m in learned_markers(processor)}
        built = build_relation_model(model, head.names, processor, head.seed, seeds, self.cache_dir)
        note = f"pooling={pooling}: the relation head reads the subject's and the object's start markers instead"
        return Built(built, standard_roles(built), "markers", () if pooling == "native" else (note,))

    def outputs(
        self, model: Any, batches: Any, processor: Any, accelerator: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        return logits_and_labels(model, batches, accelerator)

    def load_pretrained(self, folder: Path, trust_remote_code: bool, allow_pickle: bool) -> tuple[Any, Any]:
        register_relation_classifier()
        return text_checkpoint("AutoModelForSequenceClassification", folder, trust_remote_code, allow_pickle)

    def missing(self, folder: Path) -> str | None:
        return missing_tokenizer(folder)

    # ---- predict: marked text, or rows with offsets -------------------------------------------------
    def single_input(self, cfg: Any) -> tuple[dict[str, Any], list[str]]:
        if cfg.get("text") is None:
            raise FtcliError(
                'this checkpoint reads relations: give text="[S]Maria Lopez[/S] joined [O]Helix[/O]" (subject and '
                "object marked), or input=<file>"
            )
        return {"text": cfg.text}, ["text"]

    def input_rows(self, src: Path) -> list[dict[str, Any]] | None:
        return None  # a table: predict reads it

    def input_columns(self, cfg: Any, dataset: Any, rows: list[dict[str, Any]], where: str) -> list[str]:
        if not any(k in rows[0] for k in ("text", "token", "tokens")):
            raise FtcliError(f"input={where}: no text (or token) column; it has {', '.join(rows[0])}")
        return [k for k in rows[0]]

    def predict(
        self, loaded: Loaded, rows: list[dict[str, Any]], columns: list[str], batch_size: int, base: Path
    ) -> Any:
        """Each row checked (markers in the text, or offsets/token spans), marked as in training, classified."""
        examples = check_relation_rows(rows, "input", labelled=False)
        texts = [ex.text if self.marker == "none" else mark(ex, self.marker).text for ex in examples]
        known = set(learned_markers(loaded.processor))
        for ex in examples if self.marker != "none" else []:
            unknown = [m for m in markers(self.marker, ex.subj.type, ex.obj.type) if m not in known]
            if unknown:
                raise FtcliError(
                    f"{ex.where}: {unknown[0]} is a marker this checkpoint never learned (an entity type it did not "
                    f"see); it knows {', '.join(sorted(known))}"
                )
        batches = text_batches(loaded.processor, texts, None, loaded.model_cfg.max_length, batch_size)
        loaded.model.eval()
        return infer(autocast_logits(loaded.model, loaded.accelerator), batches)["outputs"]

    def onnx_spec(self, model: Any, processor: Any) -> OnnxSpec:
        return text_onnx_spec(processor)


def learned_markers(tokenizer: Any) -> list[str]:
    """The entity markers a tokenizer holds as added tokens, sorted."""
    return sorted(t for t in tokenizer.get_added_vocab() if MARKER_TOKEN.fullmatch(t))
