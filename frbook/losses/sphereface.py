r"""SphereFace (A-Softmax): a multiplicative angular margin.

Liu et al., "SphereFace: Deep Hypersphere Embedding for Face Recognition", CVPR 2017, ask the
target angle to win even when multiplied by an integer m: the target logit uses cos(m theta)
instead of cos(theta). cos(m theta) is not monotone on [0, pi], so the paper stitches m pieces
into the monotone decreasing

    psi(theta) = (-1)^k cos(m theta) - 2k,    theta in [k pi / m, (k + 1) pi / m],  k = 0 .. m-1,

which is continuous (each piece ends where the next starts, at 1 - 2k) and falls from 1 to
-(2m - 1). Training with psi alone does not converge, so the paper blends in the plain cosine
with a weight lambda that is annealed from 1000 down to 5:

    f(theta) = (lambda cos(theta) + psi(theta)) / (1 + lambda),
    lambda = max(5, 1000 / (1 + 0.12 iteration))     (the authors' Caffe settings).

The authors trained for 28,000 iterations (``sphereface_solver.prototxt``: ``max_iter: 28000``,
learning rate steps at 16,000 and 24,000), so lambda reaches its floor of 5 at iteration
(1000/5 - 1)/0.12 = 1,658, that is after 5.9% of training: A-Softmax as the paper ran it is the
blend at lambda = 5 for the remaining 94%. Applied per iteration to a run of a few hundred steps,
the same formula ends near lambda = 20 (400 steps: 1000/49 = 20.4), where the target logit is
mostly the plain cosine and the loss is close to NormFace. ``total_steps`` rescales the schedule
to the run's length, lambda = max(5, 1000 / (1 + 0.12 * 28000 * iteration / total_steps)), so
that lambda reaches 5 at the same 5.9% of training as in the paper (:data:`PAPER_FLOOR_FRACTION`).

The original multiplies f by the feature norm ``|x|`` (only W is normalised). This module is
the *normalised* variant used when SphereFace is compared with CosFace and ArcFace: logits are
``s f(theta_y)`` for the target and ``s cos(theta_j)`` for the rest. With m = 1, psi = cos and
it is NormFace.

cos(m theta) is computed as the Chebyshev polynomial T_m(cos theta), as the authors did: no
arccos in the differentiated path, so value and gradient are exact and finite at cos = +-1
(d T_m / d cos = m sin(m theta) / sin(theta) -> m^2 at theta = 0). The piece index k comes from
the angle without a gradient: psi and its derivative are continuous across pieces, so a rounding
error in k at a boundary changes nothing.
"""
from __future__ import annotations

import math

import torch

from .angles import angle, check_number, working_dtype
from .base import CosineLoss, check_positive, replace_target, target_cosine

# The authors' Caffe schedule: lambda = max(LAMBDA_MIN, LAMBDA_BASE / (1 + LAMBDA_GAMMA iteration))
# over PAPER_ITERATIONS iterations; lambda reaches its floor after PAPER_FLOOR_FRACTION of them.
LAMBDA_BASE, LAMBDA_GAMMA, LAMBDA_MIN, PAPER_ITERATIONS = 1000.0, 0.12, 5.0, 28_000
PAPER_FLOOR_FRACTION = (LAMBDA_BASE / LAMBDA_MIN - 1) / LAMBDA_GAMMA / PAPER_ITERATIONS  # 0.0592


def chebyshev(c: torch.Tensor, m: int) -> torch.Tensor:
    """T_m(c) = cos(m arccos c), by the recurrence T_{n+1} = 2 c T_n - T_{n-1}."""
    previous, current = torch.ones_like(c), c
    for _ in range(m - 1):
        previous, current = current, 2 * c * current - previous
    return current


class SphereFace(CosineLoss):
    r"""A-Softmax, normalised: target logit ``s (lambda cos theta + psi(theta)) / (1 + lambda)``.

    Args:
        s: the scale replacing the feature norm of the original. Default 30: SphereFace's
            target logit spans [-(2m - 1 + lambda) / (1 + lambda), 1], three times the range of
            cos when lambda reaches 5, so it needs a smaller scale than ArcFace's 64 for the same
            logit range; 30 is also the scale of AM-Softmax, the normalised successor of
            A-Softmax from the same line of work.
        m: the integer angular margin, >= 1. Default 4, the paper's.
        lamb: ``None`` anneals lambda = max(5, 1000 / (1 + 0.12 iteration)); a number fixes it.
            The iteration is a buffer (so it is saved in checkpoints) that :meth:`step` advances:
            call ``loss.step()`` once per optimiser step. ``forward`` never advances it, so
            evaluation passes do not move the schedule.
        total_steps: the length of the run in optimiser steps. ``None`` (default) applies the
            authors' schedule per iteration, as if the run were 28,000 iterations long; a number
            stretches or shrinks it so that lambda reaches 5 after the same fraction of training
            as in the paper (5.9%, see the module). Ignored when ``lamb`` is fixed.
    """

    def __init__(self, s: float = 30.0, m: int = 4, lamb: float | None = None, total_steps: int | None = None):
        super().__init__()
        self.s = check_positive("s", s)
        check_number(
            "m", m, lambda v: v >= 1 and v.is_integer(),
            "that is an integer >= 1 (SphereFace's multiplicative margin); for a non-integer "
            "margin such as 1.35 use get('combined', m1=1.35, m2=0, m3=0)",
        )
        self.m = int(m)
        self.fixed_lamb = None if lamb is None else check_number("lamb", lamb, lambda v: v >= 0, ">= 0 or None")
        self.total_steps = None if total_steps is None else int(check_number(
            "total_steps", total_steps, lambda v: v >= 1 and v.is_integer(),
            "that is the run's number of optimiser steps (an integer >= 1), or None for the paper's per-iteration schedule"))
        self.register_buffer("iteration", torch.zeros((), dtype=torch.long))

    @property
    def lamb(self) -> float:
        """The blending weight lambda now (the fixed value, or the annealed one)."""
        if self.fixed_lamb is not None:
            return self.fixed_lamb
        iteration = int(self.iteration)
        if self.total_steps is not None:  # the paper's iteration at the same fraction of training
            iteration = iteration * PAPER_ITERATIONS / self.total_steps
        return max(LAMBDA_MIN, LAMBDA_BASE / (1.0 + LAMBDA_GAMMA * iteration))

    def step(self) -> None:
        """Advance the annealing schedule by one training iteration."""
        self.iteration += 1

    def psi(self, c: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """psi at cosine ``c``; ``theta`` (its angle) only picks the piece k, without gradient."""
        k = torch.floor(theta.detach() * self.m / math.pi).clamp(0, self.m - 1)
        sign = 1 - 2 * torch.remainder(k, 2)  # (-1)^k
        return sign * chebyshev(c, self.m) - 2 * k

    def logits(self, cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        c = target_cosine(cos, labels).to(working_dtype(cos))
        lamb = self.lamb
        f = (lamb * c + self.psi(c, angle(c))) / (1 + lamb)
        return self.s * replace_target(cos, labels, f)

    def target_logit(self, theta: torch.Tensor, lamb: float | None = None) -> torch.Tensor:
        """f(theta) with the current lambda, or with ``lamb`` (e.g. 0 to draw psi alone)."""
        lamb = self.lamb if lamb is None else lamb
        c = torch.cos(theta)
        return (lamb * c + self.psi(c, theta)) / (1 + lamb)

    def hparams(self) -> dict:
        return {"s": self.s, "m": self.m, "lamb": self.fixed_lamb, "total_steps": self.total_steps}
