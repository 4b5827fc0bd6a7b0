"""Sharded training: ``hardware=cpu_fsdp`` (FSDP2 over 2 gloo processes) is the run one process makes at
the same global batch, its checkpoints hold the whole model, and a killed run resumes to the same weights.

The fast tests check the pieces in this process (the plugin, which layers shard, how checkpoints gather);
the slow ones launch real 2-process runs and compare them with one process, with dropout off so that the
two runs differ only by the order of floating-point sums.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers.runs import FP32, ROOT, TINY, ftcli, tiny_classifier

NO_DROPOUT = [
    "+model.config_overrides.hidden_dropout_prob=0",
    "+model.config_overrides.attention_probs_dropout_prob=0",
    "model.classifier_dropout=0",
]
# 2 processes × 16 = 1 process × 32: the same global batches, hence the same optimizer steps
ONE, SHARDED = ["hardware=cpu", "trainer.batch_size=32"], ["hardware=cpu_fsdp", "trainer.batch_size=16"]
SST2_DEV = ROOT / "ftcli" / "assets" / "sst2" / "dev.tsv"


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _losses(run: Path) -> list[float]:
    return [r["loss"] for r in _records(run) if "loss" in r and "split" not in r]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def _train(run: Path, cache_dir: Path, *overrides: str) -> dict:
    r = ftcli("train", *overrides, f"hydra.run.dir={run}", env={"FTCLI_CACHE_DIR": str(cache_dir)})
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads((run / "metrics.json").read_text())


# ---- the pieces, in this process ---------------------------------------------------------------


@pytest.mark.parametrize(("sharding", "reshard"), [("FULL_SHARD", True), ("SHARD_GRAD_OP", False)])
def test_the_plugin_is_fsdp2_with_sharded_resumable_state(compose, sharding, reshard) -> None:
    from ftcli.config.validate import validate
    from ftcli.runtime.sharding import fsdp_plugin

    cfg = compose("hardware=cpu_fsdp", f"hardware.fsdp_sharding={sharding}")
    validate(cfg)  # FSDP on CPU processes is a valid choice
    plugin = fsdp_plugin(cfg.hardware)
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is reshard
    assert plugin.state_dict_type.name == "SHARDED_STATE_DICT"
    assert plugin.mixed_precision_policy.param_dtype is None  # fp32 weights, the one-process autocast


def test_each_transformer_layer_is_a_shard_unit_but_not_the_embeddings(tmp_path) -> None:
    from ftcli.runtime.sharding import layer_classes

    model, _ = tiny_classifier(["a fine film", "a dull film"] * 20, tmp_path)
    # BERT names BertEmbeddings and BertLayer as unsplittable; the embeddings hold the input embedding
    # table, which Accelerate shards on its own (a weight in two shard units fails)
    assert layer_classes(model) == ["BertLayer"]


def test_the_blueprint_costs_no_memory_and_takes_the_gathered_weights(tmp_path) -> None:
    from ftcli.runtime.sharding import meta_copy

    model, _ = tiny_classifier(["a fine film", "a dull film"] * 20, tmp_path)
    blueprint = meta_copy(model)
    assert all(p.is_meta for p in blueprint.parameters())
    pairs = zip(blueprint.parameters(), model.parameters(), strict=True)
    assert all(p.requires_grad == q.requires_grad for p, q in pairs)
    assert not any(p.is_meta for p in model.parameters())  # the model itself is untouched
    filled = meta_copy(blueprint)
    filled.load_state_dict(model.state_dict(), strict=True, assign=True)  # what Gathered.gather does
    pairs = zip(filled.state_dict().values(), model.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


class _Sharded:
    """A stand-in for sharding.Gathered: every process must call gather(); only the main one gets a model."""

    collective = True

    def __init__(self, model, main: bool) -> None:
        self.model, self.main, self.calls = model, main, 0

    def gather(self):
        self.calls += 1
        return self.model if self.main else None


@pytest.mark.parametrize("main", [True, False])
def test_every_process_gathers_a_sharded_model_and_only_the_main_one_writes(tmp_path, main) -> None:
    from ftcli.config.schemas import StrategyConfig
    from ftcli.models.architectures import Roles
    from ftcli.training.checkpoint import Keeper
    from ftcli.training.strategies.base import Strategy

    model, tok = tiny_classifier(["a fine film", "a dull film"] * 20, tmp_path / "tok")
    weights = _Sharded(model, main)
    keeper = Keeper(None, tmp_path, weights, tok, Strategy(StrategyConfig(), Roles(())), None, True, {}, main)
    keeper.best({"step": 1, "accuracy": 0.5})
    keeper.last({"step": 1}, {"step": 2})  # the last evaluation was not the best: written, gathered again
    assert weights.calls == 2
    assert (tmp_path / "checkpoints" / "best" / "model.safetensors").is_file() == main
    assert (tmp_path / "checkpoints" / "last" / "model.safetensors").is_file() == main


def test_an_unsharded_model_is_read_by_the_main_process_alone(tmp_path) -> None:
    from ftcli.config.schemas import StrategyConfig
    from ftcli.models.architectures import Roles
    from ftcli.runtime.sharding import Whole
    from ftcli.training.checkpoint import Keeper
    from ftcli.training.strategies.base import Strategy

    model, tok = tiny_classifier(["a fine film", "a dull film"] * 20, tmp_path / "tok")
    whole = Whole(model)
    whole.gather = lambda: pytest.fail("a process other than the main one read the model")  # type: ignore[method-assign]
    keeper = Keeper(None, tmp_path, whole, tok, Strategy(StrategyConfig(), Roles(())), None, True, {}, False)
    keeper.best({"step": 1})
    keeper.last({"step": 1}, {"step": 1})
    assert not (tmp_path / "checkpoints").exists()


# ---- real 2-process runs ------------------------------------------------------------------------

PLAIN_ACCURACY = """
import csv, json, sys
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
path, dev = sys.argv[1], sys.argv[2]
model = AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=True).eval()
tokenizer = AutoTokenizer.from_pretrained(path)
rows = list(csv.DictReader(open(dev), delimiter="\\t", quoting=csv.QUOTE_NONE))
right = 0
with torch.inference_mode():
    for i in range(0, len(rows), 64):
        chunk = rows[i : i + 64]
        enc = tokenizer([r["sentence"] for r in chunk], padding=True, truncation=True, return_tensors="pt")
        pred = model(**enc).logits.argmax(-1).tolist()
        names = [model.config.id2label[p] for p in pred]
        right += sum(n == ("positive" if r["label"] == "1" else "negative") for n, r in zip(names, chunk))
print(json.dumps({"accuracy": right / len(rows), "n": len(rows)}))
"""


@pytest.mark.slow
def test_fsdp_is_the_one_process_run_and_its_best_checkpoint_gives_the_reported_accuracy(tmp_path, cache_dir) -> None:
    """tiny, 2000 examples, 2 epochs: the same optimizer steps, losses equal step by step (to float
    rounding), accuracy within 0.5 points; ``checkpoints/best`` gives the run's accuracy in ftcli eval and
    in plain transformers."""
    common = [
        "model=tiny",
        "strategy=full",
        "dataset.max_train_samples=2000",
        "dataset.max_eval_samples=872",  # the whole validation file: plain transformers reads the same rows
        "trainer.epochs=2",
        "trainer.log_every_steps=1",
        FP32,
        *NO_DROPOUT,
    ]
    one = _train(tmp_path / "one", cache_dir, *common, *ONE)
    sharded = _train(tmp_path / "fsdp", cache_dir, *common, *SHARDED)
    a, b = _losses(tmp_path / "one"), _losses(tmp_path / "fsdp")
    worst = max(abs(x - y) for x, y in zip(a, b, strict=True))
    accuracy = f"{one['accuracy']:.4f}/{sharded['accuracy']:.4f}"
    print(f"steps {len(a)}/{len(b)} · accuracy {accuracy} · loss |Δ| ≤ {worst:.2e}")
    assert len(a) == len(b) == 126  # ceil(2000 / 32) × 2
    assert worst < 1e-3
    assert abs(one["accuracy"] - sharded["accuracy"]) <= 0.005
    best = tmp_path / "fsdp" / "checkpoints" / "best"
    assert _max_difference(_weights(tmp_path / "one" / "checkpoints" / "best"), _weights(best)) < 1e-3

    r = ftcli("eval", f"checkpoint={tmp_path / 'fsdp'}", "hardware=cpu", FP32, "eval.bootstrap=0", "eval.plots=false",
              f"hydra.run.dir={tmp_path / 'eval'}", env={"FTCLI_CACHE_DIR": str(cache_dir)})  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"accuracy {sharded['accuracy']:.4f}" in r.stdout
    plain = subprocess.run(
        [sys.executable, "-c", PLAIN_ACCURACY, str(best), str(SST2_DEV)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": ""},  # plain transformers, not ftcli
        timeout=300,
    )
    assert plain.returncode == 0, plain.stderr[-3000:]
    got = json.loads(plain.stdout.strip().splitlines()[-1])
    assert got["n"] == 872 and abs(got["accuracy"] - sharded["accuracy"]) < 1e-9


# Short runs where the strategy's particular path runs: the deferred best head on cached features,
# LoRA merged (and its adapter files) from gathered weights, unfreezing mid-run, L2-SP's θ0 sharded.
STRATEGIES = {
    "feature_extract": ["strategy=feature_extract"],
    "lora": ["strategy=lora", "strategy.dropout=0", "strategy.save_adapter=true"],
    "gradual_unfreeze": ["strategy=gradual_unfreeze", "strategy.unfreeze_every=0.25"],
    # SGD: Adam would blow the 1e-9 rounding of near-zero gradients up to lr-sized steps in either run
    "partial_l2sp": [
        "strategy=partial",
        "strategy.unfreeze_layers=1",
        "strategy.regularization=l2sp",
        "strategy.reg_lambda=1.0",
        "strategy.optimizer=sgd",
        "strategy.lr=0.1",
    ],
}


@pytest.mark.slow
@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_each_strategy_trains_under_fsdp_as_in_one_process(tmp_path, cache_dir, strategy) -> None:
    common = [
        "model=tiny",
        "dataset.max_train_samples=256",
        "dataset.max_eval_samples=64",
        "trainer.epochs=1",
        "trainer.eval_every_steps=3",
        "trainer.log_every_steps=1",
        FP32,
        *NO_DROPOUT,
        *STRATEGIES[strategy],
    ]
    one = _train(tmp_path / "one", cache_dir, *common, *ONE)
    sharded = _train(tmp_path / "fsdp", cache_dir, *common, *SHARDED)
    assert one["accuracy"] == sharded["accuracy"] and one["trainable_params"] == sharded["trainable_params"]
    for name in ("best", "last"):
        a, b = (_weights(tmp_path / run / "checkpoints" / name) for run in ("one", "fsdp"))
        assert _max_difference(a, b) < 1e-5, name
    if strategy == "lora":  # peft's files, from the gathered (unmerged) model
        adapter = tmp_path / "fsdp" / "checkpoints" / "best" / "adapter" / "adapter_model.safetensors"
        from safetensors.torch import load_file

        assert any("lora_A" in k for k in load_file(str(adapter))), adapter


@pytest.mark.slow
def test_kill_9_of_an_fsdp_run_then_resume_reaches_the_uninterrupted_weights(tmp_path, cache_dir) -> None:
    """kill -9 of the whole run (ftcli, the launcher and both workers) once a sharded state exists, then
    ``resume=`` (killed again at random, resumed again) ends with the weights of a run never stopped."""
    from ftcli.training.state import state_folders

    args = [
        *TINY,
        *SHARDED,
        "strategy=full",
        "trainer.max_steps=60",
        "trainer.save_every_steps=10",
        "trainer.eval_every_steps=20",
    ]
    env = {**os.environ, "FTCLI_CACHE_DIR": str(cache_dir)}

    def start(extra: list[str]) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "ftcli.cli", "train", *extra]
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill(p: subprocess.Popen) -> None:
        import psutil

        # the launcher and the workers too (they run in sessions of their own), as a lost node would
        for proc in [psutil.Process(p.pid), *psutil.Process(p.pid).children(recursive=True)]:
            proc.send_signal(signal.SIGKILL)
        p.wait()

    ref, run = tmp_path / "ref", tmp_path / "killed"
    t0 = time.perf_counter()
    p = start([*args, f"hydra.run.dir={ref}"])
    assert p.wait(timeout=900) == 0
    full = time.perf_counter() - t0
    rng = random.Random(int(os.environ.get("FTCLI_KILL_SEED", "0")))
    kills = starts = resumed = 0
    while not (run / "metrics.json").is_file():
        starts += 1
        assert starts <= 8, "the run never finished"
        resumable = bool(state_folders(run))
        resumed += resumable
        p = start([f"resume={run}"] if resumable else [*args, f"hydra.run.dir={run}"])
        if kills < 2:
            if not resumable:  # a fresh start dies once its first sharded state is complete
                while not state_folders(run) and p.poll() is None:
                    time.sleep(0.05)
                time.sleep(rng.uniform(0.0, 2.0))
            else:
                time.sleep(rng.uniform(0.5, 1.0) * full)
            if p.poll() is None:
                kill(p)
                kills += 1
                continue
        assert p.wait(timeout=900) == 0
    assert kills >= 1 and resumed >= 1
    a, b = _weights(ref / "checkpoints" / "last"), _weights(run / "checkpoints" / "last")
    different = [k for k in a if not torch.equal(a[k], b[k])]
    print(f"{kills} kills, {starts} starts; tensors compared: {len(a)}, different: {len(different)}")
    assert a.keys() == b.keys() and not different, different[:5]
    logged = [[(r["step"], r.get("split")) for r in _records(d)] for d in (ref, run)]
    assert logged[0] == logged[1]  # every line logged once, as by the run never stopped


@pytest.mark.slow
def test_resume_of_a_sharded_state_saved_after_unfreezing_is_bit_identical(tmp_path, cache_dir) -> None:
    """lp_ft under FSDP, resumed from the state of step 6 (the backbone unfroze at step 3; the pooler, unused
    by the mean-pooled head, never had optimizer state): the same final weights as the run never stopped."""
    import shutil

    args = [
        *TINY,
        *SHARDED,
        "strategy=lp_ft",
        "dataset.max_train_samples=192",
        "trainer.epochs=2",
        "trainer.log_every_steps=1",
        "trainer.save_every_steps=3",
        "trainer.keep_checkpoints=10",
    ]
    full, cut = tmp_path / "full", tmp_path / "cut"
    _train(full, cache_dir, *args)
    (cut / "state").mkdir(parents=True)
    shutil.copy(full / "config.yaml", cut)
    shutil.copytree(full / "state" / "step_00000006", cut / "state" / "step_00000006")
    log = [json.dumps(r) for r in _records(full) if r["step"] <= 6]
    (cut / "metrics.jsonl").write_text("\n".join(log) + "\n")
    r = ftcli("train", f"resume={cut}", env={"FTCLI_CACHE_DIR": str(cache_dir)})
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = _weights(full / "checkpoints" / "last"), _weights(cut / "checkpoints" / "last")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["step"] for r in _records(cut) if "loss" in r and "split" not in r] == list(range(1, 13))


DEEPSPEED = ["hardware=deepspeed", "hardware.accelerator=cpu", "hardware.num_processes=2", "hardware.cpu_threads=1"]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="deepspeed is not installed")
@pytest.mark.parametrize("stage", [1, 2])
def test_deepspeed_zero_on_cpu_is_the_one_process_run_and_its_checkpoint_gives_its_accuracy(
    tmp_path, cache_dir, stage
) -> None:
    common = [
        "model=tiny",
        "strategy=full",
        "dataset.max_train_samples=512",
        "dataset.max_eval_samples=200",
        "trainer.epochs=1",
        "trainer.log_every_steps=1",
        FP32,
        *NO_DROPOUT,
    ]
    one = _train(tmp_path / "one", cache_dir, *common, *ONE)
    ds = _train(
        tmp_path / "ds", cache_dir, *common, *DEEPSPEED, f"hardware.zero_stage={stage}", "trainer.batch_size=16"
    )
    a, b = _losses(tmp_path / "one"), _losses(tmp_path / "ds")
    assert len(a) == len(b) == 16 and max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-4
    assert one["accuracy"] == ds["accuracy"]
    best = tmp_path / "ds" / "checkpoints" / "best"
    assert _max_difference(_weights(tmp_path / "one" / "checkpoints" / "best"), _weights(best)) < 1e-4
    r = ftcli("eval", f"checkpoint={best}", "hardware=cpu", FP32, "eval.bootstrap=0", "eval.plots=false",
              f"hydra.run.dir={tmp_path / 'eval'}", env={"FTCLI_CACHE_DIR": str(cache_dir)})  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"accuracy {ds['accuracy']:.4f}" in r.stdout
