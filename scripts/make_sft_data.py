"""Make the shipped instruction sets for causal-LM fine-tuning from ftcli's own shipped data.

* ``sst2_instructions``: GLUE SST-2 reviews as one fixed instruction each, answered by the label word. Train: a
  seeded sample of 4,000 of the 67,349 training phrases; validation: all 872 validation sentences.
* ``ner_json``: the shipped NER sentences (ner_demo, 600 train / 200 validation) as an instruction to list their
  entities as JSON, answered by the list (``[{"type": "PER", "text": "Maria Lopez"}]``, ``[]`` for none), entities in
  sentence order.

Deterministic: running it again writes the same files.

    python scripts/make_sft_data.py          # → ftcli/assets/{sst2_instructions,ner_json}/{train,validation}.jsonl
    python scripts/make_sft_data.py --sentences 1000 head.tsv   # the reviews of dataset.max_train_samples=1000's rows

``--sentences N OUT``: the review and label of the N instruction rows that ``dataset=sst2_instructions
dataset.max_train_samples=N`` trains on (ftcli's seeded subset, trainer.seed 42), as a ``sentence``/``label`` TSV that
``task=text_classification dataset=sst2 dataset.train_file=OUT`` reads: a classification head on the same rows.
"""

from __future__ import annotations

import csv
import json
import random
import sys
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "ftcli" / "assets"
SST2_PROMPT = "Is the sentiment of this review positive or negative? Answer with one word.\n\nReview: {}"
NER_PROMPT = (
    "List the named entities in this sentence as a JSON list of objects with a type (PER for a person, ORG for "
    'an organisation, LOC for a location) and the text, e.g. [{{"type": "PER", "text": "Ada Lovelace"}}]; '
    "answer [] if there are none.\n\nSentence: {}"
)
SST2_TRAIN_ROWS = 4000
LABELS = ("negative", "positive")


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def sst2_rows(split: str) -> list[dict[str, str]]:
    with (ASSETS / "sst2" / f"{split}.tsv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [{"prompt": SST2_PROMPT.format(r["sentence"].strip()), "response": LABELS[int(r["label"])]} for r in rows]


def conll_sentences(path: Path) -> list[list[tuple[str, str]]]:
    """(word, IOB2 tag) sentences of a CoNLL file (blank lines between sentences; -DOCSTART- skipped)."""
    sentences, current = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if not parts or parts[0] == "-DOCSTART-":
            if current:
                sentences.append(current)
            current = []
            continue
        current.append((parts[0], parts[-1]))
    if current:
        sentences.append(current)
    return sentences


def entities(sentence: list[tuple[str, str]]) -> list[dict[str, str]]:
    """IOB2 spans in sentence order: {"type", "text"} with the words joined by spaces."""
    found: list[dict[str, str]] = []
    words: list[str] = []
    kind = None
    for word, tag in [*sentence, ("", "O")]:
        if words and (tag == "O" or tag.startswith("B-") or tag[2:] != kind):
            found.append({"type": str(kind), "text": " ".join(words)})
            words, kind = [], None
        if tag != "O":
            words, kind = [*words, word], tag[2:]
    return found


def ner_rows(split: str) -> list[dict[str, str]]:
    rows = []
    for sentence in conll_sentences(ASSETS / "ner_demo" / f"{split}.conll"):
        text = " ".join(w for w, _ in sentence)
        rows.append({"prompt": NER_PROMPT.format(text), "response": json.dumps(entities(sentence))})
    return rows


def head_sentences(n: int, out: Path, seed: int = 42) -> None:
    """The reviews and labels of the rows ``dataset.max_train_samples=n`` selects (datasets' seeded shuffle)."""
    from datasets import load_dataset

    rows = load_dataset("json", data_files=str(ASSETS / "sst2_instructions" / "train.jsonl"), split="train")
    prefix = SST2_PROMPT.format("")
    with out.open("w", encoding="utf-8") as f:
        f.write("sentence\tlabel\n")
        for r in rows.shuffle(seed=seed).select(range(n)):
            f.write(f"{r['prompt'].removeprefix(prefix)}\t{LABELS.index(r['response'])}\n")


def main() -> None:
    if sys.argv[1:2] == ["--sentences"]:
        head_sentences(int(sys.argv[2]), Path(sys.argv[3]))
        return
    train = sst2_rows("train")
    write_jsonl(ASSETS / "sst2_instructions" / "train.jsonl", random.Random(0).sample(train, SST2_TRAIN_ROWS))
    write_jsonl(ASSETS / "sst2_instructions" / "validation.jsonl", sst2_rows("dev"))
    write_jsonl(ASSETS / "ner_json" / "train.jsonl", ner_rows("train"))
    write_jsonl(ASSETS / "ner_json" / "validation.jsonl", ner_rows("dev"))


if __name__ == "__main__":
    main()
