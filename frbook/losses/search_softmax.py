r"""Search-Softmax's loss: every margin loss as a reduction of the target probability.

Wang et al. ("Loss Function Search for Face Recognition", ICML 2020) notice that a margin loss,
which replaces the target logit ``s cos t`` by ``s f(t)``, turns the target's softmax
probability ``p`` into

    p_m = p / (a p + 1 - a),    a = 1 - exp(s (cos t - f(t))) <= 0,

so it never raises it (``p_m <= p``, with equality at ``a = 0``, plain normalised softmax).
Search-Softmax takes ``a`` itself as the thing to choose: ``L = -log p_m``.

Computed as written, ``p_m`` underflows (``p`` near 0, or ``a`` near -1e9 leaves
``a p + 1 - a`` at 1e9 and ``p_m`` at 1e-9 p). In log space it is a shift of one logit:
``p_m`` is the softmax probability of the target after its logit ``s cos t_y`` is lowered by
``log(1 - a)``, so the loss is cross-entropy on those logits, which is as stable as softmax
itself. The same identity says that a *constant* ``a`` is CosFace with margin
``m = log(1 - a) / s`` (:func:`cosface_margin`).
"""
from __future__ import annotations

import math

import torch

from .angles import check_number
from .base import CosineLoss, check_positive


def reduce_probability(p: torch.Tensor, a) -> torch.Tensor:
    """h(a, p) = p / (a p + 1 - a): the target probability after the margin (closed form, for plots)."""
    return p / (a * p + 1 - a)


def logit_shift(a) -> torch.Tensor:
    """log(1 - a), the amount by which the target logit drops for a given ``a <= 0``."""
    return torch.log1p(-torch.as_tensor(a))


def cosface_margin(a: float, s: float) -> float:
    """The CosFace margin m that equals Search-Softmax with a constant ``a`` at scale ``s``."""
    return math.log1p(-a) / s


def modulating_factor(loss: CosineLoss, cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The ``a`` (B,) that makes ``loss`` a probability reduction on this batch:
    ``a = 1 - exp(s cos t_y - z_y)``, with ``z_y`` the loss's target logit.

    The identity holds only for a loss that scales every non-target cosine by ``s`` and changes
    the target logit alone; a loss that moves the others too (CurricularFace), a loss without
    a scale (plain softmax) or one that is not softmax cross-entropy (P2SGrad) is refused.
    """
    s = _scale_of(loss)
    logits = loss.logits(cos, labels)
    plain = s * cos
    target = labels.unsqueeze(1)
    others = torch.ones_like(cos, dtype=torch.bool).scatter(1, target, False)
    if not torch.allclose(logits[others], plain[others], rtol=1e-5, atol=1e-5 * s):
        raise ValueError(
            f"{type(loss).__name__} changes the non-target logits too, so it is not a reduction "
            "p / (a p + 1 - a) of the target probability alone"
        )
    return -torch.expm1(plain.gather(1, target).squeeze(1) - logits.gather(1, target).squeeze(1))


def modulating_curve(loss: CosineLoss, theta: torch.Tensor) -> torch.Tensor:
    """a(theta) = 1 - exp(s (cos theta - f(theta))) along the target angle (for plots)."""
    s = _scale_of(loss)
    return -torch.expm1(s * (torch.cos(theta) - loss.target_logit(theta)))


def _scale_of(loss) -> float:
    if getattr(loss, "head", "cosine") != "cosine" or not hasattr(loss, "s") or not hasattr(loss, "logits"):
        raise ValueError(
            f"{type(loss).__name__} has no scale s on normalised cosines, so it has no modulating factor a"
        )
    if type(loss).__name__ == "P2SGrad":
        raise ValueError("P2SGrad is a squared error, not softmax cross-entropy: it has no modulating factor a")
    s = float(loss.s)
    if not math.isfinite(s):
        raise ValueError(f"{type(loss).__name__}'s scale is not set yet (s={s}); call it on a batch first")
    return s


def search_softmax_logits(cos: torch.Tensor, labels: torch.Tensor, s: float, shift: torch.Tensor) -> torch.Tensor:
    """Logits ``s cos`` with the target lowered by ``shift = log(1 - a)``.

    ``cos`` is (..., B, C) and ``shift`` broadcasts against its leading dimensions (a number, or
    one value per candidate for M candidates trained together: cos (M, B, C), shift (M,)).
    """
    shift = torch.as_tensor(shift, dtype=cos.dtype, device=cos.device)
    onehot = torch.nn.functional.one_hot(labels, cos.shape[-1]).to(cos.dtype)
    return s * cos - shift.reshape(shift.shape + (1, 1)) * onehot


class SearchSoftmax(CosineLoss):
    r"""Search-Softmax with a fixed modulating factor: ``L = -log(p / (a p + 1 - a))``.

    Args:
        s: the scale of the cosines. Default 32, the paper's setting.
        a: the modulating factor, ``a <= 0``; 0 is plain normalised softmax (NormFace), more
            negative is a harder target. Default 0.

    :mod:`frbook.search` searches ``a``; this class is one point of that search space.
    """

    def __init__(self, s: float = 32.0, a: float = 0.0):
        super().__init__()
        self.s = check_positive("s", s)
        self.a = check_number("a", a, lambda v: v <= 0, "<= 0 (a > 0 would raise the target probability, "
                              "the opposite of a margin)")

    def logits(self, cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return search_softmax_logits(cos, labels, self.s, math.log1p(-self.a))

    def target_logit(self, theta: torch.Tensor) -> torch.Tensor:
        return torch.cos(theta) - math.log1p(-self.a) / self.s

    def hparams(self) -> dict:
        return {"s": self.s, "a": self.a}


__all__ = ["SearchSoftmax", "cosface_margin", "logit_shift", "modulating_curve", "modulating_factor",
           "reduce_probability", "search_softmax_logits"]
