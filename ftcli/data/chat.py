"""Rows → token ids and labels for supervised fine-tuning of causal language models.

Three shapes of row: a prompt and a response (columns), a chat conversation (a list of ``{role, content}``
messages), or plain text (continued pre-training, where every token learns). The tokenizer's chat template
writes conversations; the loss covers the assistant turns only (labels are -100 elsewhere) unless
``train_on_prompt``. Which tokens belong to an assistant turn is found from the template itself: the conversation
is rendered up to each turn, and the characters between "prompt so far" and "turn written" are the turn; the
tokens of the whole text that overlap them learn. This needs no ``{% generation %}`` markers in the template
(SmolLM2's has none) and stays right where BPE merges a token across the boundary.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ftcli.config.errors import FtcliError, first_line

Shape = Literal["prompt_response", "messages", "text"]
SHAPES: tuple[Shape, ...] = ("prompt_response", "messages", "text")
ROLES = ("system", "user", "assistant")
IGNORE = -100  # the label value that transformers' causal-LM loss skips
DEFAULT, NONE = "default", "none"  # system_prompt values that are not a prompt themselves
# Rendered in place of a system prompt and cut off again: how "no system prompt" beats a template that inserts a
# default one whenever the conversation has none (SmolLM2's does).
PLACEHOLDER = "FTCLI-SYSTEM-PLACEHOLDER"


@dataclass(frozen=True)
class SftOptions:
    """How rows become training examples.

    Attributes:
        max_length: the longest example in tokens.
        overflow: "truncate" (keep the first ``max_length`` tokens) or "drop" longer examples.
        train_on_prompt: the loss covers every token, not only the response / assistant turns.
        system_prompt: "default" (whatever the template does without one), "none" (no system turn at all), or
            the system prompt itself; a conversation's own system message is kept either way.
        prompt_column, response_column, messages_column, text_column: where each shape's data is.
    """

    max_length: int
    overflow: Literal["truncate", "drop"] = "truncate"
    train_on_prompt: bool = False
    system_prompt: str = DEFAULT
    prompt_column: str = "prompt"
    response_column: str = "response"
    messages_column: str = "messages"
    text_column: str = "text"


@dataclass(frozen=True)
class Example:
    """One training example: ``labels`` is ``input_ids`` with -100 where the loss does not look; ``row`` is 1-based.

    ``input_ids[:prompt_len]`` asks for the row's last answer, whose text is ``reference`` (what generation is
    compared with); a row with no answer to ask for (plain text) has ``prompt_len == len(input_ids)`` and no
    reference."""

    input_ids: list[int]
    labels: list[int]
    row: int
    prompt_len: int = 0
    reference: str = ""


@dataclass
class Encoded:
    """The examples of one file or split, and how many rows did not fit ``max_length``."""

    examples: list[Example] = field(default_factory=list)
    rows: int = 0
    truncated: int = 0
    dropped: int = 0

    def summary(self, max_length: int) -> str:
        """One line for the run's log, e.g. ``1000 rows: 12 truncated to 256 tokens, 0 dropped``."""
        return f"{self.rows} rows: {self.truncated} truncated to {max_length} tokens, {self.dropped} dropped"


def infer_shape(columns: Iterable[str], options: SftOptions, where: str) -> Shape:
    """The shape of a table from its columns: messages, else prompt and response, else text."""
    names = set(columns)
    if options.messages_column in names:
        return "messages"
    if {options.prompt_column, options.response_column} <= names:
        return "prompt_response"
    if options.text_column in names:
        return "text"
    raise FtcliError(
        f"{where}: no column '{options.messages_column}' (chat messages), '{options.prompt_column}' + "
        f"'{options.response_column}' or '{options.text_column}' (plain text); it has {sorted(names)}"
    )


def check_utf8(path: Path) -> None:
    """Raise a one-line FtcliError naming the first line of a text file that is not UTF-8."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as e:
                raise FtcliError(
                    f"{path}: line {number} is not UTF-8 text (byte 0x{line[e.start]:02x} at column {e.start + 1}); "
                    "save the file as UTF-8"
                ) from None


class ChatEncoder:
    """Encodes rows with one tokenizer and one set of options (the template's fixed parts are found once)."""

    def __init__(self, tokenizer: Any, options: SftOptions) -> None:
        self.tokenizer = tokenizer
        self.options = options
        self.has_template = bool(getattr(tokenizer, "chat_template", None))
        # the placeholder system turn as the template writes it, cut off the front again for system_prompt=none
        self.cut = ""
        if self.has_template and options.system_prompt == NONE:
            self.cut = self._render([system(PLACEHOLDER)], False)
            if PLACEHOLDER not in self.cut:
                raise FtcliError("task.system_prompt=none: this chat template drops a system message it is given")

    def encode_rows(
        self,
        rows: Iterable[Mapping[str, Any]],
        where: str,
        shape: Shape | None = None,
        numbers: Sequence[int] | None = None,
    ) -> Encoded:
        """Every row of ``rows`` (a file or split named ``where``) as an example, fitted to ``max_length``.

        ``numbers``: each row's 1-based number in its file (a subset's rows are not 1, 2, 3 …); None: in order.

        Raises:
            FtcliError: one line naming ``where`` and the 1-based row, for the first row that cannot be learned.
        """
        out = Encoded()
        for i, row in enumerate(rows):
            number = numbers[i] if numbers is not None else i + 1
            at = f"row {number} of {where}"
            if shape is None:
                shape = infer_shape(row.keys(), self.options, where)
            ids, labels = self.encode_row(row, shape, at)
            out.rows += 1
            if len(ids) > self.options.max_length:
                if self.options.overflow == "drop":
                    out.dropped += 1
                    continue
                ids, labels = ids[: self.options.max_length], labels[: self.options.max_length]
                out.truncated += 1
            if all(label == IGNORE for label in labels[1:]):  # labels[0] is never predicted: nothing precedes it
                raise FtcliError(
                    f"{at}: nothing left to learn in the first {self.options.max_length} tokens "
                    "(the prompt fills them); shorten it or raise model.max_length"
                )
            prompt, reference = self.last_answer(row, shape, at)
            start = len(prompt) if prompt is not None and ids[: len(prompt)] == prompt else last_run(labels)
            out.examples.append(Example(ids, labels, number, min(start, len(ids)), reference if prompt else ""))
        return out

    def last_answer(self, row: Mapping[str, Any], shape: Shape, where: str) -> tuple[list[int] | None, str]:
        """The token ids that ask for a row's last answer, and that answer: a prompt/response row's prompt and
        response, a conversation up to its last message when that is the assistant's; (None, "") otherwise."""
        o = self.options
        if shape == "text":
            return None, ""
        if shape == "prompt_response":
            return self.prompt_ids(text_of(row, o.prompt_column, where), where), text_of(row, o.response_column, where)
        messages = messages_of(row.get(o.messages_column), where)
        if messages[-1]["role"] != "assistant":
            return None, ""
        return self.prompt_ids(messages[:-1], where), messages[-1]["content"]

    def encode_row(self, row: Mapping[str, Any], shape: Shape, where: str) -> tuple[list[int], list[int]]:
        """One row's token ids and labels, before fitting to ``max_length``."""
        o = self.options
        if shape == "text":
            return self.encode_text(text_of(row, o.text_column, where, required="text"))
        if shape == "messages":
            return self.encode_messages(messages_of(row.get(o.messages_column), where), where)
        prompt = text_of(row, o.prompt_column, where)
        response = text_of(row, o.response_column, where, required="response")
        if not self.has_template:
            return self.encode_plain_pair(prompt, response, where)
        return self.encode_messages([user(prompt), assistant(response)], where)

    def encode_text(self, text: str) -> tuple[list[int], list[int]]:
        """Plain text: every token learns, and the end-of-text token closes the document."""
        ids = list(self.tokenizer(text, add_special_tokens=True)["input_ids"])
        eos = self.tokenizer.eos_token_id
        if eos is not None and (not ids or ids[-1] != eos):
            ids.append(eos)
        return ids, list(ids)

    def encode_plain_pair(self, prompt: str, response: str, where: str) -> tuple[list[int], list[int]]:
        """A prompt and response for a tokenizer with no chat template: the two texts joined, then end-of-text."""
        if self.options.system_prompt not in (DEFAULT, NONE):
            raise FtcliError(f"{where}: task.system_prompt needs a tokenizer with a chat template; this one has none")
        text = prompt + response
        ids, labels = self._label_spans(text, [(len(prompt), len(text))], add_special_tokens=True)
        eos = self.tokenizer.eos_token_id
        if eos is not None:
            ids, labels = [*ids, eos], [*labels, eos]
        return ids, labels

    def encode_messages(self, messages: list[dict[str, str]], where: str) -> tuple[list[int], list[int]]:
        """A conversation through the chat template; the assistant turns learn (everything with train_on_prompt)."""
        if not self.has_template:
            raise FtcliError(f"{where}: chat messages need a tokenizer with a chat template; this one has none")
        messages = self.with_system(messages)
        text = self.render(messages, False, where)
        spans = []
        for k, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            start = self.render(messages[:k], True, where)
            upto = self.render(messages[: k + 1], False, where).rstrip()  # the turn's end token, not the newline
            if not (text.startswith(start) and text.startswith(upto) and len(start) < len(upto)):
                raise FtcliError(
                    f"{where}: the chat template does not write this conversation turn by turn (rendering up to "
                    f"message {k + 1} is not a prefix of the whole), so its assistant turns cannot be found"
                )
            spans.append((len(start), len(upto)))
        return self._label_spans(text, spans, add_special_tokens=False)

    def with_system(self, messages: list[dict[str, str]]) -> list[dict[str, str]]:
        """The conversation with the configured system prompt first, unless it brings its own."""
        chosen = self.options.system_prompt
        if (messages and messages[0]["role"] == "system") or chosen == DEFAULT:
            return messages
        return [system(PLACEHOLDER if chosen == NONE else chosen), *messages]

    def render(self, messages: Sequence[dict[str, str]], generation_prompt: bool, where: str) -> str:
        """The template's text for ``messages`` (with the placeholder system turn cut off for system_prompt=none)."""
        text = self._render(messages, generation_prompt, where)
        if self.cut and messages and messages[0]["content"] == PLACEHOLDER:
            if not text.startswith(self.cut):
                raise FtcliError(f"{where}: task.system_prompt=none: the chat template writes the system turn apart")
            return text[len(self.cut) :]
        return text

    def prompt_ids(self, prompt: str | list[dict[str, str]], where: str = "prompt") -> list[int]:
        """Token ids that ask the model for the next assistant turn (generation, zero-shot scoring)."""
        if isinstance(prompt, str):
            if not self.has_template:
                return list(self.tokenizer(prompt, add_special_tokens=True)["input_ids"])
            prompt = [user(prompt)]
        if not self.has_template:
            raise FtcliError(f"{where}: chat messages need a tokenizer with a chat template; this one has none")
        text = self.render(self.with_system(prompt), True, where)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _render(self, messages: Sequence[dict[str, str]], generation_prompt: bool, where: str = "") -> str:
        try:
            return str(
                self.tokenizer.apply_chat_template(
                    list(messages), tokenize=False, add_generation_prompt=generation_prompt
                )
            )
        except Exception as e:  # a template's own raise_exception(), e.g. "roles must alternate"
            raise FtcliError(f"{where or 'chat template'}: the chat template refuses it ({first_line(e)})") from e

    def _label_spans(
        self, text: str, spans: list[tuple[int, int]], add_special_tokens: bool
    ) -> tuple[list[int], list[int]]:
        """Tokenise ``text`` once; a token learns if its characters overlap one of ``spans``."""
        encoding = self.tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
        ids = list(encoding["input_ids"])
        if self.options.train_on_prompt:
            return ids, list(ids)
        labels = [IGNORE] * len(ids)
        for t, (begin, end) in enumerate(encoding["offset_mapping"]):
            if end > begin and any(end > a and begin < b for a, b in spans):
                labels[t] = ids[t]
        return ids, labels


def last_run(labels: Sequence[int]) -> int:
    """Where the last run of learned tokens starts (a prompt whose tokens merged across the boundary)."""
    end = len(labels)
    while end > 0 and labels[end - 1] == IGNORE:
        end -= 1
    start = end
    while start > 0 and labels[start - 1] != IGNORE:
        start -= 1
    return start


def system(content: str) -> dict[str, str]:
    return {"role": "system", "content": content}


def user(content: str) -> dict[str, str]:
    return {"role": "user", "content": content}


def assistant(content: str) -> dict[str, str]:
    return {"role": "assistant", "content": content}


def text_of(row: Mapping[str, Any], column: str, where: str, required: str = "") -> str:
    """A text cell; empty is an error when ``required`` names what it is (a response, a text), else allowed."""
    value = row.get(column)
    if value is not None and not isinstance(value, str):
        raise FtcliError(f"{where}: column '{column}' holds {type(value).__name__} {value!r:.40}, not text")
    if required and not (value or "").strip():
        raise FtcliError(f"{where}: empty {required} (column '{column}')")
    return value or ""


def messages_of(value: Any, where: str) -> list[dict[str, str]]:
    """A conversation checked: known roles, text contents, a non-empty assistant turn at least once."""
    if not isinstance(value, (list, tuple)) or not value:
        raise FtcliError(f"{where}: messages must be a non-empty list of {{role, content}}, not {value!r:.60}")
    out = []
    for k, message in enumerate(value, start=1):
        role = message.get("role") if isinstance(message, Mapping) else None
        content = message.get("content") if isinstance(message, Mapping) else None
        if role not in ROLES:
            raise FtcliError(f"{where}: message {k} has role {role!r}; a role is one of {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise FtcliError(f"{where}: message {k} ({role}) has content {content!r:.40}, not text")
        if role == "assistant" and not content.strip():
            raise FtcliError(f"{where}: message {k} is an empty response (an assistant turn with no text)")
        out.append({"role": role, "content": content})
    if not any(m["role"] == "assistant" for m in out):
        raise FtcliError(f"{where}: the conversation has no assistant turn, so nothing to learn")
    return out
