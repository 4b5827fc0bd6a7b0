"""LoRA: low-rank adapters (peft, injected in place) on the encoder's Linear and Conv2d layers; checkpoints hold
the merged weights.

peft is imported where it is used, not at the top: importing it costs more than a whole cached
feature-extraction run, which never needs it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from safetensors.torch import save_file
from torch import nn
from transformers import AutoTokenizer

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import LoraConfig
from ftcli.models.architectures import LORA_TARGETS, Roles, backbone_type, depth_map, is_head, linear_like
from ftcli.models.text import register_pooled_classifier
from ftcli.training.checkpoint import load_checkpoint
from ftcli.training.strategies.base import Strategy


class LoraStrategy(Strategy):
    """LoRA adapters (peft, injected in place) on the encoder's Linear layers; the head trains in full."""

    cfg: LoraConfig

    def targets(self, model: nn.Module) -> list[str]:
        """Full module names to adapt: Linear-like layers (Linear, Conv1D, Conv2d) inside the encoder's
        layers (stages, blocks) whose leaf name matches."""
        model_type = backbone_type(model, self.roles)
        wanted = self.cfg.target_modules or LORA_TARGETS.get(model_type or "")
        depth, layers = depth_map(model, self.roles)
        found = []
        for name, module in model.named_modules():
            leaf = name.rsplit(".", 1)[-1]
            if not 1 <= depth.get(name + ".weight", -1) <= layers:  # in a layer: not the head, embeddings, post
                continue
            if linear_like(module) and (wanted is None or leaf in wanted):
                found.append(name)
        if not found:
            leaves = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if linear_like(m)})
            raise FtcliError(
                f"strategy.target_modules={list(wanted) if wanted else None}: no Linear/Conv2d layer inside the "
                f"encoder layers of {type(model).__name__} matches; name leaf modules such as {leaves}"
            )
        return found

    def setup(self, model: nn.Module) -> None:
        from peft import LoraConfig as PeftLoraConfig
        from peft import inject_adapter_in_model

        targets = self.targets(model)
        fan_in_fan_out = any(type(m).__name__ == "Conv1D" for n, m in model.named_modules() if n in set(targets))
        peft_cfg = PeftLoraConfig(
            r=self.cfg.r,
            lora_alpha=self.cfg.alpha,
            lora_dropout=self.cfg.dropout,
            target_modules=targets,
            fan_in_fan_out=fan_in_fan_out,
            bias="none",
        )
        self.peft_config = peft_cfg
        inject_adapter_in_model(peft_cfg, model)
        super().setup(model)

    def trains(self, name: str, depth: int, layers: int, head: bool) -> bool:
        # The head is not a peft module here: ftcli's pooled head (`head`) and native heads
        # (`classifier`, `score`, `pre_classifier`) are simply every parameter outside the backbone.
        return head or "lora_" in name

    def is_new(self, model: nn.Module, name: str) -> bool:
        return "lora_" in name or super().is_new(model, name)

    def model_to_save(self, model: nn.Module) -> nn.Module:
        """A copy with B·A merged into each base weight and the LoRA wrappers removed (plain transformers)."""
        return merge_lora(model)

    def after_save(self, model: nn.Module, folder: Path) -> None:
        if self.cfg.save_adapter:
            save_adapter(model, self.roles, self.peft_config, folder / "adapter")


def merge_lora(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` with every LoRA layer merged into its base layer and unwrapped."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    merged = copy.deepcopy(model)
    for name, module in list(merged.named_modules()):
        if isinstance(module, BaseTunerLayer) and hasattr(module, "get_base_layer"):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            parent = merged.get_submodule(parent_name) if parent_name else merged
            setattr(parent, child, module.get_base_layer())
    merged.requires_grad_(False)
    return merged


def save_adapter(model: nn.Module, roles: Roles, peft_config: Any, folder: Path) -> None:
    """Write peft's adapter files: the LoRA matrices and the head (peft's modules_to_save)."""
    from peft import get_peft_model_state_dict

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = get_peft_model_state_dict(model, adapter_name="default")
    heads = {n: p.detach() for n, p in model.named_parameters() if is_head(model, roles, n)}
    save_file({k: v.contiguous() for k, v in {**state, **heads}.items()}, str(folder / "adapter_model.safetensors"))
    peft_config.save_pretrained(str(folder))


def load_merged(ckpt: Path) -> tuple[Any, Any, bool]:
    """(model, tokenizer, merged?) — a LoRA checkpoint (peft adapter) merged into its base weights."""
    if (ckpt / "adapter_config.json").is_file():
        try:
            from peft import AutoPeftModelForSequenceClassification, PeftModel
        except ImportError as e:
            raise FtcliError(f"checkpoint={ckpt}: a LoRA adapter; install peft (pip install 'ftcli[lora]')") from e

        register_pooled_classifier()
        base_path = json.loads((ckpt / "adapter_config.json").read_text()).get("base_model_name_or_path") or ""
        if (Path(base_path) / "config.json").is_file():  # an ftcli checkpoint (pooled head included)
            base, tokenizer, _ = load_checkpoint(Path(base_path))
            model = PeftModel.from_pretrained(base, ckpt)
        else:  # a hub id or plain folder: peft builds the base itself
            model = AutoPeftModelForSequenceClassification.from_pretrained(ckpt)
            tokenizer = AutoTokenizer.from_pretrained(base_path)
        if (ckpt / "tokenizer_config.json").is_file():
            tokenizer = AutoTokenizer.from_pretrained(ckpt)
        return model.merge_and_unload(), tokenizer, True
    model, tokenizer, _ = load_checkpoint(ckpt)
    if hasattr(model, "merge_and_unload"):  # a peft model that loaded as one
        return model.merge_and_unload(), tokenizer, True
    return model, tokenizer, False
