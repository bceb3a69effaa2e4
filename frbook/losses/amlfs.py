r"""AM-LFS's search space: the target's cosine, or its probability, through a piecewise-linear map.

Li et al. ("AM-LFS: AutoML for Loss Function Search", ICCV 2019) write a margin loss as a
function ``t`` applied to the target before the cross-entropy, and let ``t`` be piecewise linear
with M equal intervals, ``t(x) = a_i x + b_i`` on interval i. M = 6, the search's sigma^2 = 0.2
and the identity map as its start come from an unofficial reproduction, not from the paper
(whose code is not public); this library uses them as defaults:

* on the target cosine (``space="cosine"``): the target logit becomes ``s t(cos theta_y)``;
  CosFace is a_i = 1, b_i = -m; the identity (a_i = 1, b_i = 0) is NormFace;
* on the target probability (``space="probability"``): the loss is ``-log t(p_y)``; the identity
  is plain normalised softmax, and any ``t(p) <= p`` is a margin.

The intervals need not join: each piece has its own slope and intercept, as in the paper. In
the probability space ``t(p)`` must be a probability; where a sampled ``t`` leaves (0, 1] it is
clipped to it, so that sample contributes a bounded loss and no gradient there (our reading: the
paper does not say what its code does at those points).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .angles import check_number
from .base import CosineLoss, check_inputs, check_positive, replace_target, target_cosine

# The interval each space's map is defined on.
DOMAINS = {"cosine": (-1.0, 1.0), "probability": (0.0, 1.0)}


def piecewise_linear(x: torch.Tensor, slopes: torch.Tensor, intercepts: torch.Tensor,
                     lo: float, hi: float) -> torch.Tensor:
    """t(x) = slopes[i] x + intercepts[i], with i the interval of [lo, hi] (cut into
    ``slopes.shape[-1]`` equal parts) that holds x; x outside [lo, hi] uses the end pieces.

    ``x`` is (..., B); ``slopes`` and ``intercepts`` are (..., M) with the same leading dimensions
    (one map per candidate when several are evaluated at once).
    """
    pieces = slopes.shape[-1]
    # nan_to_num: a NaN x (a diverged candidate of a search) takes piece 0 and gives NaN, as
    # every other loss does, rather than an index out of range.
    index = ((x.detach() - lo) / (hi - lo) * pieces).nan_to_num(0.0).floor().clamp(0, pieces - 1).long()
    return slopes.gather(-1, index) * x + intercepts.gather(-1, index)


def amlfs_losses(cos: torch.Tensor, labels: torch.Tensor, s: float, slopes: torch.Tensor,
                 intercepts: torch.Tensor, space: str) -> torch.Tensor:
    """The batch-mean AM-LFS loss of each map: cos (..., B, C), slopes and intercepts (..., M)
    -> (...)."""
    lo, hi = DOMAINS[space]
    if space == "cosine":
        target = piecewise_linear(target_cosine_nd(cos, labels), slopes, intercepts, lo, hi)
        logits = s * replace_target_nd(cos, labels, target)
        return -logits.log_softmax(-1).gather(-1, _expand(labels, logits)).squeeze(-1).mean(-1)
    log_p = (s * cos).log_softmax(-1).gather(-1, _expand(labels, cos)).squeeze(-1)
    t = piecewise_linear(log_p.exp(), slopes, intercepts, lo, hi)
    tiny = torch.finfo(t.dtype).tiny
    return -t.clamp(tiny, 1.0).log().mean(-1)


def target_cosine_nd(cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """cos theta_y for cos of shape (..., B, C): (..., B)."""
    return cos.gather(-1, _expand(labels, cos)).squeeze(-1)


def replace_target_nd(values: torch.Tensor, labels: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """:func:`~frbook.losses.base.replace_target` for (..., B, C) values and (..., B) targets."""
    mask = F.one_hot(labels, values.shape[-1]).to(torch.bool)
    return torch.where(mask, target.unsqueeze(-1).to(values.dtype), values)


def _expand(labels: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return labels.unsqueeze(-1).expand(like.shape[:-1] + (1,))


class AMLFS(CosineLoss):
    """One AM-LFS loss: a piecewise-linear map of the target cosine or probability.

    Args:
        s: the scale of the cosines.
        slopes, intercepts: a_i and b_i of the M pieces (equal length). Default: the identity
            with M = 6 (an unofficial reproduction's number of pieces; see the module).
        space: ``"cosine"`` or ``"probability"`` (see the module docstring).
    """

    def __init__(self, s: float = 32.0, slopes=(1.0,) * 6, intercepts=(0.0,) * 6, space: str = "cosine"):
        super().__init__()
        self.s = check_positive("s", s)
        if space not in DOMAINS:
            raise ValueError(f"space must be one of {', '.join(DOMAINS)}, got {space!r}")
        slopes, intercepts = list(slopes), list(intercepts)
        if not slopes or len(slopes) != len(intercepts):
            raise ValueError(f"slopes and intercepts need the same, non-zero length; got "
                             f"{len(slopes)} and {len(intercepts)}")
        for name, values in (("slopes", slopes), ("intercepts", intercepts)):
            for v in values:
                check_number(name, v, lambda _: True, "(finite)")
        self.space = space
        self.register_buffer("slopes", torch.tensor(slopes, dtype=torch.float64), persistent=False)
        self.register_buffer("intercepts", torch.tensor(intercepts, dtype=torch.float64), persistent=False)

    def forward(self, cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_inputs(cos, labels)
        if not torch.isfinite(cos).all():
            raise ValueError("AM-LFS got non-finite cosines (NaN or inf): the network diverged or its "
                             "input holds NaN; lower the learning rate")
        return amlfs_losses(cos, labels, self.s, self.slopes.to(cos.dtype), self.intercepts.to(cos.dtype), self.space)

    def logits(self, cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.space != "cosine":
            raise NotImplementedError("the probability space maps p itself; it has no target logit")
        lo, hi = DOMAINS["cosine"]
        t = piecewise_linear(target_cosine(cos, labels), self.slopes.to(cos.dtype),
                             self.intercepts.to(cos.dtype), lo, hi)
        return self.s * replace_target(cos, labels, t)

    def target_logit(self, theta: torch.Tensor) -> torch.Tensor:
        if self.space != "cosine":
            raise NotImplementedError("the probability space maps p itself; it has no target logit")
        lo, hi = DOMAINS["cosine"]
        return piecewise_linear(torch.cos(theta), self.slopes.to(theta.dtype), self.intercepts.to(theta.dtype), lo, hi)

    def hparams(self) -> dict:
        return {"s": self.s, "space": self.space, "slopes": self.slopes.tolist(), "intercepts": self.intercepts.tolist()}
