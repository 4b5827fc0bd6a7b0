"""Each architecture's layout, declared once: which parameters are embeddings, which layer group (a transformer
layer, a ResNet/ConvNeXt stage, an EfficientNet block, a VGG conv block) each one is in, which module is the
classification head, its BatchNorm layers, LoRA's target layers and the parameters without weight decay.

Strategies read models only through these maps, so ``partial``, ``gradual_unfreeze`` and layer-wise lr decay see
stages on a CNN and layers on a transformer, and LoRA finds the layers to adapt. Names are transformers'
(``encoder.layer.3``, ``encoder.stages.2``, ``encoder.blocks.7``); a timm model (through transformers' timm wrapper)
is grouped by timm's own ``group_matcher``, except VGG, whose conv blocks are the runs of convolutions between its
max-pools.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

# Transformer layers (BERT's encoder.layer.N, DistilBERT's transformer.layer.N, GPT-2's h.N, ViT's
# encoder.layer.N, Swin's layers.N) and EfficientNet's blocks.N.
LAYER = re.compile(r"(?:^|\.)(?:layer|layers|h|block|blocks)\.(\d+)\.")


# CNN stages (ResNet, ConvNeXt, RegNet, BiT: encoder.stages.N): matched first, as a stage holds "layers.M".
STAGE = re.compile(r"(?:^|\.)stages\.(\d+)\.")


EMBEDDINGS = re.compile(r"(?:^|\.)(?:embeddings|embed_tokens|wte|wpe|embedder)\.")


TIMM = "timm_model."  # transformers' timm wrapper keeps the timm model under this name


Part = tuple[str, int | None]  # ("layer", i) | ("embeddings", None) | ("post", None)


@dataclass(frozen=True)
class Roles:
    """What a model's parameters are to a strategy, as the task that built the model declares it.

    ``backbone``: name prefixes of the pretrained modules (everything else is the new head); ``fixed``: prefixes
    of parameters that never train whatever the strategy (CLIP's text tower under image classification, its
    derived head under contrastive training). Prefixes, not a parameter table: names stay valid after LoRA
    wraps a layer (``query.base_layer.weight``, ``query.lora_A…``)."""

    backbone: tuple[str, ...]
    fixed: tuple[str, ...] = ()


def standard_roles(model: nn.Module, fixed: tuple[str, ...] = ()) -> Roles:
    """transformers' own split: its ``base_model`` is the pretrained backbone (none: every parameter is new)."""
    base = getattr(model, "base_model", None)
    if base is None or base is model:
        return Roles((), fixed)
    prefix = next((f"{name}." for name, module in model.named_modules() if module is base and name), None)
    return Roles((prefix,) if prefix else (), fixed)


def is_head(model: nn.Module, roles: Roles, name: str) -> bool:
    """Whether a parameter belongs to the new head: outside the pretrained backbone, or a new classifier that
    sits inside it (timm's)."""
    return not name.startswith(roles.backbone) or (bool(roles.backbone) and name.startswith(inner_heads(model)))


def depth_map(model: nn.Module, roles: Roles) -> tuple[dict[str, int], int]:
    """({parameter name: depth}, number of layer groups L): 0 for embeddings, i+1 for layer group i, L+1 for
    what comes after the last layer (pooler, final norm) and for the head."""
    part = part_of(model)
    names: dict[str, Part] = {}
    for name, _ in model.named_parameters():
        names[name] = ("head", None) if is_head(model, roles, name) else part(name)
    layers = 1 + max((i for kind, i in names.values() if kind == "layer" and i is not None), default=-1)
    depth = {}
    for name, (kind, i) in names.items():
        depth[name] = {"embeddings": 0, "layer": (i or 0) + 1}.get(kind, layers + 1)
    return depth, layers


def backbone_type(model: nn.Module, roles: Roles) -> str | None:
    """The model type of the backbone's first module (what LoRA's default targets are looked up by)."""
    if not roles.backbone:
        return None
    module = model.get_submodule(roles.backbone[0].rstrip("."))
    return getattr(getattr(module, "config", None), "model_type", None)


def part_of(model: nn.Module) -> Callable[[str], Part]:
    """name → where a parameter *inside the backbone* sits: a layer group (with its index), the
    embeddings (stem), or post (after the last layer: final norm, pooler, VGG's MLP)."""
    timm_model: Any = getattr(model, "timm_model", None)
    if timm_model is None:
        return _named_part
    if type(timm_model).__name__ == "VGG":
        return _vgg_parts(timm_model)
    return _timm_parts(timm_model)


def _named_part(name: str) -> Part:
    m = STAGE.search(name) or LAYER.search(name)
    if m:
        return "layer", int(m.group(1))
    return ("embeddings", None) if EMBEDDINGS.search(name) else ("post", None)


def _timm_parts(timm_model: Any) -> Callable[[str], Part]:
    """timm's own grouping (``group_matcher(coarse=True)``: stem, then blocks/stages in order)."""
    from timm.models._manipulate import group_with_matcher

    matcher = timm_model.group_matcher(coarse=True)
    groups = group_with_matcher(timm_model.named_parameters(), matcher, reverse=True)
    head = set(_timm_head_names(timm_model))
    stem = "stem" in matcher and any(v == 0 for v in groups.values())
    body = sorted({g for n, g in groups.items() if n not in head and (g != 0 or not stem)})
    index = {g: i for i, g in enumerate(body)}

    def part(name: str) -> Part:
        local = name[len(TIMM) :] if name.startswith(TIMM) else name
        g = groups.get(local)
        if g is None:
            return "post", None
        if stem and g == 0:
            return "embeddings", None
        return ("layer", index[g]) if g in index else ("post", None)

    return part


def _vgg_parts(vgg: Any) -> Callable[[str], Part]:
    """VGG's conv blocks: ``features`` split at every max-pool (5 blocks); the first conv is not a stem."""
    block, of = 0, {}
    for i, layer in enumerate(vgg.features):
        of[f"features.{i}."] = block
        if isinstance(layer, nn.MaxPool2d):
            block += 1

    def part(name: str) -> Part:
        local = name[len(TIMM) :] if name.startswith(TIMM) else name
        prefix = ".".join(local.split(".")[:2]) + "."
        return ("layer", of[prefix]) if prefix in of else ("post", None)  # pre_logits: VGG's pretrained MLP

    return part


def _timm_head_names(timm_model: Any) -> list[str]:
    head = timm_model.get_classifier()
    prefix = next((n for n, m in timm_model.named_modules() if m is head), None)
    return [n for n, _ in timm_model.named_parameters() if prefix and n.startswith(prefix + ".")]


def inner_heads(model: nn.Module) -> tuple[str, ...]:
    """Prefixes of a new head that sits *inside* the pretrained base model (timm's classifier); ()."""
    timm_model: Any = getattr(model, "timm_model", None)
    if timm_model is None:
        return ()
    head = timm_model.get_classifier()
    return tuple(f"{TIMM}{n}." for n, m in timm_model.named_modules() if m is head and n)


def classifier_of(model: nn.Module) -> tuple[str, nn.Linear] | None:
    """The Linear layer that maps pooled features to the labels (what a cached-feature run trains), or None."""
    timm_model: Any = getattr(model, "timm_model", None)
    if timm_model is not None:
        head = timm_model.get_classifier()
        name = next((f"{TIMM}{n}" for n, m in timm_model.named_modules() if m is head), None)
        return (name, head) if name and isinstance(head, nn.Linear) else None
    labels = getattr(getattr(model, "config", None), "num_labels", None)
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear) and m.out_features == labels]
    return found[-1] if found else None


def is_batch_norm(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.batchnorm._BatchNorm)


def _normalise_as_frozen(module: nn.Module, args: Any) -> None:
    """A forward pre-hook: the BatchNorm normalises with its running statistics (and leaves them as they are),
    whatever ``model.train()`` said since."""
    module.training = False


def _pinned(module: nn.Module) -> int | None:
    """The key of the hook that keeps ``module`` frozen, or None."""
    return next((k for k, hook in module._forward_pre_hooks.items() if hook is _normalise_as_frozen), None)


def pin_frozen_norms(model: nn.Module) -> int:
    """Keep every BatchNorm whose parameters are all frozen in eval mode (its running mean and variance
    are pretrained statistics, not to be re-estimated on the new data); release the others. Returns how
    many are pinned. Called whenever a strategy changes what trains.

    A forward pre-hook, not a wrapper or another ``train`` method: a wrapper module would rename the weights
    that checkpoints (and plain transformers) read, and the hook is PyTorch's own way to act before a forward."""
    pinned = 0
    for module in model.modules():
        if not is_batch_norm(module):
            continue
        params = list(module.parameters(recurse=False))
        hooked = _pinned(module)
        if params and not any(p.requires_grad for p in params):
            if hooked is None:
                module.register_forward_pre_hook(_normalise_as_frozen)
            nn.Module.train(module, False)
            pinned += 1
        elif hooked is not None:
            del module._forward_pre_hooks[hooked]
            nn.Module.train(module, model.training)
    return pinned


def is_feature_encoder(module: nn.Module) -> bool:
    """A wav2vec2-style convolutional feature encoder (raw samples → frames): Wav2Vec2FeatureEncoder, HuBERT's …"""
    return type(module).__name__.endswith("FeatureEncoder")


def stop_at_frozen_encoders(model: nn.Module) -> None:
    """transformers' wav2vec2-style convolutional feature encoders make their input require grad in training (for
    gradient checkpointing) unless flagged frozen (``_requires_grad``, what ``freeze_feature_encoder()`` clears):
    keep the flag in step with their weights, so a frozen encoder builds no autograd graph and backward stops above
    it instead of running through every convolution down to the raw samples. Called with pin_frozen_norms."""
    for module in model.modules():
        if is_feature_encoder(module) and isinstance(getattr(module, "_requires_grad", None), bool):
            module._requires_grad = any(p.requires_grad for p in module.parameters())


def linear_like(module: nn.Module) -> bool:
    """Layers LoRA adapts: Linear, GPT-2's Conv1D, and ordinary (not grouped or depthwise) Conv2d."""
    if isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D":
        return True
    return isinstance(module, nn.Conv2d) and module.groups == 1


def describe_head(model: nn.Module) -> str:
    """``classifier (16 → 10)`` — the head a run summary names."""
    found = classifier_of(model)
    if found is None:
        return "the head"
    name, linear = found
    return f"{name} ({linear.in_features} → {linear.out_features})"


# No weight decay: biases and norms (any parameter with at most one dimension: BatchNorm, LayerNorm,
# ConvNeXt's layer scale …, as well as these names) and ViT's position embeddings and [CLS] token.
NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "ln_1.weight", "ln_2.weight", "ln_f.weight")


NO_DECAY_TOKENS = ("cls_token", "position_embeddings", "pos_embed", "distillation_token")


# LoRA targets per model_type: every Linear of attention and MLP (the LoRA paper's best setting at a
# fixed budget); unknown architectures get every Linear inside the encoder layers.
LORA_TARGETS = {
    "bert": ("query", "key", "value", "dense"),
    "roberta": ("query", "key", "value", "dense"),
    "electra": ("query", "key", "value", "dense"),
    "distilbert": ("q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"),
    "gpt2": ("c_attn", "c_proj", "c_fc"),
    # Llama-style decoder blocks (SmolLM2, Qwen2/3, Mistral): attention q/k/v/o and the gated MLP
    "llama": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "qwen2": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "qwen3": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "mistral": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    # ViT's attention and MLP Linears (transformers 5 names them q/k/v/o_proj, fc1/fc2; 4.x query … dense).
    # CNNs: not listed, so every Linear and ungrouped Conv2d inside their stages or blocks.
    "vit": ("q_proj", "k_proj", "v_proj", "o_proj", "fc1", "fc2", "query", "key", "value", "dense"),
}
