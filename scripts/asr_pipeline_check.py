#!/usr/bin/env python
"""How many of the shipped validation phrases transformers' automatic-speech-recognition pipeline transcribes as
``ftcli predict`` does, from one CTC checkpoint:

    python scripts/asr_pipeline_check.py outputs/<run>/checkpoints/best [--n 300]

ftcli predicts the clips as a table (batched, padded, each clip's frames masked); the pipeline reads each clip
alone from its samples. Prints one JSON line: the count that agree, the total, and the first disagreements.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import soundfile as sf
from transformers import pipeline

from ftcli.config.registry import ASSETS_DIR

PHRASES = ASSETS_DIR / "speech" / "phrases"


def pipeline_transcripts(checkpoint: Path, clips: list[Path]) -> list[str]:
    """transformers' ASR pipeline on each clip alone, at the file's own rate (the pipeline resamples), spaces
    collapsed as ftcli's transcripts have them."""
    run = pipeline("automatic-speech-recognition", model=str(checkpoint), device="cpu")
    out = []
    for clip in clips:
        audio, rate = sf.read(clip, dtype="float32")
        out.append(" ".join(run({"raw": audio, "sampling_rate": rate})["text"].split()))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--n", type=int, default=300)
    args = p.parse_args()
    rows = list(csv.DictReader((PHRASES / "validation.csv").open()))[: args.n]
    work = Path(tempfile.mkdtemp(prefix="asr-check-"))
    table, out = work / "clips.csv", work / "predictions.csv"
    with table.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "transcript"])
        w.writeheader()
        w.writerows({"path": str(PHRASES / r["path"]), "transcript": r["transcript"]} for r in rows)
    cmd = ["predict", f"checkpoint={args.checkpoint}", f"input={table}", f"output={out}", "audio_column=path"]
    subprocess.run([sys.executable, "-m", "ftcli", *cmd, f"hydra.run.dir={work}"], check=True)
    ours = [r["predicted_transcript"] for r in csv.DictReader(out.open())]  # beside the table's own transcript
    theirs = pipeline_transcripts(args.checkpoint, [PHRASES / r["path"] for r in rows])
    differ = [(r["path"], o, t) for r, o, t in zip(rows, ours, theirs, strict=True) if o != t]
    print(json.dumps({"agree": len(rows) - len(differ), "of": len(rows), "differ": differ[:5]}))


if __name__ == "__main__":
    main()
