"""CLIP contrastive training on image–caption pairs: both towers, CLIP's symmetric InfoNCE with its learnable
temperature (SigLIP: its pairwise sigmoid loss, with a learnable bias too) and negatives from every process;
evaluated as a zero-shot classifier (the class names' prompts) and by retrieval (image→text, text→image
Recall@1/5/10, mean rank)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ftcli.config.schemas import ClipContrastiveConfig, DatasetConfig, ModelConfig
from ftcli.tasks.base import OtherSplit, TaskData
from ftcli.tasks.classification import Classification
from ftcli.tasks.clip import ClipImages


class ClipContrastive(ClipImages, Classification):
    schema = ClipContrastiveConfig
    fixed = ("classifier.",)  # the head is derived from the text tower before every evaluation

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        self.captions: dict[int, list[str]] = {}  # id(raw split) → its captions, row by row
        self.classes = 0  # the head's width: the first columns of outputs() (set there)

    # ---- captions ---------------------------------------------------------------------------------
    def load_data(self, dataset: DatasetConfig, seed: int) -> TaskData:
        """The classification splits plus each row's caption (the caption column, else templates[0] of
        the row's label) kept beside them."""
        data = super().load_data(dataset, seed)
        column = self.cfg.caption_column
        for ds in data.splits.values():
            if column in ds.column_names:
                self.captions[id(ds)] = [str(c or "") for c in ds[column]]
            else:
                self.captions[id(ds)] = [self.templates[0].format(data.label_names[y]) for y in ds["labels"]]
        return data

    def prompt_texts(self, data: TaskData) -> list[str]:
        return [*super().prompt_texts(data), *(c for ds in data.splits.values() for c in self.captions[id(ds)])]

    def encode(self, ds: Any, columns: list[str], processor: Any, model: ModelConfig) -> Any:
        from ftcli.models.clip import tokenize

        images = super().encode(ds, columns, processor, model)
        captions = self.captions.get(id(ds)) or [self.templates[0].format("")] * len(ds)
        kept = [captions[i] for i in images.kept]
        ids = tokenize(processor.tokenizer, kept, self.max_length, self.family.padding)
        _, group = np.unique(np.asarray(kept, dtype=object).astype(str), return_inverse=True)
        crop = self.family.padding == "longest"  # SigLIP reads the last position: its texts keep their length
        captioned = Captioned(images, ids["input_ids"], ids["attention_mask"], group, crop)
        self.encoded[id(ds)] = captioned
        return captioned

    def caches_features(self, model: Any) -> bool:
        return False  # the text tower trains too: no frozen features to cache

    # ---- the loss ---------------------------------------------------------------------------------
    def loss(self, model: Any, batch: dict[str, Any]) -> Any:
        out = model(
            pixel_values=batch["pixel_values"], input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        )
        # under DDP, the wrapped model's own logit_scale (and bias); CLIP: InfoNCE, SigLIP: the sigmoid loss
        from ftcli.tasks.objectives.clip_losses import family_loss

        return family_loss(self.family.key, out.image_embeds, out.text_embeds, getattr(model, "module", model))

    def count(self, batch: dict[str, Any]) -> tuple[int, int]:
        return len(batch["labels"]), int(batch["attention_mask"].sum())

    # ---- evaluation: zero-shot accuracy and retrieval --------------------------------------------
    def outputs(self, model: Any, batches: Any, accelerator: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """[zero-shot logits | image embedding | caption embedding | caption id] per row: the head is first
        made again from the text tower (it trained), then everything comes from one pass."""
        import torch

        from ftcli.models.clip import set_zero_shot_head
        from ftcli.runtime.inference import infer

        inner = getattr(model, "module", model)
        names = [inner.config.id2label[i] for i in range(inner.config.num_labels)]
        self.classes = len(names)
        set_zero_shot_head(inner, self.tokenizer, names, self.templates, self.max_length)
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

    def metrics(self, outputs: np.ndarray, labels: np.ndarray, names: list[str]) -> dict[str, Any]:
        from ftcli.metrics.retrieval import retrieval_metrics

        c = len(names)
        metrics = super().metrics(outputs[:, :c], labels, names)
        if outputs.shape[1] > c:  # packed by outputs(); predict's outputs are the logits alone
            d = (outputs.shape[1] - c - 1) // 2
            image, text = outputs[:, c : c + d], outputs[:, c + d : c + 2 * d]
            metrics.update(retrieval_metrics(image, text, outputs[:, -1].astype(np.int64)))
        return metrics

    def eval_extras(
        self, outputs: np.ndarray, labels: np.ndarray, options: Any, seed: int, other: OtherSplit | None = None
    ) -> dict[str, Any]:
        c = self.classes
        sliced = None if other is None else (lambda split: (other(split)[0][:, :c], other(split)[1]))
        return super().eval_extras(outputs[:, :c], labels, options, seed, sliced)

    def card_task(self, labels: list[str] | None) -> str:
        return "CLIP image–text model (contrastive), zero-shot " + super().card_task(labels)


class Captioned:
    """An encoded image split with each row's caption tokens and caption group (rows with the same text)."""

    def __init__(self, images: Any, input_ids: Any, attention_mask: Any, group: np.ndarray, crop: bool) -> None:
        self.images, self.input_ids, self.attention_mask, self.group = images, input_ids, attention_mask, group
        self.crop = crop  # to the batch's longest caption (CLIP); SigLIP's texts stay padded to max_length
        self.labels, self.key, self.kept = images.labels, images.key, images.kept
        self.scale, self.shift = images.scale, images.shift

    def __len__(self) -> int:
        return len(self.images)

    def view(self, augment: Any, seed: int, with_idx: bool) -> Captioned:
        images = self.images.view(augment, seed, with_idx)
        return Captioned(images, self.input_ids, self.attention_mask, self.group, self.crop)

    def __getitems__(self, rows: list[int]) -> dict[str, Any]:
        import torch

        batch = self.images.__getitems__(rows)
        order = torch.as_tensor(rows, dtype=torch.long)
        mask = self.attention_mask[order]
        width = max(int(mask.sum(1).max()), 1) if self.crop else mask.shape[1]  # the batch's longest caption
        batch.update(input_ids=self.input_ids[order, :width], attention_mask=mask[:, :width])
        batch["caption_group"] = torch.from_numpy(self.group[np.asarray(rows)])
        return batch

    def __getitem__(self, row: int) -> dict[str, Any]:
        return {k: v[0] for k, v in self.__getitems__([row]).items()}
