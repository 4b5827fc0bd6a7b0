"""Batches of images: cached uint8 rows → normalised (and, for training, augmented) float tensors; raw images
for predict."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from ftcli.config.errors import FtcliError, first_line
from ftcli.data.batching import in_order, loader
from ftcli.data.images.augment import Augment, augment, batch_generator
from ftcli.data.images.decode import open_image
from ftcli.data.images.resize import Resizer


class ImageSet:
    """A split as model inputs: the cached uint8 pixels (row ``kept[i]`` is example i: unreadable images
    skipped), the labels, and the affine map to the model's pixel_values. Indexing by a list of rows gives
    a whole batch (``__getitems__``)."""

    def __init__(
        self,
        pixels: np.ndarray,
        kept: np.ndarray,
        labels: np.ndarray,
        scale: np.ndarray,
        shift: np.ndarray,
        key: str,
        whole: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> None:
        self.pixels, self.kept, self.labels, self.key = pixels, kept, labels, key
        self.scale, self.shift = scale, shift
        self.size = tuple(pixels.shape[-2:])  # the model's input (H, W)
        self.augment: Augment | None = None
        self.seed = 0
        self.with_idx = False
        self.boxes: np.ndarray | None = None  # whole images: each row's place in its canvas (crop_boxes)
        # the training split: its whole images and their boxes, decoded (or read) when augmented batches are asked for
        self.whole = whole

    def __len__(self) -> int:
        return len(self.labels)

    def view(self, augment: Augment | None, seed: int, with_idx: bool) -> ImageSet:
        """The same rows for a loader: training (augmented, seeded; cropped from the whole images where
        the split has them) or inference (carrying ``idx``; the processor's exact pixels)."""
        other = ImageSet(self.pixels, self.kept, self.labels, self.scale, self.shift, self.key)
        other.augment, other.seed, other.with_idx = augment, seed, with_idx
        if augment is not None and self.whole is not None:
            other.pixels, other.boxes = self.whole()
        return other

    def __getitems__(self, rows: list[int]) -> dict[str, Any]:

        order = np.asarray(rows, dtype=np.int64)
        pixels = torch.from_numpy(np.ascontiguousarray(self.pixels[self.kept[order]])).float()
        if self.augment is not None:
            box = None if self.boxes is None else torch.from_numpy(self.boxes[self.kept[order]])
            pixels = augment(pixels, self.augment, batch_generator(self.seed, order), box, self.size)
        scale = torch.from_numpy(self.scale).view(1, 3, 1, 1)
        shift = torch.from_numpy(self.shift).view(1, 3, 1, 1)
        batch = {"pixel_values": pixels * scale + shift, "labels": torch.from_numpy(self.labels[order])}
        if self.with_idx:
            batch["idx"] = torch.from_numpy(order)
        return batch

    def __getitem__(self, row: int) -> dict[str, Any]:  # a DataLoader without batches; not used by ftcli
        return {k: v[0] for k, v in self.__getitems__([row]).items()}


def _as_is(batch: Any) -> Any:
    """The DataLoader's collate step: ``__getitems__`` already made the batch."""
    return batch


def workers() -> int:
    """Loader workers: they pay beside a GPU (the CPU is free to cut and augment batches); on a CPU they
    would take cores from the model itself."""

    return min(4, (os.cpu_count() or 2) // 2) if torch.cuda.is_available() else 0


def train_loader(ds: ImageSet, batch_sampler: Any, augment_cfg: Augment | None, seed: int) -> Any:
    """Training batches (augmented, seeded) of the rows ``batch_sampler`` chooses."""
    view: Any = ds.view(augment_cfg, seed, with_idx=False)  # a map-style dataset: __len__ and __getitems__
    return loader(view, batch_sampler, _as_is, workers())


def eval_loader(ds: ImageSet, batch_size: int) -> Any:
    """Inference batches in dataset order, each carrying ``idx``."""
    view: Any = ds.view(None, 0, with_idx=True)  # a map-style dataset: __len__ and __getitems__
    return loader(view, in_order(len(ds), batch_size), _as_is)


def pixel_batches(sources: list[Any], resizer: Resizer, batch_size: int, where: Callable[[int], str]) -> Iterator[dict]:
    """Model inputs for raw images (``ftcli predict``), decoded batch by batch, each with ``idx``."""

    for start in range(0, len(sources), batch_size):
        rows = list(range(start, min(start + batch_size, len(sources))))
        images = []
        for i in rows:
            try:
                images.append(open_image(sources[i]))
            except FileNotFoundError as e:
                raise FtcliError(f"{where(i)}: no such image file") from e
            except Exception as e:
                raise FtcliError(f"{where(i)}: not a readable image ({first_line(e)})") from e
        pixels = torch.from_numpy(resizer.normalise_np(resizer.resize(images)))
        yield {"pixel_values": pixels, "idx": torch.tensor(rows)}


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

        batch = self.images.__getitems__(rows)
        order = torch.as_tensor(rows, dtype=torch.long)
        mask = self.attention_mask[order]
        width = max(int(mask.sum(1).max()), 1) if self.crop else mask.shape[1]  # the batch's longest caption
        batch.update(input_ids=self.input_ids[order, :width], attention_mask=mask[:, :width])
        batch["caption_group"] = torch.from_numpy(self.group[np.asarray(rows)])
        return batch

    def __getitem__(self, row: int) -> dict[str, Any]:
        return {k: v[0] for k, v in self.__getitems__([row]).items()}
