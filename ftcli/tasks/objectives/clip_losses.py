"""The contrastive losses over the *global* batch: CLIP's symmetric InfoNCE and SigLIP's pairwise sigmoid loss,
with every process's rows gathered differentiably, so n processes take the step one process takes."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist


def distributed() -> tuple[int, int]:
    """(this process's rank, the number of processes): (0, 1) outside torch.distributed."""

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _gather_rows() -> Any:

    class GatherRows(torch.autograd.Function):
        """Every process's rows, in rank order (sizes may differ); backward: each process's gradient for the
        whole gathered tensor is summed over processes and every process keeps its own rows' part — every
        process's loss used every row, so every row's owner gets all of their gradient."""

        @staticmethod
        def forward(ctx: Any, x: Any) -> Any:
            world = dist.get_world_size()
            size = torch.tensor([x.shape[0]], device=x.device)
            sizes = [torch.zeros_like(size) for _ in range(world)]
            dist.all_gather(sizes, size)
            counts = [int(n) for n in sizes]
            padded = x.new_zeros((max(counts), *x.shape[1:]))
            padded[: x.shape[0]] = x
            parts = [torch.zeros_like(padded) for _ in range(world)]
            dist.all_gather(parts, padded.contiguous())
            ctx.counts, ctx.rank = counts, dist.get_rank()
            return torch.cat([p[:n] for p, n in zip(parts, counts, strict=True)])

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            grad = grad.contiguous().clone()
            dist.all_reduce(grad)
            start = sum(ctx.counts[: ctx.rank])
            return grad[start : start + ctx.counts[ctx.rank]]

    return GatherRows


def gather_rows(x: Any) -> Any:
    """Every process's rows of ``x`` in rank order, differentiable (see ``GatherRows``); ``x`` alone in one process."""
    return x if distributed()[1] == 1 else _gather_rows().apply(x)


def _first_row(rows: int, device: Any) -> int:
    """This process's first row in the global batch (every process has ``rows`` of its own)."""

    rank, world = distributed()
    if world == 1:
        return 0
    mine = torch.tensor([rows], device=device)
    parts = [torch.zeros_like(mine) for _ in range(world)]
    dist.all_gather(parts, mine)
    return sum(int(n) for n in parts[:rank])


def _global_value(share: Any) -> Any:
    """The shares' mean as the value (on every process), the gradient of this process's share."""

    world = distributed()[1]
    if world == 1:
        return share
    total = share.detach().clone()
    dist.all_reduce(total)
    return share + (total / world - share.detach())


def contrastive_loss(image: Any, text: Any, logit_scale: Any) -> Any:
    """CLIP's symmetric InfoNCE over the *global* batch: pairs are (image i, text i) across every process;
    each process's images are scored against every process's texts and its texts against every image
    (global negatives). ``image``/``text``: this process's normalised embeddings [B, D]; ``logit_scale``: CLIP's
    learnable log temperature (its exp capped at 100, as CLIP does).

    Each process's rows give their share of the global mean (× processes / global batch), and gradients flow
    back to the rows' owners through the gather, so after DDP averages the gradients over processes, n
    processes take exactly the step one process takes with the whole batch. The value returned is the
    global loss itself on every process (the shares' mean, exchanged without gradient)."""

    world = distributed()[1]
    scale = logit_scale.exp().clamp(max=100.0)
    image, text = image.float(), text.float()
    all_image, all_text = gather_rows(image), gather_rows(text)
    targets = torch.arange(len(image), device=image.device) + _first_row(len(image), image.device)
    ce = torch.nn.functional.cross_entropy
    per_image = ce(scale * image @ all_text.T, targets, reduction="sum")
    per_text = ce(scale * text @ all_image.T, targets, reduction="sum")
    return _global_value((per_image + per_text) / 2 * world / len(all_image))


def sigmoid_loss(image: Any, text: Any, logit_scale: Any, logit_bias: Any) -> Any:
    """SigLIP's pairwise sigmoid loss (Zhai et al. 2023) over the *global* batch: every (image i, text j) pair is
    a binary question, label +1 when j = i and −1 otherwise, logit t·cos + b (``t = exp(logit_scale)`` and
    ``b = logit_bias``, both learnt); loss = −(1/N) Σ_i Σ_j log σ(label_ij · logit_ij), N the global batch.

    Every pair is counted once: each process scores its own images against every process's texts (gathered,
    differentiable), so the shares add up to the one-process loss and, after DDP's gradient average, to its
    step (see :func:`contrastive_loss`)."""

    world = distributed()[1]
    image, text = image.float(), text.float()
    all_text = gather_rows(text)
    logits = logit_scale.float().exp() * image @ all_text.T + logit_bias.float()
    labels = -torch.ones_like(logits)
    rows = torch.arange(len(image), device=image.device)
    labels[rows, rows + _first_row(len(image), image.device)] = 1.0
    nll = -torch.nn.functional.logsigmoid(labels * logits).sum()
    return _global_value(nll * world / len(all_text))


def family_loss(model_type: str, image: Any, text: Any, model: Any) -> Any:
    """The contrastive loss of a model family, by its checkpoints' model_type: CLIP's InfoNCE, SigLIP's sigmoid loss."""
    if model_type == "siglip":
        return sigmoid_loss(image, text, model.logit_scale, model.logit_bias)
    return contrastive_loss(image, text, model.logit_scale)
