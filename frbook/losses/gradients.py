r"""The unified view of the margin losses' gradients (Zhang et al., CVPR 2019).

For a cosine-softmax loss the logit of class j is ``s f_j(cos theta_j)``: ``f_j = cos`` for
every non-target class and the loss's target curve f for the target. With P = softmax of the
logits, the chain rule gives, for one sample,

    d loss / d cos(theta_j) = (P_j - 1[j = y]) s f'_j,                                  (1)

and the embedding x and class centres W_j receive it through
``d cos theta_j / d x = (W^_j - cos theta_j x^) / |x|`` and
``d cos theta_j / d W_j = (x^ - cos theta_j W^_j) / |W_j|``: directions that depend on the
geometry only. So every such loss pushes along the same directions; s, m and C act only on the
coefficient (1), through P_y and the slope f'. P2SGrad replaces the coefficient by
``cos theta_j - 1[j = y]`` (:class:`~frbook.losses.p2sgrad.P2SGrad`).

This module computes (1) in closed form (no autograd), for plots and for tests that check the
losses' autograd gradients against it:

- :func:`target_slope`: f'(theta) = d f / d cos theta, per loss;
- :func:`cos_gradient`: the (B, C) matrix of coefficients (1), per sample;
- :func:`target_probability` and :func:`target_angle_gradient`: P_y and |d loss / d theta_y| as
  functions of the target angle, for a sample whose C - 1 other cosines are all equal (0 by
  default: random directions in a high-dimensional space are nearly orthogonal).

Supported: NormFace, CosFace, ArcFace (every fallback, exact and straight-through gradient),
sub-center ArcFace, SphereFace, the combined margin, AdaCos (its scale is set without gradient,
so it enters as a constant) and P2SGrad. CurricularFace (its non-target logits depend on the
target) and AdaFace (its margin depends on the feature norm) are refused with a message.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .adaptive import AdaCos
from .arcface import CLIP_EPS, ArcFace, CombinedMargin
from .base import CosineLoss, target_cosine
from .cosface import CosFace
from .p2sgrad import P2SGrad
from .softmax import NormFace
from .sphereface import SphereFace


def scale(loss: CosineLoss) -> float:
    """The loss's scale s as a number (P2SGrad has none: 1)."""
    if isinstance(loss, P2SGrad):
        return 1.0
    _check_supported(loss)
    return float(loss.s)


def target_slope(loss: CosineLoss, theta: torch.Tensor) -> torch.Tensor:
    """f'(theta) = d f / d cos(theta) of the target curve, in closed form.

    ArcFace's exact slope, sin(theta + m) / sin(theta), grows without bound as theta -> 0 (where
    P_y -> 1 makes the coefficient vanish anyway); at theta = 0 exactly it is returned as inf.
    """
    _check_supported(loss)
    theta = torch.as_tensor(theta, dtype=torch.float64) if not torch.is_tensor(theta) else theta
    ones = torch.ones_like(theta)
    if isinstance(loss, (NormFace, CosFace, AdaCos, P2SGrad)):
        return ones
    if isinstance(loss, ArcFace):
        if loss.grad == "straight_through":
            return ones
        exact = torch.sin(theta + loss.m) / torch.sin(theta)
        if loss.fallback == "classic":
            return torch.where(torch.cos(theta) > math.cos(math.pi - loss.m), exact, ones)
        if loss.fallback == "easy":
            return torch.where(torch.cos(theta) > 0, exact, ones)
        if loss.fallback == "clip":
            inside = (theta + loss.m >= CLIP_EPS) & (theta + loss.m <= math.pi - CLIP_EPS)
            return torch.where(inside, exact, torch.zeros_like(theta))
        return exact
    if isinstance(loss, CombinedMargin):
        margined = loss.m1 * torch.sin(loss.m1 * theta + loss.m2) / torch.sin(theta)
        if loss.m2 == 0:  # m1 sin(m1 theta) / sin(theta) -> m1^2 as theta -> 0
            margined = torch.where(theta == 0, loss.m1**2 * ones, margined)
        return torch.where(theta <= loss.switch, margined, ones)
    if isinstance(loss, SphereFace):
        # psi = (-1)^k cos(m theta) - 2k, and d cos(m theta) / d cos(theta) = m sin(m theta) / sin(theta)
        # = m U_{m-1}(cos theta), a Chebyshev polynomial of the second kind: finite at theta = 0 and pi.
        k = torch.floor(theta * loss.m / math.pi).clamp(0, loss.m - 1)
        sign = 1 - 2 * torch.remainder(k, 2)
        psi_slope = sign * loss.m * chebyshev_second_kind(torch.cos(theta), loss.m - 1)
        return (loss.lamb + psi_slope) / (1 + loss.lamb)
    raise AssertionError("unreachable: _check_supported lets only the classes above through")


def chebyshev_second_kind(c: torch.Tensor, n: int) -> torch.Tensor:
    """U_n(c) = sin((n + 1) theta) / sin(theta) at c = cos(theta), by U_{k+1} = 2 c U_k - U_{k-1}."""
    previous, current = torch.ones_like(c), 2 * c
    if n == 0:
        return previous
    for _ in range(n - 1):
        previous, current = current, 2 * c * current - previous
    return current


def cos_gradient(loss: CosineLoss, cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """d loss_i / d cos[i, j] for every sample i and class j, in closed form, shape (B, C).

    ``loss_i`` is sample i's own loss: a batch-mean loss's gradient is this divided by B (by
    B C for P2SGrad's ``"mean_bc"``, times 2). For the softmax losses it is (P - onehot) s f',
    with f' = 1 off the target; for P2SGrad it is cos - onehot.
    """
    onehot = F.one_hot(labels, cos.shape[1]).to(cos.dtype)
    if isinstance(loss, P2SGrad):
        return cos - onehot
    _check_supported(loss)
    with torch.no_grad():
        probabilities = torch.softmax(loss.logits(cos, labels), dim=1)
    theta_y = torch.acos(target_cosine(cos, labels).clamp(-1, 1))
    slope = torch.where(onehot.bool(), target_slope(loss, theta_y).unsqueeze(1).to(cos.dtype), 1.0)
    return (probabilities - onehot) * scale(loss) * slope


def target_probability(loss: CosineLoss, theta: torch.Tensor, num_classes: int,
                       other_cos: float = 0.0) -> torch.Tensor:
    """P_y at target angle ``theta`` when the other C - 1 cosines all equal ``other_cos``.

    P_y = 1 / (1 + (C - 1) exp(s (other_cos - f(theta)))), computed as a sigmoid so it stays
    exact for large s.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    s = scale(loss)
    gap = s * (loss.target_logit(theta) - other_cos) - math.log(num_classes - 1)
    return torch.sigmoid(gap)


def target_angle_gradient(loss: CosineLoss, theta: torch.Tensor, num_classes: int,
                          other_cos: float = 0.0) -> torch.Tensor:
    """|d loss / d theta_y|: how hard the loss pulls a sample towards its centre, against theta_y.

    Softmax losses: (1 - P_y) s f'(theta) sin(theta). P2SGrad: (1 - cos theta) sin(theta)
    (it does not depend on C or on the other cosines).
    """
    if isinstance(loss, P2SGrad):
        return (1 - torch.cos(theta)) * torch.sin(theta)
    p = target_probability(loss, theta, num_classes, other_cos)
    # f' sin(theta) has a finite limit at 0 and pi even where f' alone is infinite (ArcFace's
    # sin(theta + m) / sin(theta)): evaluate it a hair inside the interval.
    eps = 1e-9 if theta.dtype == torch.float64 else 1e-4
    inside = theta.clamp(eps, math.pi - eps)
    return ((1 - p) * scale(loss) * target_slope(loss, inside) * torch.sin(inside)).abs()


def _check_supported(loss: CosineLoss) -> None:
    supported = (NormFace, CosFace, ArcFace, CombinedMargin, SphereFace, AdaCos, P2SGrad)
    if not isinstance(loss, supported) or loss.head != "cosine":
        raise ValueError(
            f"{type(loss).__name__}: the unified gradient (P - onehot) s f' needs logits s f(cos) with "
            "f = cos off the target and a scale that carries no gradient; CurricularFace changes the "
            "non-target logits and AdaFace's margin depends on the feature norm, and plain softmax has "
            "no cosines. Supported: NormFace, CosFace, ArcFace, sub-center ArcFace, SphereFace, the "
            "combined margin, AdaCos, P2SGrad."
        )
