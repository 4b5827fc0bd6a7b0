"""CLIP image classification: the image tower fine-tuned under any strategy, its head initialised from the
text tower's prompt embeddings (the zero-shot classifier; ``task.head_init=random`` for comparison)."""

from __future__ import annotations

from typing import Any

from ftcli.config.schemas import ClipClassificationConfig
from ftcli.tasks.classification import Classification
from ftcli.tasks.clip import ClipImages


class ClipClassification(ClipImages, Classification):
    schema = ClipClassificationConfig
    example_call = 'run("cat.jpg")  # the fine-tuned head; CLIPModel.from_pretrained(path) reads both towers'
    predict_example = "image=cat.jpg  (or labels=[cat,dog] for zero-shot over other names)"

    def init_head(self, model: Any, processor: Any, names: list[str], seed: int) -> None:
        from ftcli.models.clip import set_random_head

        super().init_head(model, processor, names, seed)
        if self.cfg.head_init == "random":
            set_random_head(model, seed)
            self.notes.append("task.head_init=random: the head starts at random (zero-shot: head_init=zeroshot)")

    def card_task(self, labels: list[str] | None) -> str:
        return "CLIP " + super().card_task(labels)
