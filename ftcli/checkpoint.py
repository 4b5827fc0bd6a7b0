"""Save and load checkpoints: plain transformers folders, written atomically."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ftcli.config import FtcliError

RUN_CONFIG = "ftcli.yaml"  # the resolved training config, inside every checkpoint


def save_checkpoint(model: Any, tokenizer: Any, folder: Path, run_cfg: Any, metrics: dict[str, Any]) -> None:
    """Write a checkpoint folder that ``AutoModelForSequenceClassification.from_pretrained`` loads.

    The folder is built beside its destination and renamed into place, so a crash mid-save leaves
    the previous checkpoint whole.
    """
    from omegaconf import OmegaConf

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    if run_cfg is not None:
        (tmp / RUN_CONFIG).write_text(OmegaConf.to_yaml(run_cfg, resolve=True))
    (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
    old = folder.with_name(f".{folder.name}.old{os.getpid()}")
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(folder: Path, trust_remote_code: bool = False) -> tuple[Any, Any, Any]:
    """(model, tokenizer, the run's resolved config or None) from a checkpoint folder."""
    from omegaconf import OmegaConf
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ftcli.models import register_pooled_classifier

    register_pooled_classifier()  # ftcli's own head loads without trust_remote_code
    folder = Path(folder)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FtcliError(f"checkpoint={folder}: cannot load ({first})") from e
    run_cfg = OmegaConf.load(folder / RUN_CONFIG) if (folder / RUN_CONFIG).is_file() else None
    return model, tokenizer, run_cfg
