"""Text regression: one number per text or text pair (STS-B-style similarity, ratings, scores)."""

from __future__ import annotations

from ftcli.config.schemas import TextRegressionConfig
from ftcli.tasks.regression import Regression
from ftcli.tasks.text import TextTask


class TextRegression(Regression, TextTask):
    schema = TextRegressionConfig
