"""Does plain transformers' pipeline find the entities `ftcli predict` finds? Both on the same texts, in fp32.

    python scripts/ner_pipeline_check.py outputs/<run>                       # the run's validation sentences
    python scripts/ner_pipeline_check.py outputs/<run> --texts my.jsonl      # rows with a "text" field

Prints how many texts get identical entities (type, start, end) and the largest score difference, and
the first disagreement if any. Exit status 1 when any text differs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def validation_texts(run_cfg: object) -> list[str]:
    """The checkpoint's validation sentences, their tokens joined by spaces (what predict reads)."""
    from ftcli.training.checkpoint import task_of

    task = task_of(run_cfg)
    data = task.load_data(run_cfg.dataset, run_cfg.trainer.seed)  # type: ignore[attr-defined]
    return [" ".join(map(str, words)) for words in data.splits["validation"][data.columns[0]]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a run dir or checkpoint folder")
    parser.add_argument("--texts", type=Path, help="JSON Lines with a text field (default: validation sentences)")
    args = parser.parse_args()

    from accelerate import Accelerator
    from transformers import pipeline

    from ftcli.tasks.task import Loaded
    from ftcli.training.checkpoint import load_checkpoint, resolve_checkpoint, task_of

    ckpt = resolve_checkpoint(args.checkpoint)
    model, tokenizer, run_cfg = load_checkpoint(ckpt)
    texts = (
        [json.loads(line)["text"] for line in args.texts.read_text().splitlines() if line.strip()]
        if args.texts
        else validation_texts(run_cfg)
    )
    task = task_of(run_cfg, ckpt)
    rows = [{"text": t} for t in texts]
    loaded = Loaded(model, tokenizer, run_cfg.model, Accelerator(cpu=True))
    names = [model.config.id2label[i] for i in range(len(model.config.id2label))]
    outputs = task.predictor.predict(loaded, rows, ["text"], 32, Path("."))
    ours = [p["entities"] for p in task.objective.predictions(outputs, names)]
    tagger = pipeline("token-classification", model=str(ckpt), aggregation_strategy="simple", device="cpu")
    theirs = tagger(texts)
    same, worst, first = 0, 0.0, None
    for text, a, b in zip(texts, ours, theirs, strict=True):
        spans_a = [(e["entity_group"], e["start"], e["end"]) for e in a]
        spans_b = [(e["entity_group"], e["start"], e["end"]) for e in b]
        if spans_a == spans_b:
            same += 1
            worst = max([worst, *(abs(x["score"] - float(y["score"])) for x, y in zip(a, b, strict=True))])
        elif first is None:
            first = (text, spans_a, spans_b)
    found = sum(len(a) for a in ours)
    print(f"{same} of {len(texts)} texts: the same entities ({found} found by ftcli predict); max |Δscore| {worst:.2e}")
    if first is not None:
        print(f"first difference: {first[0]!r}\n  ftcli:    {first[1]}\n  pipeline: {first[2]}")
    sys.exit(0 if same == len(texts) else 1)


if __name__ == "__main__":
    main()
