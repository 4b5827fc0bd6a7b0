"""CLIP tasks: images in, CLIP's (or SigLIP's) two towers, class names read as prompts.

``ClipImages`` is the inputs side shared by both tasks: the image path of :class:`ImageTask` through the
processor's image processor, the model (:mod:`ftcli.models.clip`: CLIPModel or SiglipModel + a head on the normalised
image embedding, initialised as the zero-shot classifier), the zero-shot baseline measured before training, and
zero-shot prediction over any label set. ``clip_classification.py`` and ``clip_contrastive.py`` add the
objectives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import ModelConfig
from ftcli.tasks.base import Loaded, OnnxSpec, TaskData
from ftcli.tasks.image import ImageTask, resizer_of

ZEROSHOT = "zeroshot_"  # prefix of the baseline's metrics beside a run's own


class ClipImages(ImageTask):
    """Images through CLIP's image processor; class names through its tokenizer and text tower."""

    processor_class = "AutoProcessor"
    cfg: Any  # ClipClassificationConfig or ClipContrastiveConfig: templates
    # the image tower only: the text tower is fixed (image classification) or derived into the head
    fixed: tuple[str, ...] = ("text_model.", "text_projection.", "logit_scale", "logit_bias")

    def __init__(self, cfg: Any) -> None:
        from ftcli.models.clip import FAMILIES

        super().__init__(cfg)
        self.max_length = 77  # CLIP's text length; a run sets the model's (load_processor)
        self.positions = 77  # the text tower's positions: every text is at most as long
        self.family = FAMILIES["clip"]  # the model's (load_processor, load_pretrained): padding, loss
        self.baseline: dict[str, Any] = {}  # the zero-shot metrics on validation, before training
        self.encoded: dict[int, Any] = {}  # id(split) → the split as model inputs (the baseline reads validation's)
        self.labels: list[str] | None = None  # predict labels=[…]: zero-shot over these names
        check_templates(self.templates, "task.templates")

    @property
    def templates(self) -> list[str]:
        return [str(t) for t in self.cfg.templates]

    # ---- processor and inputs ---------------------------------------------------------------------
    def prompt_texts(self, data: TaskData) -> list[str]:
        """What a random-init tokenizer learns its vocabulary from: the prompts of every class."""
        return [t.format(n) for n in data.label_names for t in self.templates]

    def load_processor(self, model: ModelConfig, cache_dir: Path, data: TaskData) -> Any:
        from ftcli.models.clip import checkpoint_text, load_processor

        self.cache_dir = Path(cache_dir)
        self.family, self.positions = checkpoint_text(model, self.cache_dir)
        self.max_length = min(int(model.max_length), self.positions)
        side = self.dataset.image_size if self.dataset is not None else None
        return load_processor(model, self.cache_dir, side, self.prompt_texts(data))

    def encode(self, ds: Any, columns: list[str], processor: Any, model: ModelConfig) -> Any:
        self.tokenizer = processor.tokenizer
        self.max_length = min(int(getattr(model, "max_length", None) or self.max_length), self.positions)
        encoded = super().encode(ds, columns, processor.image_processor, model)
        self.encoded[id(ds)] = encoded
        return encoded

    # ---- the model -------------------------------------------------------------------------------
    def uses_remote_code(self, pooling: str | None) -> bool:
        return True  # modeling_ftcli_clip.py ships in every checkpoint

    def build_model(self, model: ModelConfig, pooling: str, data: TaskData, processor: Any, seed: int) -> Any:
        from ftcli.models.clip import build_clip

        side = resizer_of(processor.image_processor).size[0]
        built = build_clip(model, data.label_names, processor.tokenizer, seed, side, self.cache_dir)
        self.prepare(built, processor)
        self.init_head(built, processor, data.label_names, seed)
        self.measure_baseline(built, processor, data.label_names, self.encoded.get(id(data.splits["validation"])))
        return built

    def prepare(self, model: Any, processor: Any) -> None:
        """The image tower is the backbone strategies see (``base_model``); what never trains is named."""
        model.base_model_prefix = "vision_model"
        # CLIP's projection (pretrained) is frozen with the tower, "post" in partial; SigLIP's attention-pooling
        # head sits inside its vision_model, after the layers: "post" already
        model.ftcli_backbone_also = ("visual_projection.",)
        model.ftcli_fixed = self.fixed
        self.tokenizer = processor.tokenizer

    def init_head(self, model: Any, processor: Any, names: list[str], seed: int) -> None:
        from ftcli.models.clip import set_zero_shot_head

        set_zero_shot_head(model, processor.tokenizer, names, self.templates, self.max_length)

    def measure_baseline(self, model: Any, processor: Any, names: list[str], validation: Any) -> None:
        """The zero-shot classifier on the validation split, before any training (on a GPU when there is
        one, in fp32): every run shows it beside its own numbers."""
        import torch

        from ftcli.models.clip import set_zero_shot_head

        if validation is None:
            return
        head = model.classifier.weight.detach().clone()
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        model.to(device)
        set_zero_shot_head(model, processor.tokenizer, names, self.templates, self.max_length)
        batches = ({k: v.to(device) for k, v in b.items()} for b in self.eval_loader(validation, processor, 64))
        metrics = self.metrics(*self.outputs(model, batches), names)
        model.classifier.weight.data.copy_(head)
        model.to("cpu").train()
        self.baseline = {f"{ZEROSHOT}{k}": v for k, v in metrics.items() if isinstance(v, float)}
        shown = " · ".join(f"{k} {metrics[k]:.4f}" for k in ("accuracy", "i2t_r1") if k in metrics)
        self.notes.append(f"zero-shot baseline (validation, no training): {shown}")

    def evaluate(self, model: Any, batches: Any, accelerator: Any, names: list[str]) -> dict[str, Any]:
        return {**super().evaluate(model, batches, accelerator, names), **self.baseline}

    def beside(self, metrics: dict[str, Any]) -> str:
        zs = self.baseline.get(f"{ZEROSHOT}accuracy")
        return f" (zero-shot accuracy {zs:.4f})" if zs is not None else ""

    def missing_processor(self, folder: Path) -> str | None:
        if not (folder / "tokenizer_config.json").is_file():
            return "no tokenizer (tokenizer_config.json)"
        if not any((folder / f).is_file() for f in ("preprocessor_config.json", "processor_config.json")):
            return "no image processor (preprocessor_config.json)"
        return None

    def load_pretrained(self, folder: Path, trust_remote_code: bool, allow_pickle: bool) -> tuple[Any, Any]:
        """ftcli's own class (the copy in the folder is for plain transformers) and the folder's processor."""
        from transformers import AutoConfig, AutoProcessor

        from ftcli.models.clip import family_of

        config = AutoConfig.from_pretrained(folder)
        self.family = family_of(config.model_type, f"checkpoint={folder}")
        self.positions = int(config.text_config.max_position_embeddings)
        safetensors_only = None if allow_pickle else True
        model: Any = self.family.model_class().from_pretrained(folder, use_safetensors=safetensors_only)
        processor = AutoProcessor.from_pretrained(folder)
        self.prepare(model, processor)
        # a CLIP folder from elsewhere has no head yet: checkpoint_labels makes the zero-shot one
        model.ftcli_plain = type(model).__name__ not in (model.config.architectures or [])
        return model, processor

    def checkpoint_labels(self, model: Any, processor: Any, dataset: Any, seed: int, options: Any) -> list[str]:
        """A CLIP folder not written by ftcli (zero-shot evaluation, no training): the data's class names,
        and the head made from them with ``eval.templates``."""
        from ftcli.models.clip import set_zero_shot_head

        if not getattr(model, "ftcli_plain", False):
            return super().checkpoint_labels(model, processor, dataset, seed, options)
        names = self.load_data(dataset, seed).label_names
        self.cfg.templates = check_templates([str(t) for t in options.templates], "eval.templates")
        model.config.id2label = dict(enumerate(names))
        model.config.label2id = {n: i for i, n in enumerate(names)}
        set_zero_shot_head(model, processor.tokenizer, names, self.templates, self.max_length)
        return names

    # ---- a frozen image tower: the head trains on cached normalised embeddings ----------------
    def caches_features(self, model: Any) -> bool:
        return True

    def head(self, model: Any) -> Any:
        return model.classifier

    # ---- predict and export ------------------------------------------------------------------
    def single_input(self, cfg: Any) -> tuple[dict[str, Any], list[str]]:
        self.labels = _labels(cfg)
        return super().single_input(cfg)

    def input_columns_of(self, cfg: Any, dataset: Any, rows: list[dict[str, Any]], where: str) -> list[str]:
        self.labels = _labels(cfg)
        return super().input_columns_of(cfg, dataset, rows, where)

    def predict_outputs(self, loaded: Loaded, rows: list[dict[str, Any]], columns: list[str], batch_size: int) -> Any:
        """Logits of the checkpoint's head; with ``labels=[…]``, of a zero-shot head over those names."""
        from ftcli.models.clip import set_zero_shot_head

        if self.labels:
            length = int(loaded.model_cfg.get("max_length") or self.max_length)
            set_zero_shot_head(loaded.model, loaded.processor.tokenizer, self.labels, self.templates, length)
        return super().predict_outputs(
            loaded.with_processor(loaded.processor.image_processor), rows, columns, batch_size
        )

    def predictions(self, outputs: np.ndarray, names: list[str]) -> list[dict[str, Any]]:
        return super().predictions(outputs, self.labels or names)  # type: ignore[misc]

    def onnx_spec(self, model: Any, processor: Any) -> OnnxSpec:
        """The image tower and the head: pixel_values → logits (the text tower is not exported)."""
        return super().onnx_spec(model, processor.image_processor)


def check_templates(templates: list[str], key: str) -> list[str]:
    """Prompt templates that each name the class (``{}``); one line naming the first that does not."""
    if not templates:
        raise FtcliError(f'{key}=[]: give at least one prompt template, e.g. ["a photo of a {{}}."]')
    for t in templates:
        try:
            ok = "{}" in t and t.format("x") != t.format("y")
        except (IndexError, KeyError, ValueError):
            ok = False
        if not ok:
            raise FtcliError(
                f"{key}: '{t}' must hold the class name as {{}} (and no other braces), e.g. 'a photo of a {{}}.'"
            )
    return templates


def _labels(cfg: Any) -> list[str] | None:
    labels = cfg.get("labels")
    if labels is None:
        return None
    names = [str(n) for n in labels]
    if len(names) < 2 or len(set(names)) != len(names):
        raise FtcliError(f"labels={names}: give at least two distinct class names, e.g. labels=[cat,dog]")
    return names
