"""Progress for people: a rich bar in a terminal, plain lines in logs and CI."""

from __future__ import annotations

import os
import time
from typing import Any

from rich.console import Console

# Off a terminal there is no window to fit. Rich would fold every line at 80 columns (its fallback width):
# paths broken mid-line, a sweep's leaderboard as columns of single letters. Lines stay whole there (soft
# wrap) and tables get room for their natural width (their long cells end in an ellipsis; the CSV/JSON files
# keep the full text). COLUMNS, when set, still wins.
OFF_TERMINAL_WIDTH = 240


def make_console(**kwargs: Any) -> Console:
    """Rich's console in a terminal; a wide one that never folds lines in a log file, a pipe, CI or SLURM."""
    terminal = Console(**kwargs)
    if terminal.is_terminal:
        return terminal
    columns = os.environ.get("COLUMNS", "")
    width = int(columns) if columns.isdigit() and int(columns) > 0 else OFF_TERMINAL_WIDTH
    return Console(width=width, soft_wrap=True, **kwargs)


console = make_console()


def quiet_libraries() -> None:
    """Import the heavy libraries, then silence their bars and info chatter (our progress is enough).

    The imports create about a million long-lived objects; with the garbage collector paused while
    they appear, imports take less time (README: where the time of a cached run goes; nothing is collectable there)."""
    import gc
    import logging

    gc.disable()
    try:
        import accelerate  # noqa: F401
        import datasets
        import torch  # noqa: F401
        import transformers
        import transformers.modeling_utils  # noqa: F401  every command builds a model
    finally:
        gc.enable()

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    for name in ("accelerate", "datasets", "huggingface_hub"):  # hub retries: the final error says it all
        logging.getLogger(name).setLevel(logging.WARNING)


_LIVE: set[Progress] = set()  # bars on the screen now


def stop_progress() -> None:
    """Stop every live bar (after Ctrl-C: a bar left running keeps the terminal's cursor hidden)."""
    for bar in list(_LIVE):
        bar.close()


class Progress:
    """Step, loss, lr, samples/s and ETA; falls back to a plain line per logged step when not a terminal."""

    def __init__(self, total: int, label: str = "train") -> None:
        self.total, self.label, self.t0 = total, label, time.perf_counter()
        self.bar = None
        if console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self.bar = RichProgress(
                TextColumn(label),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                console=console,
                transient=False,
            )
            self.task = self.bar.add_task(label, total=total, info="")
            self.bar.start()
            _LIVE.add(self)

    def update(self, step: int, record: dict[str, Any] | None = None, info: str | None = None) -> None:
        if record:
            info = f"loss {record['loss']:.4f} · lr {record['lr']:.2e} · {record['samples_per_s']:.0f} samples/s"
        if self.bar is not None:
            if info:
                self.bar.update(self.task, completed=step, info=info)
            else:
                self.bar.update(self.task, completed=step)
        elif info:
            elapsed = time.perf_counter() - self.t0
            eta = elapsed / step * (self.total - step)
            console.print(f"{self.label} {step}/{self.total} · {info} · eta {eta:.0f}s", highlight=False)

    def note(self, text: str) -> None:
        console.print(text, highlight=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            _LIVE.discard(self)
