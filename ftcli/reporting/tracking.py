"""A run's numbers: ``metrics.jsonl`` (the source of truth) and the trackers Accelerate feeds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf


def tracker_config(cfg: DictConfig) -> dict[str, Any]:
    """The run config flattened to dotted keys with scalar values (what TensorBoard's hparams accept)."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        for k, v in node.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                flat[f"{prefix}{k}"] = v if isinstance(v, (int, float, str, bool)) else str(v)

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return flat


def trim_log(path: Path, step: int) -> None:
    """Drop metrics.jsonl records after ``step``: they are replayed by the resumed run."""
    if path.is_file():
        lines = [line for line in path.read_text().splitlines() if line]
        keep = [line for line in lines if json.loads(line).get("step", 0) <= step]
        path.write_text("".join(line + "\n" for line in keep))


class MetricsLog:
    """One JSON line per record in ``<run>/metrics.jsonl`` (main process), the same numbers to trackers."""

    def __init__(self, cfg: DictConfig, accelerator: Any, out_dir: Path, resumed_at: int | None) -> None:
        self.accelerator, self.trackers = accelerator, cfg.trainer.log_with != "none"
        path = out_dir / "metrics.jsonl"
        self.file = None
        if accelerator.is_main_process:
            if resumed_at is not None:
                trim_log(path, resumed_at)  # lines after the state are replayed
            self.file = path.open("a" if resumed_at is not None else "w")
        if self.trackers:  # event files / runs under the run dir (project_dir)
            accelerator.init_trackers("ftcli", config=tracker_config(cfg))

    def __call__(self, record: dict[str, Any]) -> None:
        if self.file:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
        if self.trackers:  # as train/… or validation/…
            prefix = "validation" if record.get("split") == "validation" else "train"
            values = {f"{prefix}/{k}": v for k, v in record.items() if k not in ("step", "split")}
            numbers = {k: v for k, v in values.items() if isinstance(v, (int, float))}
            self.accelerator.log(numbers, step=record["step"])

    def close(self) -> None:
        if self.file:
            self.file.close()
            self.file = None
