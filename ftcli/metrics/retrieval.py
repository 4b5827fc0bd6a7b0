"""Retrieval metrics: image→text and text→image Recall@k and mean rank, identical captions one gallery entry."""

from __future__ import annotations

import numpy as np


def retrieval_metrics(image: np.ndarray, text: np.ndarray, caption_ids: np.ndarray) -> dict[str, float]:
    """image→text and text→image Recall@1/5/10 and mean rank (1 = first). Identical captions are one
    gallery entry: an image's caption is ranked among the distinct captions; a caption is found when any of
    its images is (the best rank counts), as with COCO's several captions per image."""
    ids, first = np.unique(caption_ids, return_index=True)
    gallery = text[first]  # one embedding per distinct caption
    own = np.searchsorted(ids, caption_ids)  # each image's caption, as a gallery row
    sims = image @ gallery.T  # [images, captions]
    i2t = 1 + (sims > sims[np.arange(len(image)), own][:, None]).sum(1)
    t2i = np.empty(len(ids), dtype=np.int64)
    for c in range(len(ids)):
        column = sims[:, c]
        t2i[c] = 1 + (column > column[own == c].max()).sum()
    out: dict[str, float] = {}
    for name, ranks in (("i2t", i2t), ("t2i", t2i)):
        for k in (1, 5, 10):
            out[f"{name}_r{k}"] = float((ranks <= k).mean())
        out[f"{name}_mean_rank"] = float(ranks.mean())
    return out
