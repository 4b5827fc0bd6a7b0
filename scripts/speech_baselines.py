"""The numbers trained speech models are judged against, on a run's own validation split: the majority class
(audio classification) and the untrained model (the same architecture and seed, before any step), and how fast the
clip cache makes decoding (a split decoded, then read back from the cache).

    python scripts/speech_baselines.py dataset=speech_keywords model=tiny_wav2vec2
    python scripts/speech_baselines.py dataset=speech_phrases model=tiny_wav2vec2 model.config_overrides.hidden_size=96

Takes ``ftcli train`` overrides; prints one JSON line. Uses FTCLI_CACHE_DIR (a fresh folder: a cold first decode).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir

from ftcli.config.registry import config_dir, register_configs
from ftcli.runtime.accelerator import make_accelerator
from ftcli.tasks.registry import build_task


def main(overrides: list[str]) -> dict:
    register_configs()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=["hardware=cpu", "hardware.mixed_precision=no", *overrides])
    cache = Path(os.environ.get("FTCLI_CACHE_DIR") or tempfile.mkdtemp(prefix="speech-cache-"))
    task = build_task(cfg.task, cache)
    data = task.load_data(cfg.dataset, cfg.trainer.seed)
    processor = task.load_processor(cfg.model, data)
    timings = {}
    for run in ("first", "cached"):  # decode + resample + store, then the cache's read-back
        start = time.perf_counter()
        validation = task.encode(data.splits["validation"], data, processor, cfg.model)
        timings[f"{run}_clips_per_s"] = len(validation) / (time.perf_counter() - start)
    built = task.build_model(cfg.model, "native", data, processor, cfg.trainer.seed)  # the run's own start
    accelerator = make_accelerator(cfg.hardware)
    untrained = task.evaluate(built.model, task.eval_loader(validation, processor, 32), processor, accelerator,
                              data.label_names)  # fmt: skip
    result = {"task": task.name, "validation": len(validation), **timings}
    result["untrained"] = {k: v for k, v in untrained.items() if isinstance(v, float) and k != "samples_per_s"}
    labels = np.asarray(validation.labels)
    if labels.dtype != object:  # classification: always answering the commonest training class
        train_labels = np.asarray(data.splits["train"]["labels"])
        majority = np.bincount(train_labels).argmax()
        result["majority_accuracy"] = float((labels == majority).mean())
    return result


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(json.dumps(main(sys.argv[1:])))
