r"""A classifier too large for one GPU: class centres sharded over ranks (model parallel).

MS1MV2 has 85,742 identities and WebFace42M two million: the (C, D) matrix of centres, its
gradient and its optimiser state, and above all the (B, C) logits, outgrow one device, while the
backbone is small. So the backbone is data parallel (each rank embeds its slice of the batch,
gradients summed) and the classifier is model parallel, as in An et al., "Partial FC: Training
10 Million Identities on a Single Machine" (ICCVW 2021):

1. every rank gathers the embeddings (and labels) of the whole global batch;
2. rank r holds centres ``[start_r, end_r)``: a contiguous block of about C / world_size classes;
   it computes the cosines of every embedding with its centres, (B, C_r), and applies the loss's
   own :meth:`~frbook.losses.base.CosineLoss.logits` to them, with the labels that fall in its
   block (a row whose class lives elsewhere gets its margin nowhere on this rank);
3. the softmax cross-entropy over all C classes needs, per row, only three numbers from all
   ranks: the maximum logit (for stability), the sum of ``exp(logit - max)`` and the target
   logit (found on the owning rank). Two all-reduces of (B,) vectors replace gathering (B, C):

       loss_i = log sum_r S_i^r + max_i - z_{i, y_i},    S_i^r = sum_{j in shard r} exp(z_ij - max_i).

Every rank then holds the same loss. Its gradient reaches each rank's centres directly, and each
rank's embeddings by summing, over ranks, the gradients that each shard sends back (the
backward of the gather). The backbone's parameter gradients must then be *summed* over ranks,
not averaged as DistributedDataParallel does by default: each rank's part is already a part of
the one global loss (:func:`sum_gradients_hook`).

Negative-centre sampling (``sample_rate`` < 1, Partial FC's other idea): each rank scores only
the centres of the classes present in the batch plus a random subset of the others, so that
``sample_rate`` of its centres take part; the rest get no gradient that step. The draw uses
torch's global generator, which the trainer's checkpoints save.

Only losses whose logits for a row depend on that row's cosines column by column, plus the
target, can be split this way (:func:`check_loss`).
"""
from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..losses import ArcFace, CombinedMargin, CosFace, NormFace, SphereFace, SubCenterArcFace

__all__ = ["PartialFC", "check_loss", "shard_range", "sum_gradients_hook"]

SHARDABLE = (NormFace, CosFace, ArcFace, SphereFace, CombinedMargin)


def check_loss(loss) -> None:
    """Raise ValueError unless ``loss``'s logits can be computed shard by shard."""
    if isinstance(loss, SubCenterArcFace):
        raise ValueError("sub-centres are not sharded; use arcface")
    if not isinstance(loss, SHARDABLE):
        raise ValueError(f"{type(loss).__name__}'s logits read the whole row of classes (a scale from all "
                         "cosines, hard negatives relative to the target, feature norms) or it is not a "
                         "softmax over cosines; the sharded classifier supports normface, cosface, arcface, "
                         "sphereface and combined")
    if loss.learn_scale:
        raise ValueError("a learned scale would need its gradient summed over ranks; fix s instead")


def shard_range(num_classes: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rank ``rank``'s classes ``[start, end)``: contiguous, sizes differing by at most one."""
    base, extra = divmod(num_classes, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _GatherBatch(torch.autograd.Function):
    """All ranks' (b, D) slices as one (W*b, D) batch; backward sums every rank's gradient of the
    whole batch and hands each rank its own rows."""

    @staticmethod
    def forward(ctx, x):
        rank, world = _world()
        ctx.rank, ctx.rows = rank, x.shape[0]
        if world == 1:
            return x.clone()
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        if _world()[1] > 1:
            dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


class _SumOverRanks(torch.autograd.Function):
    """Sum of a tensor over ranks. Backward passes the gradient through unchanged: every rank
    computes the same loss from the sum, so each already holds the gradient of its own term
    (an all-reduce there would count it ``world_size`` times)."""

    @staticmethod
    def forward(ctx, x):
        out = x.clone()
        if _world()[1] > 1:
            dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        return grad


def _gather_labels(labels: torch.Tensor) -> torch.Tensor:
    world = _world()[1]
    if world == 1:
        return labels
    parts = [torch.empty_like(labels) for _ in range(world)]
    dist.all_gather(parts, labels.contiguous())
    return torch.cat(parts)


class PartialFC(nn.Module):
    """This rank's block of class centres, and the margin softmax over all ranks' blocks.

    ``forward(embeddings, labels)`` takes this rank's slice of the batch (labels global, 0 .. C-1)
    and returns the mean loss over the *global* batch, the same number on every rank. With one
    process it equals :class:`~frbook.heads.CosineClassifier` followed by ``loss``.

    Args:
        embedding_dim, num_classes: D and the total C.
        loss: a loss of :data:`SHARDABLE` (see :func:`check_loss`).
        sample_rate: fraction of this rank's centres scored per batch, in (0, 1].
        rank, world_size: default: the process group's.
    """

    def __init__(self, embedding_dim: int, num_classes: int, loss: nn.Module, sample_rate: float = 1.0,
                 rank: int | None = None, world_size: int | None = None):
        super().__init__()
        check_loss(loss)
        if not 0 < sample_rate <= 1:
            raise ValueError(f"sample_rate must be in (0, 1]; got {sample_rate}")
        default_rank, default_world = _world()
        self.rank = default_rank if rank is None else rank
        self.world_size = default_world if world_size is None else world_size
        if num_classes < self.world_size:
            raise ValueError(f"{num_classes} classes cannot be sharded over {self.world_size} ranks")
        self.num_classes, self.sample_rate = int(num_classes), float(sample_rate)
        # Not registered as a submodule: the trainer owns the loss and saves its state once.
        object.__setattr__(self, "loss", loss)
        self.start, self.end = shard_range(self.num_classes, self.rank, self.world_size)
        self.weight = nn.Parameter(torch.empty(self.end - self.start, embedding_dim))
        nn.init.normal_(self.weight, std=0.01)  # as CosineClassifier: only directions matter

    def _sample(self, local: torch.Tensor, inside: torch.Tensor):
        """(centre rows to score, labels re-indexed into them) for ``sample_rate`` < 1."""
        n = self.weight.shape[0]
        positives = torch.unique(local[inside])
        keep = max(positives.numel(), math.ceil(self.sample_rate * n))
        score = torch.rand(n, device=self.weight.device)
        score[positives] = 2.0  # present classes always take part
        rows = score.topk(keep).indices.sort().values
        position = torch.full((n,), -1, dtype=torch.long, device=local.device)
        position[rows] = torch.arange(keep, device=local.device)
        return rows, torch.where(inside, position[local.clamp(0, n - 1)], local)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x = _GatherBatch.apply(embeddings)
        y = _gather_labels(labels)
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
            raise ValueError(f"labels must lie in [0, {self.num_classes - 1}]")
        local = y - self.start
        inside = (local >= 0) & (local < self.weight.shape[0])
        weight = self.weight
        if self.sample_rate < 1 and self.training:
            rows, local = self._sample(local, inside)
            weight = weight[rows]
        wide = torch.promote_types(x.dtype, torch.float32)  # half precision in, float32 softmax
        cos = (F.normalize(x, dim=1) @ F.normalize(weight, dim=1).t()).to(wide).clamp(-1, 1)
        k = cos.shape[1]
        # Rows whose class lives on another rank point at an extra column, dropped afterwards:
        # the loss's own logits put the margin where it belongs and nowhere else.
        padded = torch.cat([cos, cos.new_zeros(cos.shape[0], 1)], dim=1)
        logits = self.loss.logits(padded, torch.where(inside, local, k))[:, :k].to(wide)

        row_max = logits.detach().max(dim=1).values
        if _world()[1] > 1:
            dist.all_reduce(row_max, op=dist.ReduceOp.MAX)
        sum_exp = _SumOverRanks.apply(torch.exp(logits - row_max.unsqueeze(1)).sum(dim=1))
        own = logits.gather(1, local.clamp(0, max(k - 1, 0)).unsqueeze(1)).squeeze(1)
        target = _SumOverRanks.apply(torch.where(inside, own, torch.zeros_like(own)))
        return (sum_exp.log() + row_max - target).mean()


def sum_gradients_hook(state, bucket):
    """A DistributedDataParallel communication hook that sums gradients over ranks instead of
    averaging them (for a backbone trained through :class:`PartialFC`)."""
    future = dist.all_reduce(bucket.buffer(), async_op=True).get_future()
    return future.then(lambda f: f.value()[0])
