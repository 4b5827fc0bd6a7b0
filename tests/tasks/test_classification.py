"""The classification objective: what a label set must be before anything trains."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ftcli.config.errors import FtcliError
from ftcli.tasks.registry import build_task


def _load(compose, cache_dir: Path, *overrides: str):
    cfg = compose(*overrides)
    return build_task(cfg.task, cache_dir).load_data(cfg.dataset, 0)


@pytest.mark.parametrize("task", ["image_classification", "clip_classification"])
def test_one_class_is_refused_in_one_line(compose, cache_dir, tmp_path, task) -> None:
    (tmp_path / "cat").mkdir()
    for i in range(6):
        Image.fromarray(np.full((8, 8), 30 * i, dtype=np.uint8)).save(tmp_path / "cat" / f"{i}.png")
    model = "model=tiny_clip" if task.startswith("clip") else "model=tiny_resnet"
    with pytest.raises(FtcliError, match=r"one class only \('cat'\); a classifier needs at least two"):
        _load(compose, cache_dir, model, "dataset=imagefolder", f"dataset.data_dir={tmp_path}", f"task={task}")


def test_one_label_name_is_refused(compose, cache_dir) -> None:
    with pytest.raises(FtcliError, match=r"^dataset.label_names: one class only \('good'\)"):
        _load(compose, cache_dir, "dataset.label_names=[good]", "dataset.max_train_samples=20")
