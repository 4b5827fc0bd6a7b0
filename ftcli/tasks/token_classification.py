"""Token classification: a tag per word, named entities (CoNLL files, JSON(L) token/tag lists, hub sets)."""

from __future__ import annotations

from ftcli.config.schemas import TokenClassificationConfig
from ftcli.tasks.tagging import Tagging
from ftcli.tasks.words import WordsTask


class TokenClassification(Tagging, WordsTask):
    schema = TokenClassificationConfig
