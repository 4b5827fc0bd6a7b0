"""Whether the chosen hardware's runtime is installed (torch_xla, deepspeed, CUDA): light, the CLI calls it
before any worker starts."""

from __future__ import annotations

import importlib.util

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import HardwareConfig

# hardware that needs a runtime of its own: (when, module, what to install)
RUNTIMES = (
    (lambda hw: hw.accelerator == "tpu", "torch_xla", "torch_xla (for TPUs)"),
    (lambda hw: hw.distributed == "deepspeed", "deepspeed", "deepspeed (pip install deepspeed)"),
)


def check_runtime(hw: HardwareConfig) -> None:
    """Fail in one line when the chosen hardware's runtime is missing: before any worker starts."""
    for needed, module, what in RUNTIMES:
        if needed(hw) and importlib.util.find_spec(module) is None:
            raise FtcliError(f"hardware={hw.name}: {what} is not installed")
    if hw.accelerator == "gpu":
        import torch

        if not torch.cuda.is_available():
            raise FtcliError(f"hardware={hw.name}: no CUDA GPU is visible; use hardware=cpu or hardware=auto")
