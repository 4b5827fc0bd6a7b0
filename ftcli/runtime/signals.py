"""Stop signals: SIGTERM/SIGINT ask the training loop to stop at the next optimizer step."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import torch


class StopSignals:
    """SIGTERM/SIGINT ask the loop to stop at the next optimizer step (to save a resumable state)
    instead of killing it mid-write. A third signal kills as usual.
    """

    def __init__(self) -> None:
        self.signum, self.count = 0, 0
        self._previous: dict[int, Any] = {}

    def install(self) -> StopSignals:

        if threading.current_thread() is threading.main_thread():  # Python handles signals there only
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:

        self.count += 1
        if self.count >= 3:  # asked three times: stop now (a launcher may pass a terminal's Ctrl-C on: twice)
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            os.kill(os.getpid(), signum)
        self.signum = self.signum or signum

    def restore(self) -> None:

        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def requested(self, accelerator: Any) -> int:
        """The signal any process received (0: none). Every process must call this at the same step."""
        if accelerator.num_processes == 1:
            return self.signum

        flag = torch.tensor([self.signum], device=accelerator.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)  # one process got it: all stop
        return int(flag.item())
