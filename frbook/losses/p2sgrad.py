r"""P2SGrad: the gradient of the margin losses with the probability replaced by the cosine.

Zhang et al., "P2SGrad: Refined Gradients for Optimizing Deep Face Models", CVPR 2019, observe
that every cosine-softmax loss (NormFace, CosFace, ArcFace, SphereFace) has the gradient

    d loss / d cos(theta_j) = (P_j - 1[j = y]) f'_j,

one direction for all of them; the scale s, the margin m and the number of classes C only change
its size, through the probability P_y and the slope f' of the target logit
(:mod:`frbook.losses.gradients` computes both). P2SGrad drops s, m and the softmax: it uses

    d loss / d cos(theta_j) = cos(theta_j) - 1[j = y],

which is the gradient of the squared error ``0.5 * sum_j (cos theta_j - 1[j = y])^2``. This
module ships that squared error, so autograd produces exactly the P2SGrad gradient.

Reductions over a batch of B samples and C classes:

- ``"mean"`` (the default): the per-sample sum over classes, averaged over the batch, so the
  gradient is ``(cos - onehot) / B``, the paper's gradient averaged like any other loss.
- ``"mean_bc"``: ``mean((cos - onehot)^2)`` over all B*C entries, what public re-implementations
  ship (an MSE loss on the cosines). Its gradient is ``2 (cos - onehot) / (B C)``: 2/C times the
  default, tiny when C is large, which a learning rate must then make up for.

The paper's method has no hyper-parameter beyond the optimiser's; there is no official code.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import CosineLoss, check_inputs

REDUCTIONS = ("mean", "mean_bc")


class P2SGrad(CosineLoss):
    r"""Squared error between the cosines and the one-hot labels: the P2SGrad gradient.

    Args:
        reduction: ``"mean"`` (default): ``0.5 * sum_j (cos_j - 1[j=y])^2`` averaged over the
            batch, gradient ``(cos - onehot) / B``; ``"mean_bc"``: the mean over all B*C
            entries of ``(cos_j - 1[j=y])^2``, gradient ``2 (cos - onehot) / (B C)``.
    """

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {', '.join(map(repr, REDUCTIONS))}; got {reduction!r}")
        self.reduction = reduction

    def logits(self, cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The cosines themselves: no scale, no margin (what the trainer ranks for accuracy)."""
        return cos

    def forward(self, cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_inputs(cos, labels)
        squared = (cos - F.one_hot(labels, cos.shape[1]).to(cos.dtype)) ** 2
        if self.reduction == "mean_bc":
            return squared.mean()
        return 0.5 * squared.sum(dim=1).mean()

    def target_logit(self, theta: torch.Tensor) -> torch.Tensor:
        return torch.cos(theta)

    def hparams(self) -> dict:
        return {"reduction": self.reduction}
