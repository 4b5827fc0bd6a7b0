"""CLIP inputs: images in, CLIP's (or SigLIP's) two towers, class names read as prompts.

:class:`ClipImages` is the image side of both CLIP tasks: the pixels of :class:`ImageInputs` through the processor's
image processor, and the model (``models/clip.py``: CLIPModel or SiglipModel + a head on the normalised image
embedding, initialised as the zero-shot classifier). It can remake that head for any label set (zero-shot
prediction, a CLIP folder from elsewhere) and measure it before training (:class:`ZeroShotBaseline`).
:class:`ClipCaptions` adds each row's caption for contrastive training of both towers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoConfig, AutoProcessor

from ftcli.config.errors import FtcliError
from ftcli.config.schemas import DatasetConfig, ModelConfig
from ftcli.data.images.batches import Captioned
from ftcli.data.images.resize import resizer_of
from ftcli.data.tables import Raw, drop_empty
from ftcli.models.architectures import Roles
from ftcli.models.clip import (
    build_clip,
    family_of,
    family_of_processor,
    load_processor,
    set_random_head,
    set_zero_shot_head,
    text_length,
    tokenize,
)
from ftcli.runtime.inference import infer
from ftcli.tasks.inputs.images import ImageInputs
from ftcli.tasks.task import BatchPlan, Built, Card, Head, Loaded, OnnxSpec, TaskData

ZEROSHOT = "zeroshot_"  # prefix of the baseline's metrics beside a run's own
# the image tower is the backbone strategies see; CLIP's projection (pretrained) is frozen with it and trains as
# "post" under partial (SigLIP's attention-pooling head sits inside its vision_model, after the layers: post already)
BACKBONE = ("vision_model.", "visual_projection.")
TEXT_TOWER = ("text_model.", "text_projection.", "logit_scale", "logit_bias")  # fixed under image classification
CARD = Card(
    "image-classification",
    "AutoModelForImageClassification",
    "AutoProcessor",
    'run("cat.jpg")  # the fine-tuned head; CLIPModel.from_pretrained(path) reads both towers',
    "image=cat.jpg  (or labels=[cat,dog] for zero-shot over other names)",
)


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


class ClipImages:
    """Images through CLIP's image processor; class names through its tokenizer and text tower."""

    kind = "image"
    card = CARD

    def __init__(self, cfg: Any, cache_dir: Path) -> None:
        self.templates = check_templates([str(t) for t in cfg.templates], "task.templates")
        self.random_head = getattr(cfg, "head_init", "zeroshot") == "random"
        self.images = ImageInputs(cache_dir)  # the pixel side: columns, decoding, batches, predict's rows
        self.cache_dir = cache_dir

    def prompts(self, names: list[str]) -> list[str]:
        return [t.format(n) for n in names for t in self.templates]

    def columns(self, dataset: DatasetConfig) -> list[tuple[str, str | None]]:
        return self.images.columns(dataset)

    def raw(self, dataset: DatasetConfig) -> Raw:
        return self.images.raw(dataset)

    def processor(self, model: ModelConfig, data: TaskData) -> Any:
        """The checkpoint's processor; a random model's tokenizer learns its vocabulary from the class prompts."""
        return load_processor(model, self.cache_dir, data.dataset.image_size, self.prompts(data.label_names))

    def encode(self, ds: Any, data: TaskData, processor: Any, model: ModelConfig) -> Any:
        return self.images.encode(ds, data, processor.image_processor, model)

    def train_loader(self, ds: Any, data: TaskData, processor: Any, plan: BatchPlan) -> tuple[Any, Any]:
        return self.images.train_loader(ds, data, processor.image_processor, plan)

    def eval_loader(self, ds: Any, processor: Any, batch_size: int) -> Any:
        return self.images.eval_loader(ds, processor, batch_size)

    def count(self, batch: dict[str, Any]) -> tuple[int, int]:
        return self.images.count(batch)

    def build_model(self, model: ModelConfig, pooling: str, data: TaskData, processor: Any, head: Head) -> Built:
        """The CLIP/SigLIP classifier, its head the zero-shot classifier (``task.head_init=random``: random, of the
        same scale); the text tower never trains."""
        side = resizer_of(processor.image_processor).size[0]
        built = build_clip(model, head.names, processor.tokenizer, head.seed, side, self.cache_dir)
        self.relabel(built, processor, head.names)
        notes: tuple[str, ...] = ()
        if self.random_head:
            set_random_head(built, head.seed)
            notes = ("task.head_init=random: the head starts at random (zero-shot: head_init=zeroshot)",)
        return Built(built, Roles(BACKBONE, TEXT_TOWER), "native", notes)

    def outputs(self, model: Any, batches: Any, processor: Any, accelerator: Any = None) -> tuple[Any, Any]:
        return self.images.outputs(model, batches, processor, accelerator)

    def load_pretrained(self, folder: Path, trust_remote_code: bool, allow_pickle: bool) -> tuple[Any, Any]:
        """ftcli's own class (the copy in the folder is for plain transformers) and the folder's processor."""
        config = AutoConfig.from_pretrained(folder)
        family = family_of(config.model_type, f"checkpoint={folder}")
        safetensors_only = None if allow_pickle else True
        model: Any = family.model_class().from_pretrained(folder, use_safetensors=safetensors_only)
        return model, AutoProcessor.from_pretrained(folder)

    def missing(self, folder: Path) -> str | None:
        if not (folder / "tokenizer_config.json").is_file():
            return "no tokenizer (tokenizer_config.json)"
        if not any((folder / f).is_file() for f in ("preprocessor_config.json", "processor_config.json")):
            return "no image processor (preprocessor_config.json)"
        return None

    # ---- zero-shot: a head for any label set ----------------------------------------------------
    def plain(self, model: Any) -> bool:
        """A CLIP folder not written by ftcli (no trained head: ``ftcli eval`` makes the zero-shot one)."""
        return type(model).__name__ not in (model.config.architectures or [])

    def relabel(
        self, model: Any, processor: Any, names: list[str], templates: list[str] | None = None, key: str = "templates"
    ) -> None:
        """The head ← the zero-shot classifier of ``names`` (each through every template: the task's, or
        ``templates``, checked under config ``key``), labels renamed."""
        prompts = self.templates if templates is None else check_templates([str(t) for t in templates], key)
        model.config.id2label = dict(enumerate(names))
        model.config.label2id = {n: i for i, n in enumerate(names)}
        set_zero_shot_head(model, processor.tokenizer, names, prompts, text_length(processor))

    # ---- a frozen image tower: the head trains on cached normalised embeddings ----------------
    def applies(self, model: Any) -> bool:
        return True

    def identities(self, model: Any, processor: Any, splits: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return self.images.identities(model, processor, splits)

    def compute(self, model: Any, ds: Any, processor: Any, batch_size: int, accelerator: Any) -> dict[str, Any]:
        return self.images.compute(model, ds, processor, batch_size, accelerator)

    def name(self, model: Any) -> str:
        return "pooled"

    def head(self, model: Any) -> Any:
        return model.classifier

    def labels_of(self, ds: Any) -> np.ndarray:
        return np.asarray(ds.labels)

    # ---- predict and export: the image tower and the head ------------------------------------
    def single_input(self, cfg: Any) -> tuple[dict[str, Any], list[str]]:
        return self.images.single_input(cfg)

    def input_rows(self, src: Path) -> list[dict[str, Any]] | None:
        return self.images.input_rows(src)

    def input_columns(self, cfg: Any, dataset: Any, rows: list[dict[str, Any]], where: str) -> list[str]:
        return self.images.input_columns(cfg, dataset, rows, where)

    def predict(
        self, loaded: Loaded, rows: list[dict[str, Any]], columns: list[str], batch_size: int, base: Path
    ) -> Any:
        images = Loaded(loaded.model, loaded.processor.image_processor, loaded.model_cfg, loaded.accelerator)
        return self.images.predict(images, rows, columns, batch_size, base)

    def onnx_spec(self, model: Any, processor: Any) -> OnnxSpec:
        """The image tower and the head: pixel_values → logits (the text tower is not exported)."""
        return self.images.onnx_spec(model, processor.image_processor)


class ClipCaptions(ClipImages):  # the image side as it is, captions beside it
    """Image–caption pairs for contrastive training of both towers: each row's caption is
    ``task.caption_column`` (null: ``templates[0]`` of the row's label). No frozen features: the text tower
    trains too, and the head is made from it again before every evaluation."""

    def __init__(self, cfg: Any, cache_dir: Path) -> None:
        super().__init__(cfg, cache_dir)
        self.caption = cfg.caption_column  # None: each row's caption is templates[0] of its label

    def columns(self, dataset: DatasetConfig) -> list[tuple[str, str | None]]:
        return [*super().columns(dataset), ("task.caption_column", self.caption)]

    def raw(self, dataset: DatasetConfig) -> Raw:
        """The image rows; an empty caption is named with its file and row (or, ``dataset.empty_text=skip``, the
        row is left out and counted)."""
        named = [("task.caption_column", self.caption)]
        return drop_empty(super().raw(dataset), named, dataset.empty_text == "skip")

    def captions(self, ds: Any, names: list[str]) -> list[str]:
        if self.caption:
            return [str(c) for c in ds[self.caption]]  # none is empty: raw() refused or left out those rows
        return [self.templates[0].format(names[y]) for y in ds["labels"]]

    def processor(self, model: ModelConfig, data: TaskData) -> Any:
        """A random model's vocabulary learns the captions too."""
        captions = [c for ds in data.splits.values() for c in self.captions(ds, data.label_names)]
        texts = [*self.prompts(data.label_names), *captions]
        return load_processor(model, self.cache_dir, data.dataset.image_size, texts)

    def encode(self, ds: Any, data: TaskData, processor: Any, model: ModelConfig) -> Any:
        images = super().encode(ds, data, processor, model)
        kept = [self.captions(ds, data.label_names)[i] for i in images.kept]
        padding = family_of_processor(processor).padding
        ids = tokenize(processor.tokenizer, kept, text_length(processor), padding)
        _, group = np.unique(np.asarray(kept, dtype=object).astype(str), return_inverse=True)
        crop = padding == "longest"  # SigLIP reads the last position: its texts keep their length
        return Captioned(images, ids["input_ids"], ids["attention_mask"], group, crop)

    def count(self, batch: dict[str, Any]) -> tuple[int, int]:
        return len(batch["labels"]), int(batch["attention_mask"].sum())

    def applies(self, model: Any) -> bool:
        return False  # the text tower trains too: no frozen features to cache

    def build_model(self, model: ModelConfig, pooling: str, data: TaskData, processor: Any, head: Head) -> Built:
        built = super().build_model(model, pooling, data, processor, head)
        return Built(built.model, Roles(BACKBONE, ("classifier.",)), built.pooling, built.notes)  # head: derived

    def outputs(self, model: Any, batches: Any, processor: Any, accelerator: Any = None) -> tuple[Any, Any]:
        """[zero-shot logits | image embedding | caption embedding | caption id] per row: the head is first made
        again from the text tower (it trained), then everything comes from one pass."""
        inner = getattr(model, "module", model)
        self.relabel(inner, processor, [inner.config.id2label[i] for i in range(inner.config.num_labels)])
        model.eval()

        def forward(batch: dict[str, Any]) -> dict[str, Any]:
            device = inner.logit_scale.device
            image = inner.image_embeds(batch["pixel_values"].to(device)).float()
            text = inner.text_embeds(batch["input_ids"].to(device), batch["attention_mask"].to(device)).float()
            head = inner.classifier
            bias = None if head.bias is None else head.bias.float()
            logits = torch.nn.functional.linear(image, head.weight.float(), bias)
            group = batch["caption_group"].to(device).float()[:, None]
            return {"outputs": torch.cat([logits, image, text, group], dim=1)}

        out = infer(forward, batches, accelerator)
        return out["outputs"], out["labels"]


class ZeroShotBaseline:
    """The zero-shot classifier on the validation split, measured before any training (on a GPU when there is
    one, in fp32): every run shows it beside its own numbers."""

    def __init__(self, inputs: ClipImages, metrics: Callable[[Any, Any, list[str]], dict[str, Any]]) -> None:
        self.inputs, self.metrics = inputs, metrics

    def measure(self, model: Any, processor: Any, names: list[str], validation: Any) -> dict[str, float]:
        head = model.classifier.weight.detach().clone()
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        model.to(device)
        self.inputs.relabel(model, processor, names)
        batches = ({k: v.to(device) for k, v in b.items()} for b in self.inputs.eval_loader(validation, processor, 64))
        metrics = self.metrics(*self.inputs.outputs(model, batches, processor), names)
        model.classifier.weight.data.copy_(head)
        model.to("cpu").train()
        return {f"{ZEROSHOT}{k}": v for k, v in metrics.items() if isinstance(v, float)}

    def note(self, baseline: dict[str, float]) -> str:
        shown = " · ".join(
            f"{k} {baseline[ZEROSHOT + k]:.4f}" for k in ("accuracy", "i2t_r1") if ZEROSHOT + k in baseline
        )
        return f"zero-shot baseline (validation, no training): {shown}"

    def beside(self, metrics: dict[str, Any]) -> str:
        zs = metrics.get(f"{ZEROSHOT}accuracy")
        return f" (zero-shot accuracy {zs:.4f})" if zs is not None else ""
