"""A pooled sequence classifier: any transformers encoder + pooling + dropout + linear head.

This file is self-contained (torch and transformers only) on purpose: ftcli copies it into every
checkpoint that uses it and points ``auto_map`` at it, so plain transformers loads the checkpoint
with ``AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=True)`` and
predicts exactly what ftcli predicted.

Importing this file registers ``ftcli_pooled`` with ``AutoConfig`` (see ``_register_config``), so once the
model is loaded, ``AutoTokenizer.from_pretrained(path)`` reads the same folder without asking again.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput


class PooledClassifierConfig(PretrainedConfig):
    model_type = "ftcli_pooled"

    def __init__(
        self,
        backbone: dict[str, Any] | None = None,
        pooling: str = "mean",
        classifier_dropout: float = 0.1,
        **kwargs: Any,
    ) -> None:
        self.backbone = dict(backbone or {})  # the encoder's own config, as a dict
        self.pooling = pooling
        self.classifier_dropout = classifier_dropout
        super().__init__(**kwargs)

    def backbone_config(self) -> PretrainedConfig:
        spec = dict(self.backbone)
        return AutoConfig.for_model(spec.pop("model_type"), **spec)

    @property
    def hidden_size(self) -> int:  # the width the head sees
        b = self.backbone
        return int(b.get("hidden_size") or b.get("dim") or b.get("n_embd") or b["d_model"])


def encoder_config(config: PretrainedConfig) -> PretrainedConfig:
    """The encoder's config. ftcli's checkpoints nest it under ``backbone`` (``model_type: ftcli_pooled``); an
    ``ftcli export format=safetensors`` folder writes the encoder's own config with the head's keys beside it
    (``model_type: bert`` …), so that ``AutoTokenizer``/``AutoConfig`` read the folder without running code."""
    return config.backbone_config() if getattr(config, "model_type", None) == "ftcli_pooled" else config


def head_dropout(config: PretrainedConfig) -> float:
    """The head's dropout (an encoder's own config may hold ``classifier_dropout: null``)."""
    found = getattr(config, "classifier_dropout", None)
    return 0.1 if found is None else float(found)


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str, pooler_output: torch.Tensor | None = None):
    """Reduce token states [B, T, H] to one vector per sequence [B, H]."""
    if how == "mean":
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
    if how == "cls":
        return hidden[:, 0]
    if how == "last":  # the last real token (decoder models read left to right)
        last = mask.sum(1).long().clamp(min=1) - 1
        return hidden[torch.arange(hidden.size(0), device=hidden.device), last]
    if how == "pooler":
        if pooler_output is None:
            raise ValueError("pooling='pooler' but this backbone has no pooler")
        return pooler_output
    raise ValueError(f"unknown pooling {how!r}")


class PooledClassifierHead(nn.Module):
    """Dropout + linear on pooled features; trained alone when the backbone is frozen."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_labels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(features))


class PooledClassifierForSequenceClassification(PreTrainedModel):
    config_class = PooledClassifierConfig
    base_model_prefix = "backbone"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def __init__(self, config: PooledClassifierConfig, backbone: nn.Module | None = None) -> None:
        super().__init__(config)
        # ftcli passes the pretrained encoder in; from_pretrained builds it from the config.
        self.backbone = backbone if backbone is not None else AutoModel.from_config(encoder_config(config))
        self.head = PooledClassifierHead(config.hidden_size, config.num_labels or 2, head_dropout(config))
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear) and module is self.head.out:
            module.weight.data.normal_(0.0, 0.02)
            module.bias.data.zero_()

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kw: Any):
        """Pooled sentence features [B, H]: what the head sees."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask, **kw)
        return pool(out.last_hidden_state, attention_mask, self.config.pooling, getattr(out, "pooler_output", None))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutput:
        extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        logits = self.head(self.features(input_ids, attention_mask, **extra))
        loss = self.loss(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The loss ``config.problem_type`` names, as transformers' own sequence classifiers compute it."""
        if self.config.problem_type == "regression":
            return nn.functional.mse_loss(logits.float().squeeze(-1), labels.float())
        if self.config.problem_type == "multi_label_classification":
            return nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float())
        return nn.functional.cross_entropy(logits.float(), labels)


def _register_config() -> None:
    """Make ``model_type: ftcli_pooled`` known to ``AutoConfig`` in this process.

    ``AutoTokenizer.from_pretrained(path)`` reads ``config.json`` through ``AutoConfig`` before it looks at
    ``tokenizer_config.json``. An unknown model type with an ``auto_map`` makes AutoConfig ask "Do you wish to
    run the custom code? [y/N]" and, refused (or with stdin closed), fall back to a bare config with the warning
    "You are using a model of type `ftcli_pooled` to instantiate a model of type ``". This file runs when the
    model is loaded with ``trust_remote_code=True`` (the README's first line), and ftcli imports it itself;
    registered then, the tokenizer's config read finds the type locally and runs nothing.
    """
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if PooledClassifierConfig.model_type not in CONFIG_MAPPING:  # the first copy wins (ftcli's own, in ftcli)
        AutoConfig.register(PooledClassifierConfig.model_type, PooledClassifierConfig)


_register_config()
