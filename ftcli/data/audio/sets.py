"""A split of cached clips as model inputs: batches cut from the clip cache, augmented for training (seeded by the
rows), turned into the model's inputs by its feature extractor; labels are class ids, or token ids per clip
(transcripts, padded with -100 as transformers' CTC heads ignore)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ftcli.data.audio.augment import AudioAugment, augment
from ftcli.data.audio.batches import pad
from ftcli.data.audio.cache import Clips
from ftcli.data.audio.features import model_inputs, rate_of
from ftcli.data.images.augment import batch_generator

IGNORE = -100  # a label position no loss reads (transformers' convention)


def pad_labels(rows: list[Any]) -> Any:
    """Token-id lists → [B, longest] int64, -100 past each list's end."""
    out = torch.full((len(rows), max((len(r) for r in rows), default=0)), IGNORE, dtype=torch.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.as_tensor(r, dtype=torch.int64)
    return out


class AudioSet:
    """A split as model inputs: the cached clips (stored clip i is split row ``clips.kept[i]``), each kept clip's
    label (a class id, or an array of token ids), and the extractor that makes model inputs. Indexing by a list of
    rows gives a whole batch (``__getitems__``)."""

    def __init__(
        self,
        clips: Clips,
        labels: np.ndarray,
        extractor: Any,
        aug: AudioAugment | None = None,
        seed: int = 0,
        with_idx: bool = False,
    ) -> None:
        self.clips, self.labels, self.extractor = clips, labels, extractor
        self.aug, self.seed, self.with_idx = aug, seed, with_idx
        self.key = clips.key
        self.ragged = labels.dtype == object  # token ids per clip (transcripts)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        """Samples per clip: what batches are grouped by."""
        return self.clips.lengths

    def view(self, aug: AudioAugment | None, seed: int, with_idx: bool) -> AudioSet:
        """The same clips for a loader: training (augmented, seeded) or inference (carrying ``idx``)."""
        return AudioSet(self.clips, self.labels, self.extractor, aug, seed, with_idx)

    def __getitems__(self, rows: list[int]) -> dict[str, Any]:
        order = np.asarray(rows, dtype=np.int64)
        waves, lengths = pad([self.clips.clip(int(i)) for i in order])
        if self.aug is not None:
            waves, lengths = augment(
                waves, lengths, self.aug, rate_of(self.extractor), batch_generator(self.seed, order)
            )
        batch = model_inputs(waves, lengths, self.extractor)
        picked = self.labels[order]
        batch["labels"] = pad_labels(list(picked)) if self.ragged else torch.from_numpy(picked.astype(np.int64))
        if self.with_idx:
            batch["idx"] = torch.from_numpy(order)
        return batch

    def __getitem__(self, row: int) -> dict[str, Any]:  # a DataLoader without batches; not used by ftcli
        return {k: v[0] for k, v in self.__getitems__([row]).items()}
