"""CLIP and SigLIP: the model family, the processor (a pretrained checkpoint's, or a tiny random one with a BPE
vocabulary built from the run's captions and prompts), and prompt ensembles as a classifier.

The model is one of :mod:`ftcli.models.shipped.modeling_ftcli_clip`'s classes: transformers' ``CLIPModel`` or
``SiglipModel`` with a linear head on the normalised image embedding, initialised from the text tower (zero-shot).
What differs between the two families (the class, the text padding) is a :class:`Family`, chosen by the checkpoint's
``model_type``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from tokenizers import pre_tokenizers
from transformers import AutoConfig, AutoProcessor, CLIPTokenizer

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import ModelConfig
from ftcli.models.loading import load_part
from ftcli.models.packaged import resolve
from ftcli.models.shipped import modeling_ftcli_clip
from ftcli.models.vision import load_processor as image_processor
from ftcli.models.vision import with_size

SPECIALS = ("<|startoftext|>", "<|endoftext|>")  # CLIP's BOS and EOS (EOS pads too)


@dataclass(frozen=True)
class Family:
    """A two-tower model family: how its checkpoints load, how its text is padded, how it is trained."""

    name: str
    classifier: str  # the class in modeling_ftcli_clip
    config: str  # transformers' config and processor classes (random init)
    processor: str
    # "longest": CLIP pools its EOS token, padding does not matter; "max_length": SigLIP pools the *last*
    # position and was trained with every text padded to its 64 positions, so it must see them padded so too
    padding: str

    def model_class(self) -> Any:

        return getattr(modeling_ftcli_clip, self.classifier)


FAMILIES = {  # config.json model types these modules load
    "clip": Family("CLIP", "FtcliClipForImageClassification", "CLIPConfig", "CLIPProcessor", "longest"),
    "siglip": Family("SigLIP", "FtcliSiglipForImageClassification", "SiglipConfig", "SiglipProcessor", "max_length"),
}


# SigLIP2's NaFlex checkpoints (model_type siglip2) take patches at their own aspect ratio with a pixel mask and
# spatial shapes, not square pixel_values: refused in one line. (Its fixed-resolution ones are model_type siglip.)
REFUSED = {"siglip2": "SigLIP2's NaFlex (variable-resolution) models are not supported; use a siglip one"}


def family_of(model_type: str, key: str) -> Family:
    """The family of a ``model_type``; one line naming ``key`` when it is not a CLIP/SigLIP model."""
    if model_type in REFUSED:
        raise FtcliError(f"{key}: a {model_type} model: {REFUSED[model_type]}")
    if model_type not in FAMILIES:
        raise FtcliError(
            f"{key}: a {model_type} model, not a CLIP or SigLIP; CLIP tasks need model=tiny_clip, tiny_siglip, "
            "clip_b32, clip_b16, siglip_b16 or a CLIP/SigLIP checkpoint"
        )
    return FAMILIES[model_type]


def register_clip_classifier() -> None:
    """save_pretrained copies modeling_ftcli_clip.py beside the weights and writes ``auto_map``."""
    for family in FAMILIES.values():
        family.model_class().register_for_auto_class("AutoModelForImageClassification")


def checkpoint_text(cfg: ModelConfig, cache_dir: Path) -> tuple[Family, int]:
    """(the family, the text tower's positions) of ``model.name_or_path`` (random init: of its config_overrides),
    read from the config alone, before the model is built: the padding of every text depends on both."""

    if cfg.init == "random":
        family = family_of(cfg.name_or_path, f"model={cfg.name}")
        text = dict(dict(cfg.config_overrides).get("text_config", {}) or {})
        positions = text.get("max_position_embeddings") or (77 if family.padding == "longest" else 64)
        return family, int(positions)
    path = resolve(cfg.name_or_path, cache_dir)
    config = load_part(AutoConfig.from_pretrained, path, cfg, "cannot load its config")
    family = family_of(config.model_type, f"model.name_or_path={cfg.name_or_path}")
    return family, int(config.text_config.max_position_embeddings)


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> Any:
    """A CLIP BPE tokenizer (CLIP's lower-casing and word split, byte-level alphabet, ``</w>`` word ends) whose
    merges spell out the words of ``texts``, most frequent first, until ``vocab_size``.

    Built, not trained with ``tokenizers``' BpeTrainer: that one breaks ties between equally frequent pairs in
    hash-map order, so every process (and every run) got another vocabulary. Any other word still tokenises,
    as pieces down to single bytes."""

    backend = CLIPTokenizer().backend_tokenizer  # CLIP's normaliser and pre-tokeniser (byte-level words)
    counts: Counter[str] = Counter()
    for text in texts:
        normal = backend.normalizer.normalize_str(text)
        counts.update(piece for piece, _ in backend.pre_tokenizer.pre_tokenize_str(normal))
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {t: i for i, t in enumerate([*SPECIALS, *alphabet, *(a + "</w>" for a in alphabet)])}
    merges: list[tuple[str, str]] = []
    for word, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        pieces = [*word[:-1], word[-1] + "</w>"]
        for i in range(1, len(pieces)):
            left, merged = "".join(pieces[:i]), "".join(pieces[: i + 1])
            if merged not in vocab and len(vocab) < vocab_size:
                vocab[merged] = len(vocab)
                merges.append((left, pieces[i]))
    return CLIPTokenizer(vocab=vocab, merges=merges)  # type: ignore[arg-type]  # pairs, as tokenizers takes them


def load_processor(cfg: ModelConfig, cache_dir: Path, image_size: int | None, texts: list[str]) -> Any:
    """The checkpoint's own processor (``AutoProcessor``: CLIP's, SigLIP's sentencepiece tokenizer …), or (random
    init) the architecture's image processor and a CLIP BPE tokenizer trained on ``texts`` (SigLIP's tiny model
    too: its vocabulary is only the run's words); images at ``image_size`` when set."""

    family, positions = checkpoint_text(cfg, cache_dir)
    if cfg.init == "random":
        tokenizer = train_tokenizer(texts, cfg.vocab_size or 1000)
        tokenizer.model_max_length = min(positions, int(cfg.max_length))  # every text's length at most, saved with it
        side = image_size or int(dict(cfg.config_overrides).get("vision_config", {}).get("image_size", 224))
        make = getattr(transformers, family.processor)
        return make(image_processor=image_processor(cfg, cache_dir, side), tokenizer=tokenizer)
    path = resolve(cfg.name_or_path, cache_dir)
    processor = load_part(AutoProcessor.from_pretrained, path, cfg, "cannot load a CLIP processor")
    if not hasattr(processor, "tokenizer") or not hasattr(processor, "image_processor"):
        raise FtcliError(
            f"model.name_or_path={cfg.name_or_path}: not an image–text processor ({type(processor).__name__})"
        )
    if image_size:
        processor.image_processor = with_size(processor.image_processor, image_size)
    length = min(int(processor.tokenizer.model_max_length), positions, int(cfg.max_length))
    processor.tokenizer.model_max_length = length  # every text's length at most (text_length), saved with it
    return processor


def family_of_processor(processor: Any) -> Family:
    """The family a processor belongs to (SigLIP's pads every text to its positions; SigLIP2's fixed-resolution
    checkpoints are SigLIP models with another tokenizer)."""
    return FAMILIES["siglip"] if "Siglip" in type(processor).__name__ else FAMILIES["clip"]


def text_length(processor: Any) -> int:
    """The token length texts are cut (SigLIP: padded) to: ``model.max_length``, at most the text tower's positions,
    as :func:`load_processor` told the tokenizer (a checkpoint's tokenizer keeps it)."""
    return int(processor.tokenizer.model_max_length)


def tokenize(tokenizer: Any, texts: list[str], max_length: int, padding: str = "longest") -> dict[str, Any]:
    """Token ids and mask for ``texts``, padded to the longest or (SigLIP) to ``max_length`` (the text tower reads
    at most its position count). A tokenizer that returns no mask (SigLIP's own: its text tower attends to the
    padding, as it was trained) gets an all-ones one, which the model reads as no mask at all."""

    out = dict(tokenizer(texts, padding=padding, truncation=True, max_length=max_length, return_tensors="pt"))
    out.setdefault("attention_mask", torch.ones_like(out["input_ids"]))
    return out


def build_clip(cfg: ModelConfig, label_names: list[str], tokenizer: Any, seed: int, side: int, cache_dir: Path) -> Any:
    """The CLIP/SigLIP classifier: pretrained towers (``model.name_or_path``), or random ones sized by
    ``config_overrides`` (CLIP's ``projection_dim``, ``text_config``, ``vision_config``) at ``side`` pixels."""

    register_clip_classifier()
    labels: dict[str, Any] = {
        "id2label": dict(enumerate(label_names)),
        "label2id": {n: i for i, n in enumerate(label_names)},
    }
    if cfg.init == "random":
        return _random_model(cfg, labels, tokenizer, seed, side)
    path = resolve(cfg.name_or_path, cache_dir)
    config = AutoConfig.from_pretrained(path, trust_remote_code=cfg.trust_remote_code)
    family = family_of(config.model_type, f"model.name_or_path={cfg.name_or_path}")
    config.update(labels)
    torch.manual_seed(seed)  # the head's init before it is overwritten (random head: the same every run)
    return family.model_class().from_pretrained(
        path, config=config, use_safetensors=not cfg.allow_pickle, ignore_mismatched_sizes=True
    )  # another label set: the head is made again (zero-shot, or random) whatever its shape was


def _random_model(cfg: ModelConfig, labels: dict[str, Any], tokenizer: Any, seed: int, side: int) -> Any:

    family = family_of(cfg.name_or_path, f"model={cfg.name}")
    over = dict(cfg.config_overrides)
    text = {**dict(over.pop("text_config", {}) or {}), "vocab_size": len(tokenizer)}
    text.update(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    text["pad_token_id"] = tokenizer.pad_token_id
    vision = {**dict(over.pop("vision_config", {}) or {}), "image_size": side}
    config = getattr(transformers, family.config)(text_config=text, vision_config=vision, **over, **labels)
    torch.manual_seed(seed)
    model = family.model_class()(config)
    if hasattr(model, "logit_bias"):  # transformers starts SigLIP at t = 1, b = 0; the paper's t = 10, b = −10
        with torch.no_grad():  # keeps the first steps from spending themselves on the n − 1 negatives per row
            model.logit_scale.fill_(math.log(10.0))
            model.logit_bias.fill_(-10.0)
    return model


def class_embeddings(model: Any, tokenizer: Any, names: list[str], templates: list[str], max_length: int) -> Any:
    """[classes, dim]: each class's prompts (one per template) embedded, normalised, averaged and
    normalised again: CLIP's prompt ensemble, averaged in embedding space."""

    prompts = [t.format(n) for n in names for t in templates]
    padding = family_of(model.config.model_type, "model").padding
    max_length = min(max_length, int(model.config.text_config.max_position_embeddings))
    device = model.logit_scale.device
    was = model.training
    model.eval()
    with torch.no_grad():
        ids = {k: v.to(device) for k, v in tokenize(tokenizer, prompts, max_length, padding).items()}
        emb = model.text_embeds(ids["input_ids"], ids["attention_mask"]).float()
    model.train(was)
    emb = emb.view(len(names), len(templates), -1).mean(1)
    return emb / emb.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def set_zero_shot_head(model: Any, tokenizer: Any, names: list[str], templates: list[str], max_length: int) -> None:
    """The classifier ← exp(logit_scale) · the class embeddings (+ SigLIP's logit_bias): logits equal the model's
    own zero-shot logits (a new classifier layer when the names are not the ones it has rows for)."""

    emb = class_embeddings(model, tokenizer, names, templates, max_length)
    bias = model.classifier.bias is not None
    if model.classifier.weight.shape != emb.shape:
        model.classifier = torch.nn.Linear(emb.shape[1], emb.shape[0], bias=bias).to(model.logit_scale.device)
    with torch.no_grad():
        model.classifier.weight.copy_(emb * model.logit_scale.detach().float().exp())
        if bias:  # the same for every class: it moves SigLIP's sigmoids, never a softmax or an argmax
            model.classifier.bias.fill_(float(model.logit_bias))


def set_random_head(model: Any, seed: int) -> None:
    """A random head of the zero-shot head's scale (rows of norm exp(logit_scale)): the fair comparison."""

    g = torch.Generator().manual_seed(seed)
    w = torch.randn(model.classifier.weight.shape, generator=g)
    with torch.no_grad():
        model.classifier.weight.copy_(w / w.norm(dim=-1, keepdim=True) * model.logit_scale.detach().float().exp())
