"""Causal-LM supervised fine-tuning through the Task seam, with tiny random Llama / GPT-2 models: a rule learned from
prompts (beating the zero-shot model), eval, predict (prompt= and input=) and chat agreeing with transformers'
text-generation pipeline, packed rows with the padded loss, the strategies' LoRA targets from the architecture table,
QLoRA refused on CPU, bad rows named before anything trains; partial, L2-SP and WiSE-FT from a checkpoint on disk, exact
resume, sweeps ranked by loss, and two processes (DDP, FSDP) training like one."""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers.runs import FP32, compose_cmd, cut_run, train_once
from omegaconf import OmegaConf
from transformers import AutoConfig, AutoModelForCausalLM, pipeline

from ftcli.chat import run_chat
from ftcli.config.errors import FtcliError
from ftcli.config.registry import config_dir
from ftcli.config.schemas import ModelConfig
from ftcli.config.tasks.causal_lm import CausalLMConfig
from ftcli.config.validate import validate
from ftcli.data.answers import PackedRows, collate_packed_rows, collate_train, encoded_columns
from ftcli.data.chat import ChatEncoder
from ftcli.evaluate import run_eval
from ftcli.models import causal
from ftcli.models.architectures import LORA_TARGETS
from ftcli.predict import run_predict
from ftcli.tasks.objectives.sft import NextToken, sft_options
from ftcli.train import train

RED, YELLOW = ("apple", "cherry", "tomato", "strawberry"), ("banana", "lemon", "corn", "mango")


def colour_rows(n: int, seed: int) -> list[dict[str, str]]:
    """Prompts naming a fruit, answered by its colour: a rule only the prompt tells."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        fruit = rng.choice(RED + YELLOW)
        rows.append({"prompt": f"What colour is the {fruit}?", "response": "red" if fruit in RED else "yellow"})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sft")
    write_jsonl(root / "train.jsonl", colour_rows(192, 0))
    write_jsonl(root / "val.jsonl", colour_rows(32, 1))
    write_jsonl(root / "chats.jsonl", [_chat(r) for r in colour_rows(96, 2)])
    write_jsonl(root / "text.jsonl", [{"text": f"the {r['prompt']} {r['response']}"} for r in colour_rows(48, 3)])
    return root


def _chat(row: dict[str, str]) -> dict:
    return {"messages": [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["response"]}]}


def _overrides(data: Path, model: str = "tiny_llama", rows: str = "train.jsonl", val: str = "val.jsonl") -> list[str]:
    return [
        f"model={model}",
        "task=causal_lm",
        "dataset=files",
        f"dataset.train_file={data}/{rows}",
        f"dataset.validation_file={data}/{val}",
        "task.generation.max_new_tokens=4",
        "trainer.batch_size=16",
        "hardware=cpu",
        FP32,
    ]


# a constant step: under a decaying one the tiny model stays on the plateau of always answering the commoner colour
LEARNS = ["strategy=full", "strategy.lr=1e-2", "strategy.schedule=constant"]


@pytest.fixture(scope="module")
def run(data, tmp_path_factory, cache_dir):
    """Tiny GPT-2 (no chat template: prompt and answer joined), the fruit two tokens before the answer."""
    out, _, result = train_once(
        tmp_path_factory, cache_dir, "sft_run", *_overrides(data, "tiny_gpt2"), *LEARNS, "trainer.epochs=8"
    )
    return out, result


@pytest.fixture(scope="module")
def chat_run(data, tmp_path_factory, cache_dir):
    """Tiny Llama with ChatML on chat messages: it learns the answers' form (a colour, then end of turn)."""
    overrides = [*_overrides(data, "tiny_llama", "chats.jsonl"), *LEARNS, "trainer.epochs=6"]
    out, _, result = train_once(tmp_path_factory, cache_dir, "sft_chat", *overrides)
    return out, result


def test_sft_learns_the_rule_the_zero_shot_model_does_not_know(run) -> None:
    _, result = run
    assert result["accuracy"] >= 0.9 and result["scored_accuracy"] >= 0.9, result  # generated and scored
    assert result["zeroshot_accuracy"] <= 0.6 and result["loss"] < result["zeroshot_loss"] / 10
    assert result["exact_match"] >= 0.9 and result["rouge_l"] >= 0.9 and result["perplexity"] < 1.5


def test_eval_predict_and_the_pipeline_agree(run, compose, tmp_path) -> None:
    out, result = run
    metrics = run_eval(compose(f"checkpoint={out}", "hardware=cpu", FP32, config="eval", out=tmp_path / "eval"))
    assert metrics["accuracy"] == pytest.approx(result["accuracy"])
    prompts = [f"What colour is the {f}?" for f in ("lemon", "cherry")]
    pipe = pipeline("text-generation", model=str(out / "checkpoints" / "best"), device="cpu")
    expected = [pipe(p, max_new_tokens=4, do_sample=False, return_full_text=False)[0] for p in prompts]
    assert [e["generated_text"].strip() for e in expected] == ["yellow", "red"]
    one = run_predict(compose_cmd("predict", f"checkpoint={out}", f"prompt={prompts[0]}", "hardware=cpu", out=tmp_path))
    assert one == {"answer": "yellow"}
    src = write_jsonl(tmp_path / "ask.jsonl", [{"prompt": p} for p in prompts])
    dest = tmp_path / "answers.jsonl"
    run_predict(compose_cmd("predict", f"checkpoint={out}", f"input={src}", f"output={dest}", out=tmp_path))
    assert [json.loads(line)["answer"] for line in dest.read_text().splitlines()] == ["yellow", "red"]


def test_chat_keeps_the_conversation_and_ends_on_ctrl_d(chat_run, tmp_path) -> None:
    out, _ = chat_run
    questions, shown = iter(["What colour is the lemon?", "What colour is the cherry?"]), []

    def typed(_: str) -> str:
        line = next(questions, None)
        if line is None:
            raise EOFError  # Ctrl-D
        return line

    cfg = compose_cmd("chat", f"checkpoint={out}", "hardware=cpu", "generation.max_new_tokens=4", out=tmp_path)
    assert run_chat(cfg, typed, shown.append) == {"turns": 2} and shown[-1].strip() == "bye"
    replies = "".join(shown[1:-1]).split(f"{_name(out)}> ")[1:]
    pipe = pipeline("text-generation", model=str(out / "checkpoints" / "best"), device="cpu")
    talk = [{"role": "user", "content": "What colour is the lemon?"}]
    first = pipe(talk, max_new_tokens=4, do_sample=False)[0]["generated_text"][-1]["content"].strip()
    talk += [{"role": "assistant", "content": first}, {"role": "user", "content": "What colour is the cherry?"}]
    second = pipe(talk, max_new_tokens=4, do_sample=False)[0]["generated_text"][-1]["content"].strip()
    assert [r.strip() for r in replies] == [first, second] and first in ("red", "yellow")


def _yaml(path: Path) -> Any:
    """An option's YAML without its defaults list (what Hydra would read)."""
    node = OmegaConf.load(path)
    node.pop("defaults", None)
    return node


def _name(out: Path) -> str:
    return str(OmegaConf.load(out / "config.yaml").model.name)


def test_chat_ends_on_ctrl_c_at_the_prompt(chat_run, tmp_path) -> None:

    def interrupted(_: str) -> str:
        raise KeyboardInterrupt

    shown: list[str] = []
    chat = run_chat(
        compose_cmd("chat", f"checkpoint={chat_run[0]}", "hardware=cpu", out=tmp_path), interrupted, shown.append
    )
    assert chat == {"turns": 0} and shown[-1].strip() == "bye"


@pytest.mark.parametrize("model", ["tiny_llama", "tiny_gpt2"])
def test_packed_rows_give_the_padded_loss_of_every_positions_logits(data, cache_dir, model: str) -> None:
    model_cfg = OmegaConf.merge(OmegaConf.structured(ModelConfig), _yaml(config_dir() / "model" / f"{model}.yaml"))
    model_cfg.max_length = 64
    rows = colour_rows(12, 4)
    tokenizer = causal.load_causal_tokenizer(
        model_cfg, cache_dir, [r["prompt"] + r["response"] for r in colour_rows(192, 0)]
    )
    tokenizer.model_max_length = 64
    cfg = CausalLMConfig(name="causal_lm")
    encoded = ChatEncoder(tokenizer, sft_options(cfg, "text", 64)).encode_rows(rows, "rows")
    columns = encoded_columns(encoded)
    examples = [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]
    net = causal.build_causal_lm(model_cfg, tokenizer, 0, cache_dir).eval()
    padded = collate_train(tokenizer.pad_token_id)(examples)
    packed_rows = PackedRows(columns, 64)
    packed = collate_packed_rows(tokenizer.pad_token_id)([packed_rows[i] for i in range(len(packed_rows))])
    assert len(packed_rows) <= len(rows) / 2  # rows really were packed
    objective = NextToken(cfg)
    with torch.no_grad():
        loss = objective.loss(net, padded).item()  # logits only at the answers' positions
        every = net(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"]).logits[:, :-1]
        by_hand = torch.nn.functional.cross_entropy(every.flatten(0, 1), padded["labels"][:, 1:].flatten())
        assert loss == pytest.approx(by_hand.item(), abs=1e-5)
        assert objective.loss(net, packed).item() == pytest.approx(loss, abs=1e-5)


def _model_schema():

    return ModelConfig


@pytest.mark.parametrize("model", ["tiny_llama", "tiny_gpt2"])
def test_lora_adapts_the_architecture_tables_layers(data, compose, model: str) -> None:
    cfg = compose(*_overrides(data, model), "strategy=lora", "trainer.dry_run=true")
    result = train(cfg)
    arch = AutoConfig.for_model(cfg.model.name_or_path, vocab_size=cfg.model.vocab_size, **cfg.model.config_overrides)
    plain = AutoModelForCausalLM.from_config(arch)
    targets = LORA_TARGETS[arch.model_type]
    shapes = [m.weight.shape for n, m in plain.named_modules() if n.split(".")[-1] in targets]
    assert shapes and result["trainable_params"] == sum(cfg.strategy.r * (a + b) for a, b in shapes)


@pytest.mark.parametrize(
    ("strategy", "model", "message"),
    [
        ("bitfit", "tiny_llama", "strategy=bitfit: no parameter of LlamaForCausalLM would train"),
        ("lp_ft", "tiny_llama", "strategy=lp_ft: this model has no new head to probe first"),
    ],
)
def test_strategies_without_meaning_here_are_refused_in_one_line(data, compose, strategy, model, message) -> None:
    with pytest.raises(FtcliError, match=message) as e:
        train(compose(*_overrides(data, model), f"strategy={strategy}", "trainer.dry_run=true"))
    assert "\n" not in str(e.value)


def test_qlora_is_refused_without_a_gpu_in_one_line(data, compose) -> None:
    with pytest.raises(FtcliError, match="model.quantization=4bit: bitsandbytes quantisation") as e:
        validate(compose(*_overrides(data), "strategy=lora", "model.quantization=4bit"))
    assert "\n" not in str(e.value)


def test_qlora_config_is_nf4_with_double_quantisation(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: object() if name == "bitsandbytes" else real(name)
    )
    q = causal.quantization_config(ModelConfig(name="m", name_or_path="m", quantization="4bit"))
    assert q.load_in_4bit and q.bnb_4bit_quant_type == "nf4" and q.bnb_4bit_use_double_quant
    assert q.bnb_4bit_compute_dtype == torch.bfloat16
    assert causal.quantization_config(ModelConfig(name="m", name_or_path="m")) is None


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "no assistant turn"),
        ({"messages": [{"role": "robot", "content": "hi"}, {"role": "assistant", "content": "x"}]}, "role"),
        ({"prompt": "What colour is it?", "response": " "}, "response"),
        ({"prompt": "colour " * 600, "response": "red"}, "nothing left to learn"),
        (b"\xff\xfe broken", "UTF-8"),
    ],
)
def test_bad_rows_are_named_by_file_and_row_before_anything_trains(data, compose, tmp_path, row, message) -> None:
    good = [_chat(r) if isinstance(row, dict) and "messages" in row else r for r in colour_rows(3, 5)]
    bad = tmp_path / "bad.jsonl"
    write_jsonl(bad, good)
    with bad.open("ab") as f:
        f.write(row + b"\n" if isinstance(row, bytes) else (json.dumps(row) + "\n").encode())
    cfg = compose(*_overrides(data), "strategy=full")
    cfg.dataset.train_file = str(bad)
    with pytest.raises(FtcliError, match=message) as e:
        train(cfg)
    assert "bad.jsonl" in str(e.value) and ("row 4" in str(e.value) or "line 4" in str(e.value)), str(e.value)
    assert "\n" not in str(e.value) and not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize(
    ("rows", "packing"),
    [("train.jsonl", False), ("train.jsonl", True), ("text.jsonl", False)],
)
def test_prompt_response_rows_packed_or_not_and_plain_text_train_a_llama(data, compose, rows, packing) -> None:
    val = "text.jsonl" if rows == "text.jsonl" else "val.jsonl"
    extra = ["dataset.text_column=text"] if rows == "text.jsonl" else []
    overrides = [*_overrides(data, "tiny_llama", rows, val), *extra, f"task.packing={packing}", "trainer.epochs=1"]
    result = train(compose(*overrides, "strategy=full", "model.max_length=128"))
    assert result["loss"] < result["zeroshot_loss"], result


# ---------------------------------------------------------------------------------------------------
# the strategies between full and LoRA, exact resume, sweeps and two processes, on a causal LM


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def _from_chat_run(chat_run, data: Path, *extra: str) -> list[str]:
    """θ0 on disk: the chat run's tiny Llama as the pretrained start, fine-tuned on the prompt/response rows."""
    start = chat_run[0] / "checkpoints" / "best"
    pretrained = ["model.init=pretrained", f"model.name_or_path={start}", "trainer.epochs=2"]
    return [*_overrides(data, "tiny_llama"), *pretrained, "strategy.lr=3e-3", *extra]


def test_partial_trains_the_top_layer_and_nothing_below(chat_run, data, compose, tmp_path) -> None:
    train(compose(*_from_chat_run(chat_run, data, "strategy=partial", "strategy.unfreeze_layers=1")))
    before, after = _weights(chat_run[0] / "checkpoints" / "best"), _weights(tmp_path / "run" / "checkpoints" / "last")
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert {n for n in changed if n.startswith("model.layers.1.")}, changed  # the top layer (of 2) trained
    assert not {n for n in changed if n.startswith(("model.layers.0.", "model.embed_tokens"))}, changed


def test_l2sp_keeps_the_weights_nearer_the_start_than_full(chat_run, data, compose, tmp_path) -> None:
    before = _weights(chat_run[0] / "checkpoints" / "best")
    distance = {}
    for reg in ("none", "l2sp"):
        extra = ["strategy=full", f"strategy.regularization={reg}", "strategy.reg_lambda=10", "strategy.weight_decay=0"]
        cfg = compose(*_from_chat_run(chat_run, data, *extra), out=tmp_path / reg)
        result = train(cfg)
        assert result["loss"] < result["zeroshot_loss"], (reg, result)  # it still learns
        after = _weights(tmp_path / reg / "checkpoints" / "last")
        distance[reg] = sum(float(((after[n] - before[n]) ** 2).sum()) for n in before) ** 0.5
    assert distance["l2sp"] < 0.7 * distance["none"], distance


def test_wise_alpha_zero_keeps_the_start_and_scores_like_the_zero_shot_model(chat_run, data, compose, tmp_path) -> None:
    result = train(compose(*_from_chat_run(chat_run, data, "strategy=full", "strategy.wise_alpha=0")))
    before, after = _weights(chat_run[0] / "checkpoints" / "best"), _weights(tmp_path / "run" / "checkpoints" / "last")
    assert before.keys() == after.keys() and all(torch.equal(before[n], after[n]) for n in before)
    assert result["loss"] == pytest.approx(result["zeroshot_loss"], rel=1e-5), result


@pytest.mark.parametrize("strategy", ["full", pytest.param("lora", marks=pytest.mark.slow)])  # lora: make test-slow
def test_resume_mid_epoch_is_bit_identical(data, compose, tmp_path, strategy: str) -> None:
    """A state saved mid-epoch 0 (copied out of a whole run) resumes to the same final weights and loss."""
    overrides = [*_overrides(data, "tiny_llama"), f"strategy={strategy}", "trainer.epochs=2", "task.baseline=false"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    train(compose(*overrides, "trainer.save_every_steps=2", "trainer.keep_checkpoints=20", out=full))
    cut_run(full, cut, lambda state: state["batch_in_epoch"] < 6)
    train(compose(*_overrides(data, "tiny_llama"), f"resume={cut}", out=tmp_path / "ignored"))
    a, b = _weights(full / "checkpoints" / "last"), _weights(cut / "checkpoints" / "last")
    assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)
    saved = [json.loads((run / "metrics.json").read_text()) for run in (full, cut)]
    assert saved[0]["loss"] == saved[1]["loss"] and saved[0]["step"] == saved[1]["step"] == 24


@pytest.mark.slow
def test_a_sweep_is_ranked_by_validation_loss(data, tmp_path, cache_dir) -> None:
    from helpers.runs import ftcli

    sweep = tmp_path / "sweep"
    r = ftcli("train", "-m", *_overrides(data, "tiny_llama"), "strategy=full", "strategy.lr=1e-4,1e-2",
              "trainer.max_steps=6", "task.baseline=false", "trainer.save_checkpoints=false",
              f"hydra.sweep.dir={sweep}", env={"FTCLI_CACHE_DIR": str(cache_dir), "COLUMNS": "200"})  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 trials (2 completed) · by loss" in " ".join(r.stdout.split())
    rows = list(__import__("csv").DictReader((sweep / "leaderboard.csv").open()))
    losses = [float(row["loss"]) for row in rows]
    assert losses == sorted(losses) and len(losses) == 2  # minimised, best first
    assert rows[0]["strategy.lr"] == "0.01"  # 6 steps at 1e-4 leave the random model where it was


@pytest.mark.slow
@pytest.mark.parametrize("hardware", ["cpu_ddp", "cpu_fsdp"])
def test_two_processes_train_like_one(data, tmp_path, cache_dir, hardware: str) -> None:
    """2 gloo processes × batch 8 against 1 × 16: the same steps, each example once, the same loss per step (to float
    rounding; dropout is off in the tiny Llama), the same final loss."""
    from helpers.runs import ftcli

    results, curves = {}, {}
    for hw, batch in (("cpu", 16), (hardware, 8)):
        run = tmp_path / hw
        overrides = [o for o in _overrides(data, "tiny_llama") if o != "hardware=cpu"]
        r = ftcli("train", *overrides, f"hardware={hw}", f"trainer.batch_size={batch}", "strategy=full",
                  "trainer.epochs=2", "task.baseline=false", "trainer.log_every_steps=1", f"hydra.run.dir={run}",
                  env={"FTCLI_CACHE_DIR": str(cache_dir)})  # fmt: skip
        assert r.returncode == 0, r.stderr[-3000:]
        assert "global batch 16" in r.stdout
        results[hw] = json.loads((run / "metrics.json").read_text())
        lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        curves[hw] = [x["loss"] for x in lines if "loss" in x and "split" not in x]
    one, two = results["cpu"], results[hardware]
    assert (one["step"], one["examples"]) == (two["step"], two["examples"])
    assert max(abs(a - b) for a, b in zip(curves["cpu"], curves[hardware], strict=True)) < 1e-3
    assert one["loss"] == pytest.approx(two["loss"], rel=1e-3)
