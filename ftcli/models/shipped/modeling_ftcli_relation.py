"""A relation classifier over entity markers: any transformers encoder; the hidden states at the subject's and the
object's start markers, concatenated, into dropout + linear (the "entity start" recipe of Baldini Soares et al.
2019; typed markers after Zhou & Chen 2022).

The markers are special tokens of the checkpoint's tokenizer; the config lists their ids, so the model finds them in
``input_ids`` itself: plain transformers' ``pipeline("text-classification")`` on marked text, and ONNX with only
``input_ids`` and ``attention_mask``, give what ftcli gives. Self-contained (torch and transformers only): ftcli
copies this file into every checkpoint that uses it and points ``auto_map`` at it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput


class RelationClassifierConfig(PretrainedConfig):
    model_type = "ftcli_relation"

    def __init__(
        self,
        backbone: dict[str, Any] | None = None,
        subject_markers: list[int] | None = None,
        object_markers: list[int] | None = None,
        classifier_dropout: float = 0.1,
        **kwargs: Any,
    ) -> None:
        self.backbone = dict(backbone or {})  # the encoder's own config, as a dict
        self.subject_markers = list(subject_markers or [])  # token ids of every subject start marker
        self.object_markers = list(object_markers or [])  # ... and of every object start marker
        self.classifier_dropout = classifier_dropout
        super().__init__(**kwargs)

    def backbone_config(self) -> PretrainedConfig:
        spec = dict(self.backbone)
        return AutoConfig.for_model(spec.pop("model_type"), **spec)

    @property
    def hidden_size(self) -> int:
        b = self.backbone
        return int(b.get("hidden_size") or b.get("dim") or b.get("n_embd") or b["d_model"])


def encoder_config(config: PretrainedConfig) -> PretrainedConfig:
    """The encoder's config: nested under ``backbone`` in ftcli's checkpoints (``model_type: ftcli_relation``), the
    config itself in an ``ftcli export format=safetensors`` folder (the encoder's own type, the marker ids beside
    it), which ``AutoTokenizer``/``AutoConfig`` read without running code."""
    return config.backbone_config() if getattr(config, "model_type", None) == "ftcli_relation" else config


def head_dropout(config: PretrainedConfig) -> float:
    """The head's dropout (an encoder's own config may hold ``classifier_dropout: null``)."""
    found = getattr(config, "classifier_dropout", None)
    return 0.1 if found is None else float(found)


def first_of(input_ids: torch.Tensor, ids: list[int]) -> torch.Tensor:
    """Each row's first position holding one of ``ids`` (0, the first token, where none is there)."""
    wanted = torch.tensor(ids, dtype=input_ids.dtype, device=input_ids.device)
    found = (input_ids.unsqueeze(-1) == wanted).any(-1)  # not torch.isin: ONNX has no searchsorted
    return found.int().argmax(dim=1)


class RelationClassifierForSequenceClassification(PreTrainedModel):
    config_class = RelationClassifierConfig
    base_model_prefix = "backbone"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def __init__(self, config: RelationClassifierConfig, backbone: nn.Module | None = None) -> None:
        super().__init__(config)
        # ftcli passes the pretrained encoder in; from_pretrained builds it from the config.
        self.backbone = backbone if backbone is not None else AutoModel.from_config(encoder_config(config))
        self.dropout = nn.Dropout(head_dropout(config))
        self.out = nn.Linear(2 * config.hidden_size, config.num_labels or 2)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if module is getattr(self, "out", None):
            module.weight.data.normal_(0.0, 0.02)
            module.bias.data.zero_()

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kw: Any) -> torch.Tensor:
        """The subject and object start markers' hidden states, side by side [B, 2H]: what the head sees."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask, **kw).last_hidden_state
        rows = torch.arange(hidden.size(0), device=hidden.device)
        subj = hidden[rows, first_of(input_ids, self.config.subject_markers)]
        obj = hidden[rows, first_of(input_ids, self.config.object_markers)]
        return torch.cat([subj, obj], dim=-1)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutput:
        extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        logits = self.out(self.dropout(self.features(input_ids, attention_mask, **extra)))
        loss = nn.functional.cross_entropy(logits.float(), labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


def _register_config() -> None:
    """Make ``model_type: ftcli_relation`` known to ``AutoConfig`` in this process (see modeling_ftcli.py: the
    tokenizer's config read then finds the type locally and runs nothing)."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if RelationClassifierConfig.model_type not in CONFIG_MAPPING:
        AutoConfig.register(RelationClassifierConfig.model_type, RelationClassifierConfig)


_register_config()
