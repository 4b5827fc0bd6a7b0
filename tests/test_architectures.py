"""Every architecture family the model group names trains and reloads (random init: no hub here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY

from ftcli.checkpoint import load_checkpoint
from ftcli.train import train

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
