"""``ftcli chat``: talk to a causal-LM checkpoint in the terminal. Each answer streams as it is written; the
conversation is kept (its oldest turns dropped when it outgrows the model's context). Ctrl-D or Ctrl-C at the prompt
ends the chat; Ctrl-C during an answer stops that answer."""

from __future__ import annotations

import contextlib
import sys
from typing import Any

with contextlib.suppress(ImportError):  # line editing and history at the prompt, where the platform has it
    import readline  # noqa: F401

from ftcli.config.errors import FtcliError
from ftcli.config.validate import validate
from ftcli.runtime.accelerator import make_accelerator
from ftcli.tasks.task import Loaded
from ftcli.training.checkpoint import load_checkpoint, resolve_checkpoint, task_of

USER, BYE = "you> ", "bye"


def run_chat(cfg: Any, read: Any = input, write: Any = None) -> dict[str, Any]:
    """The chat loop; ``read`` gives the user's lines (EOFError: Ctrl-D), ``write`` shows text (stdout)."""
    validate(cfg)
    write = write or _stdout
    ckpt = resolve_checkpoint(cfg.checkpoint)
    model, processor, run_cfg = load_checkpoint(ckpt)
    task = task_of(run_cfg, ckpt)
    if task.chat is None:
        raise FtcliError(f"checkpoint={ckpt}: a {task.name} checkpoint does not write answers; chat needs a causal LM")
    accelerator = make_accelerator(cfg.hardware)
    model.to(accelerator.device).eval()
    loaded = Loaded(model, processor, run_cfg.model if run_cfg is not None else None, accelerator, cfg)
    name = str(run_cfg.model.name) if run_cfg is not None else ckpt.name
    write(f"chatting with {name} ({ckpt}); Ctrl-D or Ctrl-C ends, Ctrl-C during an answer stops it\n")
    messages: list[dict[str, str]] = []
    turns = 0
    while True:
        try:
            line = read(USER)
        except (EOFError, KeyboardInterrupt):
            write(f"\n{BYE}\n")
            return {"turns": turns}
        if not line.strip():
            continue
        messages.append({"role": "user", "content": line})
        write(f"{name}> ")
        try:
            answer = task.chat.reply(loaded, messages, write)
        except KeyboardInterrupt:
            messages.pop()  # the question stays unanswered: it is not part of the conversation
            write(" [stopped]\n")
            continue
        messages.append({"role": "assistant", "content": answer})
        turns += 1
        write("\n")


def _stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
