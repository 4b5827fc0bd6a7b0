"""Packed rows give the unpacked loss, logits and gradients: attention never crosses examples (Llama and GPT-2)."""

from __future__ import annotations

import random
from typing import Any

import pytest
import torch

from ftcli.data.packing import IGNORE, collate_packed, collate_padded, pack, pack_lengths, padding_share

VOCAB, PAD = 61, 0


def tiny(kind: str, attention: str) -> Any:
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

    torch.manual_seed(0)
    if kind == "llama":
        config: Any = LlamaConfig(
            vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, use_cache=True,
        )  # fmt: skip
    else:
        config = GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64, use_cache=True)
    config._attn_implementation = attention
    return AutoModelForCausalLM.from_config(config).eval()


def examples(n: int, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """Random examples of 2–20 tokens; a random-length prompt learns nothing, the rest learns."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        ids = [rng.randrange(1, VOCAB) for _ in range(rng.randint(2, 20))]
        prompt = rng.randint(0, len(ids) - 1)
        out.append((ids, [IGNORE] * prompt + ids[prompt:]))
    return out


def test_best_fit_by_hand() -> None:
    # longest first: 5 opens a bin (room 1), 4 another (room 2), 3 a third; 2 fills the 4's bin, 1 the 5's
    assert pack_lengths([5, 3, 4, 2, 1], 6) == [[0, 4], [2, 3], [1]]
    with pytest.raises(ValueError, match="example 1 has 7 tokens"):
        pack_lengths([2, 7], 6)


def test_every_example_once_and_rows_within_length() -> None:
    data = examples(200, seed=1)
    rows = pack(data, 48)
    assert sorted(i for row in rows for i in row.examples) == list(range(200))
    assert all(len(row.input_ids) <= 48 for row in rows)
    assert len(rows) == -(-sum(len(ids) for ids, _ in data) // 48)  # as few rows as the tokens allow, here
    row = rows[0]
    first, second = (data[i] for i in row.examples[:2])
    n = len(first[0])
    assert row.input_ids[: n + len(second[0])] == first[0] + second[0]
    assert row.position_ids[n - 1 : n + 2] == [n - 1, 0, 1]
    assert row.labels[: n + 1] == [IGNORE, *first[1][1:], IGNORE]


def test_padding_share_by_hand() -> None:
    assert padding_share([[3, 1], [2, 2]]) == pytest.approx(1 - 8 / 10)
    assert padding_share([[4], [4, 4]]) == 0.0


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_packed_equals_unpacked(kind: str, attention: str) -> None:
    model = tiny(kind, attention)
    data = examples(12)
    rows = pack(data, 40)
    assert any(len(row.examples) > 2 for row in rows)

    padded = collate_padded(data, PAD)
    unpacked = model(**padded)
    packed_batch = collate_packed(rows, PAD)
    assert "attention_mask" not in packed_batch
    packed = model(**packed_batch, use_cache=False)
    torch.testing.assert_close(packed.loss, unpacked.loss, rtol=1e-5, atol=1e-6)

    # each example's logits, token by token, are those it gets alone
    for r, row in enumerate(rows):
        start = 0
        for i in row.examples:
            n = len(data[i][0])
            torch.testing.assert_close(
                packed.logits[r, start : start + n], unpacked.logits[i, :n], rtol=1e-5, atol=1e-5
            )
            start += n

    # gradients too (what training sees)
    unpacked.loss.backward()
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model(**packed_batch, use_cache=False).loss.backward()
    for got, want in zip((p.grad for p in model.parameters()), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_the_test_sees_attention_across_examples() -> None:
    """Concatenated without restarting positions, the examples see each other and the logits move."""
    model = tiny("llama", "sdpa")
    batch = collate_packed(pack(examples(12), 40), PAD)
    packed = model(**batch, use_cache=False).logits
    batch["position_ids"] = torch.arange(batch["input_ids"].shape[1]).expand_as(batch["input_ids"])
    leaked = model(**batch, use_cache=False).logits
    assert (leaked - packed).abs().max() > 0.05


def test_padding_after_rows_learns_nothing() -> None:
    model = tiny("llama", "sdpa")
    rows = pack(examples(5), 64)
    short = collate_packed(rows, PAD)
    wide = collate_packed(rows, PAD, pad_to=64)
    assert [len(row.input_ids) for row in rows] == [63, 14]
    assert wide["input_ids"].shape[1] == 64 and wide["position_ids"][1, 14:].tolist() == list(range(50))
    torch.testing.assert_close(
        model(**wide, use_cache=False).loss, model(**short, use_cache=False).loss, rtol=1e-5, atol=1e-6
    )
