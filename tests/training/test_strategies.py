"""Strategies on the tiny model: what trains (exact counts), what stays bit-identical, LLRD's learning
rates, L2-SP's pull toward θ0, and LoRA checkpoints that plain transformers loads."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers.runs import TINY
from helpers.spy import Spy

from ftcli.models.architectures import depth_map, standard_roles
from ftcli.train import train
from ftcli.training.strategies.lora import LoraStrategy

# The tiny BERT (configs/model/tiny.yaml): hidden H=64, intermediate FF=128, 2 layers, 2 labels.
H, FF = 64, 128
HEAD = H * 2 + 2  # ftcli's pooled head: Linear(H, 2)
POOLER = H * H + H  # BertModel's pooler (pretrained, trains with the head)
LAYER = 4 * (H * H + H) + 2 * (2 * H) + (H * FF + FF) + (FF * H + H)  # q,k,v,o + 2 LayerNorms + MLP
LAYER_BIASES = 4 * H + 2 * H + FF + H  # q,k,v,o + LayerNorm biases + MLP biases
LORA_R8 = 8 * (4 * (H + H) + (H + FF) + (FF + H))  # r·(in + out) on q,k,v,o, intermediate, output per layer
SMALL = [*TINY, "dataset.max_train_samples=128", "dataset.max_eval_samples=32"]  # 4 steps: enough to move


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["strategy=feature_extract"], lambda total: HEAD),
        (["strategy=full"], lambda total: total),
        (["strategy=partial", "strategy.unfreeze_layers=1"], lambda total: HEAD + POOLER + LAYER),
        (["strategy=partial", "strategy.unfreeze_layers=0"], lambda total: HEAD + POOLER),
        (["strategy=bitfit"], lambda total: HEAD + 2 * LAYER_BIASES + H + H),  # + embedding LN, pooler biases
        (["strategy=lora"], lambda total: HEAD + LORA_R8 * 2),
        (["strategy=gradual_unfreeze"], lambda total: HEAD + POOLER),  # stage 0: head (and pooler)
        (["strategy=lp_ft"], lambda total: HEAD),  # linear probing first
    ],
    ids=lambda x: x[0] if isinstance(x, list) else "",
)
def test_trainable_counts_are_exact(compose, overrides, expected) -> None:
    result = train(compose(*TINY, *overrides, "trainer.dry_run=true"))
    assert result["trainable_params"] == expected(result["total_params"])
    assert result["trainable_pct"] == pytest.approx(100 * result["trainable_params"] / result["total_params"])


def test_lora_total_counts_the_adapters(compose) -> None:
    full = train(compose(*TINY, "strategy=full", "trainer.dry_run=true"))
    lora = train(compose(*TINY, "strategy=lora", "trainer.dry_run=true"))
    assert lora["total_params"] == full["total_params"] + 2 * LORA_R8


@pytest.mark.parametrize("strategy", ["partial", "bitfit", "lora"])
def test_frozen_parameters_are_bit_identical_after_training(compose, monkeypatch, strategy) -> None:
    spy = Spy(monkeypatch)
    train(
        compose(
            *SMALL,
            f"strategy={strategy}",
            "strategy.unfreeze_layers=1" if strategy == "partial" else "strategy.lr=1e-2",
            "trainer.save_checkpoints=false",
        )
    )
    frozen = trained = 0
    for name, p in spy.model.named_parameters():
        if name not in spy.before:
            continue  # LoRA's own matrices did not exist before setup
        if p.requires_grad:
            trained += not torch.equal(p, spy.before[name])
        else:
            assert torch.equal(p, spy.before[name]), name
            frozen += 1
    assert frozen > 0 and trained > 0


def test_gradual_unfreeze_keeps_waiting_groups_untouched_and_logs_changes(compose, monkeypatch, tmp_path) -> None:
    spy = Spy(monkeypatch)
    # 4 steps; a new group every quarter epoch (each step): by the end all 3 groups below the head train.
    result = train(
        compose(*SMALL, "strategy=gradual_unfreeze", "strategy.unfreeze_every=0.25", "trainer.save_checkpoints=false")
    )
    assert result["trainable_params"] == HEAD + POOLER
    assert result["trainable_params_final"] == result["total_params"]
    log = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    counts = [json.loads(x)["trainable_params"] for x in log if "trainable_params" in x]
    assert counts == sorted(counts) and len(counts) == 3  # top layer, layer 0, embeddings
    # parameters frozen until late still moved only once unfrozen: everything trained in the end
    emb = "backbone.embeddings.word_embeddings.weight"
    assert not torch.equal(dict(spy.model.named_parameters())[emb], spy.before[emb])


def test_lp_ft_probes_then_fine_tunes(compose, monkeypatch) -> None:
    spy = Spy(monkeypatch)
    result = train(compose(*SMALL, "strategy=lp_ft", "trainer.save_checkpoints=false"))
    assert result["trainable_params"] == HEAD
    assert result["trainable_params_final"] == result["total_params"]
    groups = spy.strategy.param_groups(spy.model)
    assert {g["lr"] for g in groups} == {2e-3, 1e-3}  # head_lr for the head, the model's lr for the rest


def test_layer_lr_decay_gives_each_layer_its_learning_rate(compose, monkeypatch) -> None:
    spy = Spy(monkeypatch)
    train(compose(*TINY, "strategy=full", "strategy.lr=1e-3", "strategy.layer_lr_decay=0.5", "trainer.dry_run=true"))
    lr_of = {id(p): g["lr"] for g in spy.strategy.param_groups(spy.model) for p in g["params"]}
    named = dict(spy.model.named_parameters())
    expect = {
        "head.out.weight": 1e-3,
        "backbone.pooler.dense.weight": 1e-3,
        "backbone.encoder.layer.1.attention.self.query.weight": 1e-3,  # the top layer: the full lr
        "backbone.encoder.layer.0.attention.self.query.weight": 5e-4,
        "backbone.embeddings.word_embeddings.weight": 2.5e-4,  # one factor below layer 0
    }
    for name, lr in expect.items():
        assert lr_of[id(named[name])] == pytest.approx(lr), name
    assert len(lr_of) == len(named)  # every parameter in exactly one group
    # partial: frozen layers are not in the optimizer; decay still counts from the top
    spy2 = Spy(monkeypatch)
    train(
        compose(
            *TINY,
            "strategy=partial",
            "strategy.unfreeze_layers=1",
            "strategy.lr=1e-3",
            "strategy.layer_lr_decay=0.5",
            "trainer.dry_run=true",
        )
    )
    lrs = sorted({g["lr"] for g in spy2.strategy.param_groups(spy2.model)})
    assert lrs == [1e-3]


def _distance(model, before) -> float:
    return sum(float((p.detach() - before[n]).pow(2).sum()) for n, p in model.named_parameters()) ** 0.5


def test_l2sp_keeps_weights_closer_to_the_pretrained_ones(compose, monkeypatch) -> None:
    runs = {}
    for reg in ("none", "l2sp"):
        spy = Spy(monkeypatch)
        train(
            compose(
                *SMALL,
                "strategy=full",
                f"strategy.regularization={reg}",
                "strategy.reg_lambda=1.0",
                "trainer.save_checkpoints=false",
            )
        )
        runs[reg] = _distance(spy.model, spy.before)
        if reg == "l2sp":  # anchors only for pretrained weights, kept in their own dtype
            anchored = {id(p) for p, _ in spy.strategy.theta0}
            assert all(p0.dtype == p.dtype for p, p0 in spy.strategy.theta0)
            assert id(spy.model.head.out.weight) not in anchored
            assert len(anchored) + len(spy.strategy.new_params) == len(list(spy.model.parameters()))
    assert runs["l2sp"] < runs["none"]


def test_depth_map_reads_every_architectures_layer_names() -> None:
    from transformers import AutoConfig, AutoModelForSequenceClassification

    small = {
        "bert": dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64),
        "roberta": dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64),
        "distilbert": dict(dim=32, n_layers=3, n_heads=2, hidden_dim=64),
        "gpt2": dict(n_embd=32, n_layer=3, n_head=2, pad_token_id=0),
    }
    heads = {"bert": "classifier", "roberta": "classifier", "distilbert": "pre_classifier", "gpt2": "score"}
    for model_type, sizes in small.items():
        model = AutoModelForSequenceClassification.from_config(
            AutoConfig.for_model(model_type, vocab_size=100, **sizes)
        )
        roles = standard_roles(model)
        depth, layers = depth_map(model, roles)
        assert layers == 3, model_type
        assert {d for n, d in depth.items() if ".2." in n} == {3}, model_type  # top layer
        assert all(d == 4 for n, d in depth.items() if n.startswith(heads[model_type])), model_type
        assert min(depth.values()) == 0, model_type  # embeddings
        lora = LoraStrategy(_lora_cfg(), roles)
        lora.setup(model)
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        assert any(n.startswith(heads[model_type]) for n in trainable), model_type  # the head trains
        assert all(
            "lora_" in n
            or depth_map(model, roles)[0][n] == 4
            and not n.startswith(("bert.", "roberta.", "distilbert.", "transformer."))
            for n in trainable
        ), model_type


def _lora_cfg():
    from omegaconf import OmegaConf

    from ftcli.config.schemas import LoraConfig

    cfg = OmegaConf.structured(LoraConfig)
    cfg.name, cfg.lr = "lora", 1e-3
    return cfg


@pytest.mark.parametrize("pooling", ["mean", pytest.param("native", marks=pytest.mark.slow)])
def test_merged_lora_checkpoint_loads_in_plain_transformers_and_predicts_as_ftcli(
    compose, monkeypatch, tmp_path, pooling
) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    spy = Spy(monkeypatch)
    train(compose(*SMALL, "strategy=lora", f"model.pooling={pooling}", "strategy.save_adapter=true"))
    best = tmp_path / "run" / "checkpoints" / "last"
    plain = AutoModelForSequenceClassification.from_pretrained(best, trust_remote_code=True).eval()
    assert not any("lora_" in n for n, _ in plain.named_parameters())
    tok = AutoTokenizer.from_pretrained(best)
    texts = ["a gorgeous , witty , seductive movie .", "the plot is nothing but boilerplate", "ok"]
    batch = tok(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        ours = spy.model.eval()(**batch).logits.numpy()
        theirs = plain(**batch).logits.numpy()
    np.testing.assert_allclose(theirs, ours, atol=1e-5)
    # the head trained and was saved (peft's modules_to_save pitfall)
    head = "head.out.weight" if pooling == "mean" else "classifier.weight"
    assert not torch.equal(dict(plain.named_parameters())[head], spy.before[head])
    from safetensors.torch import load_file

    adapter = load_file(str(best / "adapter" / "adapter_model.safetensors"))
    assert any("lora_A" in k for k in adapter) and head in adapter
    assert (best / "adapter" / "adapter_config.json").is_file()


def test_trainable_parameters_without_training_from_the_cli() -> None:
    from helpers.runs import ftcli

    r = ftcli("train", "--cfg", "job", "model=tiny", "strategy=bitfit", *TINY[1:])
    assert r.returncode == 0, r.stderr
    assert "strategy:" in r.stdout and "name: bitfit" in r.stdout  # the config first
    assert f"trainable {HEAD + 2 * LAYER_BIASES + 2 * H:,}" in " ".join(r.stdout.split())
