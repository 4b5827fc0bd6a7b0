"""Every architecture family the model group names trains and reloads (random init: no hub here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.runs import TINY

from ftcli.train import train
from ftcli.training.checkpoint import load_checkpoint

# tiny's BERT-named sizes (hidden_size, num_hidden_layers, ...) reach the others through their attribute maps
EXTRA = {"bert": [], "distilbert": ["++model.config_overrides.hidden_dim=128"], "roberta": [], "gpt2": []}


@pytest.mark.parametrize("pooling", ["native", "mean"])
@pytest.mark.parametrize("arch", list(EXTRA))
def test_architecture_trains_saves_and_predicts_the_same_after_reload(compose, arch, pooling) -> None:
    cfg = compose(
        *TINY,
        "strategy=full",
        f"model.name_or_path={arch}",
        *EXTRA[arch],
        f"model.pooling={pooling}",
        "trainer.max_steps=3",
        "dataset.max_eval_samples=32",
    )
    result = train(cfg)
    best = Path(cfg.output_dir) / "checkpoints" / "best"
    saved = json.loads((best / "config.json").read_text())
    assert (saved["model_type"] == "ftcli_pooled") == (pooling != "native")
    model, tok, _ = load_checkpoint(best)
    texts = ["a fine film", "dull , dull , dull and far too long for what it is"]
    batch = tok(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        batched = model.eval()(**batch).logits.numpy()
        alone = np.concatenate([model(**tok([t], return_tensors="pt")).logits.numpy() for t in texts])
    np.testing.assert_allclose(batched, alone, atol=1e-4)  # padding is masked, whatever the architecture
    assert 0.0 <= result["accuracy"] <= 1.0


def test_the_tiny_vocab_is_the_same_in_every_process(tmp_path) -> None:
    """Trained on the same text, the WordPiece vocab must not depend on the process (hash-map order)."""
    import subprocess
    import sys

    code = (
        "import sys; from ftcli.models.wordpiece import train_wordpiece;"
        "texts = [l.split('\\t')[0] for l in open(sys.argv[1]).read().splitlines()[1:2001]];"
        "tok = train_wordpiece(texts, 1000, sys.argv[2]); print(sorted(tok.get_vocab().items()))"
    )
    from ftcli.config.registry import ASSETS_DIR

    data = str(ASSETS_DIR / "sst2" / "train.tsv")
    vocabs = {subprocess.check_output([sys.executable, "-c", code, data, str(tmp_path / str(i))]) for i in range(3)}
    assert len(vocabs) == 1
