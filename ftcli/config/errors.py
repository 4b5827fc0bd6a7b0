"""The user-error type and how errors read: one line, with a 'did you mean'."""

from __future__ import annotations

import difflib


class FtcliError(Exception):
    """A user mistake. The CLI prints the message on one line and exits with status 2."""


def first_line(e: BaseException) -> str:
    """An exception's message cut to its first line (libraries' errors can run to pages), else its type."""
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


def did_you_mean(word: str, options: list[str] | tuple[str, ...]) -> str:
    """' (did you mean 'x'?)' for the option closest to ``word``, or ''."""
    prefixed = [o for o in options if o.startswith(word) or word.startswith(o)]
    close = prefixed or difflib.get_close_matches(word, options, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
