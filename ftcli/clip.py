"""CLIP and SigLIP: the model and processor (a pretrained checkpoint, or a tiny random one with a BPE vocabulary
trained on the run's captions and prompts), prompt ensembles as a classifier, the contrastive losses with
negatives from every process, and retrieval metrics.

The model is one of :mod:`ftcli.modeling_ftcli_clip`'s classes: transformers' ``CLIPModel`` or ``SiglipModel``
with a linear head on the normalised image embedding, initialised from the text tower (zero-shot). What differs
between the two families (the class, the text padding, the loss) is a :class:`Family`, chosen by the
checkpoint's ``model_type``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ftcli.config import FtcliError, ModelConfig, first_line

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
    loss: Callable[[Any, Any, Any], Any]  # (this process's image embeddings, text embeddings, model) → loss

    def model_class(self) -> Any:
        from ftcli import modeling_ftcli_clip

        return getattr(modeling_ftcli_clip, self.classifier)


def _infonce(image: Any, text: Any, model: Any) -> Any:
    return contrastive_loss(image, text, model.logit_scale)


def _sigmoid(image: Any, text: Any, model: Any) -> Any:
    return sigmoid_loss(image, text, model.logit_scale, model.logit_bias)


FAMILIES = {  # config.json model types these modules load
    "clip": Family("CLIP", "FtcliClipForImageClassification", "CLIPConfig", "CLIPProcessor", "longest", _infonce),
    "siglip": Family(
        "SigLIP", "FtcliSiglipForImageClassification", "SiglipConfig", "SiglipProcessor", "max_length", _sigmoid
    ),
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
    from transformers import AutoConfig

    from ftcli.vision import resolve

    if cfg.init == "random":
        family = family_of(cfg.name_or_path, f"model={cfg.name}")
        text = dict(dict(cfg.config_overrides).get("text_config", {}) or {})
        positions = text.get("max_position_embeddings") or (77 if family.padding == "longest" else 64)
        return family, int(positions)
    path = resolve(cfg.name_or_path, cache_dir)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=cfg.trust_remote_code)
    except (OSError, ValueError) as e:
        raise FtcliError(f"model.name_or_path={cfg.name_or_path}: cannot load its config ({first_line(e)})") from e
    family = family_of(config.model_type, f"model.name_or_path={cfg.name_or_path}")
    return family, int(config.text_config.max_position_embeddings)


# ----------------------------------------------------------------------------------------------
# tokenizer and processor


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> Any:
    """A CLIP BPE tokenizer (CLIP's lower-casing and word split, byte-level alphabet, ``</w>`` word ends) whose
    merges spell out the words of ``texts``, most frequent first, until ``vocab_size``.

    Built, not trained with ``tokenizers``' BpeTrainer: that one breaks ties between equally frequent pairs in
    hash-map order, so every process (and every run) got another vocabulary. Any other word still tokenises,
    as pieces down to single bytes."""
    from collections import Counter

    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

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
    import transformers
    from transformers import AutoProcessor

    from ftcli.vision import load_processor as image_processor
    from ftcli.vision import resolve, with_size

    if cfg.init == "random":
        family = family_of(cfg.name_or_path, f"model={cfg.name}")
        tokenizer = train_tokenizer(texts, cfg.vocab_size or 1000)
        side = image_size or int(dict(cfg.config_overrides).get("vision_config", {}).get("image_size", 224))
        make = getattr(transformers, family.processor)
        return make(image_processor=image_processor(cfg, cache_dir, side), tokenizer=tokenizer)
    path = resolve(cfg.name_or_path, cache_dir)
    try:
        processor = AutoProcessor.from_pretrained(path, trust_remote_code=cfg.trust_remote_code)
    except (OSError, ValueError) as e:
        raise FtcliError(
            f"model.name_or_path={cfg.name_or_path}: cannot load a CLIP processor ({first_line(e)})"
        ) from e
    if not hasattr(processor, "tokenizer") or not hasattr(processor, "image_processor"):
        raise FtcliError(
            f"model.name_or_path={cfg.name_or_path}: not an image–text processor ({type(processor).__name__})"
        )
    if image_size:
        processor.image_processor = with_size(processor.image_processor, image_size)
    return processor


def tokenize(tokenizer: Any, texts: list[str], max_length: int, padding: str = "longest") -> dict[str, Any]:
    """Token ids and mask for ``texts``, padded to the longest or (SigLIP) to ``max_length`` (the text tower reads
    at most its position count). A tokenizer that returns no mask (SigLIP's own: its text tower attends to the
    padding, as it was trained) gets an all-ones one, which the model reads as no mask at all."""
    import torch

    out = dict(tokenizer(texts, padding=padding, truncation=True, max_length=max_length, return_tensors="pt"))
    out.setdefault("attention_mask", torch.ones_like(out["input_ids"]))
    return out


# ----------------------------------------------------------------------------------------------
# the model


def build_clip(cfg: ModelConfig, label_names: list[str], tokenizer: Any, seed: int, side: int, cache_dir: Path) -> Any:
    """The CLIP/SigLIP classifier: pretrained towers (``model.name_or_path``), or random ones sized by
    ``config_overrides`` (CLIP's ``projection_dim``, ``text_config``, ``vision_config``) at ``side`` pixels."""
    import torch
    from transformers import AutoConfig

    from ftcli.vision import resolve

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
    import math

    import torch
    import transformers

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
    import torch

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
    import torch

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
    import torch

    g = torch.Generator().manual_seed(seed)
    w = torch.randn(model.classifier.weight.shape, generator=g)
    with torch.no_grad():
        model.classifier.weight.copy_(w / w.norm(dim=-1, keepdim=True) * model.logit_scale.detach().float().exp())


# ----------------------------------------------------------------------------------------------
# the contrastive loss


def distributed() -> tuple[int, int]:
    """(this process's rank, the number of processes): (0, 1) outside torch.distributed."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _gather_rows() -> Any:
    import torch
    import torch.distributed as dist

    class GatherRows(torch.autograd.Function):
        """Every process's rows, in rank order (sizes may differ); backward: each process's gradient for the
        whole gathered tensor is summed over processes and every process keeps its own rows' part — every
        process's loss used every row, so every row's owner gets all of their gradient."""

        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            world = dist.get_world_size()
            size = torch.tensor([x.shape[0]], device=x.device)
            sizes = [torch.zeros_like(size) for _ in range(world)]
            dist.all_gather(sizes, size)
            counts = [int(n) for n in sizes]
            padded = x.new_zeros((max(counts), *x.shape[1:]))
            padded[: x.shape[0]] = x
            parts = [torch.zeros_like(padded) for _ in range(world)]
            dist.all_gather(parts, padded.contiguous())
            ctx.counts, ctx.rank = counts, dist.get_rank()
            return torch.cat([p[:n] for p, n in zip(parts, counts, strict=True)])

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            grad = grad.contiguous().clone()
            dist.all_reduce(grad)
            start = sum(ctx.counts[: ctx.rank])
            return grad[start : start + ctx.counts[ctx.rank]]

    return GatherRows


def gather_rows(x: Any) -> Any:
    """Every process's rows of ``x`` in rank order, differentiable (see ``GatherRows``); ``x`` alone in one process."""
    return x if distributed()[1] == 1 else _gather_rows().apply(x)


def _first_row(rows: int, device: Any) -> int:
    """This process's first row in the global batch (every process has ``rows`` of its own)."""
    import torch
    import torch.distributed as dist

    rank, world = distributed()
    if world == 1:
        return 0
    mine = torch.tensor([rows], device=device)
    parts = [torch.zeros_like(mine) for _ in range(world)]
    dist.all_gather(parts, mine)
    return sum(int(n) for n in parts[:rank])


def _global_value(share: Any) -> Any:
    """The shares' mean as the value (on every process), the gradient of this process's share."""
    import torch.distributed as dist

    world = distributed()[1]
    if world == 1:
        return share
    total = share.detach().clone()
    dist.all_reduce(total)
    return share + (total / world - share.detach())


def contrastive_loss(image: Any, text: Any, logit_scale: Any) -> Any:
    """CLIP's symmetric InfoNCE over the *global* batch: pairs are (image i, text i) across every process;
    each process's images are scored against every process's texts and its texts against every image
    (global negatives). ``image``/``text``: this process's normalised embeddings [B, D]; ``logit_scale``: CLIP's
    learnable log temperature (its exp capped at 100, as CLIP does).

    Each process's rows give their share of the global mean (× processes / global batch), and gradients flow
    back to the rows' owners through the gather, so after DDP averages the gradients over processes, n
    processes take exactly the step one process takes with the whole batch. The value returned is the
    global loss itself on every process (the shares' mean, exchanged without gradient)."""
    import torch

    world = distributed()[1]
    scale = logit_scale.exp().clamp(max=100.0)
    image, text = image.float(), text.float()
    all_image, all_text = gather_rows(image), gather_rows(text)
    targets = torch.arange(len(image), device=image.device) + _first_row(len(image), image.device)
    ce = torch.nn.functional.cross_entropy
    per_image = ce(scale * image @ all_text.T, targets, reduction="sum")
    per_text = ce(scale * text @ all_image.T, targets, reduction="sum")
    return _global_value((per_image + per_text) / 2 * world / len(all_image))


def sigmoid_loss(image: Any, text: Any, logit_scale: Any, logit_bias: Any) -> Any:
    """SigLIP's pairwise sigmoid loss (Zhai et al. 2023) over the *global* batch: every (image i, text j) pair is
    a binary question, label +1 when j = i and −1 otherwise, logit t·cos + b (``t = exp(logit_scale)`` and
    ``b = logit_bias``, both learnt); loss = −(1/N) Σ_i Σ_j log σ(label_ij · logit_ij), N the global batch.

    Every pair is counted once: each process scores its own images against every process's texts (gathered,
    differentiable), so the shares add up to the one-process loss and, after DDP's gradient average, to its
    step (see :func:`contrastive_loss`)."""
    import torch

    world = distributed()[1]
    image, text = image.float(), text.float()
    all_text = gather_rows(text)
    logits = logit_scale.float().exp() * image @ all_text.T + logit_bias.float()
    labels = -torch.ones_like(logits)
    rows = torch.arange(len(image), device=image.device)
    labels[rows, rows + _first_row(len(image), image.device)] = 1.0
    nll = -torch.nn.functional.logsigmoid(labels * logits).sum()
    return _global_value(nll * world / len(all_text))


# ----------------------------------------------------------------------------------------------
# retrieval


def retrieval_metrics(image: np.ndarray, text: np.ndarray, caption_ids: np.ndarray) -> dict[str, float]:
    """image→text and text→image Recall@1/5/10 and mean rank (1 = first). Identical captions are one
    gallery entry: an image's caption is ranked among the distinct captions; a caption is found when any of
    its images is (the best rank counts), as with COCO's several captions per image."""
    ids, first = np.unique(caption_ids, return_index=True)
    gallery = text[first]  # one embedding per distinct caption
    own = np.searchsorted(ids, caption_ids)  # each image's caption, as a gallery row
    sims = image @ gallery.T  # [images, captions]
    i2t = 1 + (sims > sims[np.arange(len(image)), own][:, None]).sum(1)
    t2i = np.empty(len(ids), dtype=np.int64)
    for c in range(len(ids)):
        column = sims[:, c]
        t2i[c] = 1 + (column > column[own == c].max()).sum()
    out: dict[str, float] = {}
    for name, ranks in (("i2t", i2t), ("t2i", t2i)):
        for k in (1, 5, 10):
            out[f"{name}_r{k}"] = float((ranks <= k).mean())
        out[f"{name}_mean_rank"] = float(ranks.mean())
    return out
