"""Text classification: one label per text or text pair (SST-2, any CSV/hub set)."""

from __future__ import annotations

from ftcli.config.schemas import TextClassificationConfig
from ftcli.tasks.classification import Classification
from ftcli.tasks.text import TextTask


class TextClassification(Classification, TextTask):
    schema = TextClassificationConfig
