"""Text multi-label classification: any number of labels per text or text pair (topics, tags, intents)."""

from __future__ import annotations

from ftcli.config.schemas import TextMultiLabelConfig
from ftcli.tasks.multilabel import MultiLabel
from ftcli.tasks.text import TextTask


class TextMultiLabel(MultiLabel, TextTask):
    schema = TextMultiLabelConfig
