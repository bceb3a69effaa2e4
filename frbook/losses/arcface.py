r"""ArcFace, its sub-center variant, and the combined margin.

ArcFace (Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face Recognition",
CVPR 2019) adds the margin to the angle itself:

    logit_y = s cos(theta_y + m),    logit_j = s cos(theta_j)  (j != y),    s = 64, m = 0.5.

Past theta_y = pi - m, cos(theta + m) turns back up, so a very wrong sample would be rewarded for
getting worse. Implementations disagree on what to do there; ``fallback`` names the choices:

- ``"classic"``: use ``cos theta - m sin m`` when cos theta <= cos(pi - m) (the older InsightFace,
  pytorch-metric-learning, face.evoLVe, TFace; they write it with th = cos(pi - m) and
  mm = sin(pi - m) m, the same number since sin(pi - m) = sin m). Note it jumps down by
  ``cos m + m sin m - 1`` (0.12 for m = 0.5) at the switch.
- ``"easy"``: keep cos theta where cos theta <= 0: the margin only for theta < pi/2. Not
  monotone either: at pi/2 it jumps *up* by sin m, from cos(pi/2 + m) to 0.
- ``"clip"``: clip theta + m into [eps, pi - eps], eps = 1e-3 (AdaFace's code): flat, no gradient
  past the switch.
- ``"none"``: plain cos(theta + m), non-monotone past pi - m (InsightFace's current arcface_torch).

``grad="straight_through"`` reproduces InsightFace's current arcface_torch, which writes the
margin into the logits inside ``torch.no_grad()``: the value is s cos(theta + m) but the backward
pass treats the target as s cos theta, dropping the factor d cos(theta+m) / d cos theta =
sin(theta + m) / sin(theta) of the exact gradient. (Use it with ``fallback="none"`` for their
exact loss.) The exact gradient is the default.

Sub-center ArcFace (Deng et al., "Sub-center ArcFace: Boosting Face Recognition by Large-scale
Noisy Web Faces", ECCV 2020) gives each class K centres and uses the closest one; that lives in
the head (:class:`frbook.heads.CosineClassifier` with ``sub_centers=K``), so the loss is ArcFace
and :class:`SubCenterArcFace` only asks :func:`frbook.heads.make_head` for that head.

The combined margin (proposed in the ArcFace paper) puts SphereFace's, ArcFace's and
CosFace's margins into one formula, ``s (cos(m1 theta + m2) - m3)``.
"""
from __future__ import annotations

import math

import torch

from .angles import angle, check_number, working_dtype
from .base import CosineLoss, check_positive, replace_target, target_cosine

FALLBACKS = ("classic", "easy", "clip", "none")
GRADIENTS = ("exact", "straight_through")
CLIP_EPS = 1e-3  # AdaFace's clip of the margined angle; shared so that AdaFace(z=-1) is ArcFace("clip")


def arc_margin(c: torch.Tensor, theta: torch.Tensor, m: float, fallback: str) -> torch.Tensor:
    """cos(theta + m) with ``fallback`` past theta + m > pi; ``c`` is cos(theta).

    The branches that fall back to the cosine use ``c`` itself, so their gradient is exactly 1.
    """
    if fallback == "clip":
        return torch.cos((theta + m).clamp(CLIP_EPS, math.pi - CLIP_EPS))
    margined = torch.cos(theta + m)
    if fallback == "classic":
        return torch.where(c > math.cos(math.pi - m), margined, c - m * math.sin(m))
    if fallback == "easy":
        return torch.where(c > 0, margined, c)
    return margined


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


class ArcFace(CosineLoss):
    r"""Additive angular margin: target logit ``s cos(theta + m)``.

    Args:
        s: the scale. Default 64, the paper's.
        m: the angular margin in radians, in [0, pi). Default 0.5 (about 28.6 degrees), the paper's.
        fallback: what to use past theta + m > pi: ``"classic"`` (default, the most common in
            published code), ``"easy"``, ``"clip"`` or ``"none"`` (see the module docstring).
        grad: ``"exact"`` (default) or ``"straight_through"`` (InsightFace's current backward
            pass: the value of ArcFace, the gradient of NormFace at that value).
    """

    def __init__(self, s: float = 64.0, m: float = 0.5, fallback: str = "classic", grad: str = "exact"):
        super().__init__()
        self.s = check_positive("s", s)
        self.m = check_number("m", m, lambda v: 0 <= v < math.pi, "in [0, pi) (ArcFace's angular margin, radians)")
        self.fallback = _check_choice("fallback", fallback, FALLBACKS)
        self.grad = _check_choice("grad", grad, GRADIENTS)

    def logits(self, cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        c = target_cosine(cos, labels).to(working_dtype(cos))
        f = arc_margin(c, angle(c), self.m, self.fallback)
        if self.grad == "straight_through":
            f = c + (f - c).detach()  # forward: f; backward: d/dc = 1, as if no margin
        return self.s * replace_target(cos, labels, f)

    def target_logit(self, theta: torch.Tensor) -> torch.Tensor:
        return arc_margin(torch.cos(theta), theta, self.m, self.fallback)

    def hparams(self) -> dict:
        return {"s": self.s, "m": self.m, "fallback": self.fallback, "grad": self.grad}


class SubCenterArcFace(ArcFace):
    r"""ArcFace read from a head with ``sub_centers`` centres per class (Deng et al., ECCV 2020).

    The loss is ArcFace's; :func:`frbook.heads.make_head` sees ``sub_centers`` and builds a
    :class:`~frbook.heads.CosineClassifier` whose cosine for a class is the largest over its
    centres, so noisy samples can gather at a non-dominant centre instead of pulling the main
    one. Default ``sub_centers=3``, the paper's choice.
    """

    def __init__(
        self, s: float = 64.0, m: float = 0.5, fallback: str = "classic", grad: str = "exact", sub_centers: int = 3
    ):
        super().__init__(s=s, m=m, fallback=fallback, grad=grad)
        check_number("sub_centers", sub_centers, lambda v: v >= 1 and v.is_integer(), "that is an integer >= 1")
        self.sub_centers = int(sub_centers)

    def hparams(self) -> dict:
        return {**super().hparams(), "sub_centers": self.sub_centers}


class CombinedMargin(CosineLoss):
    r"""The combined margin: target logit ``s (cos(m1 theta + m2) - m3)`` (the ArcFace paper).

    (m1, m2, m3) = (m, 0, 0) is SphereFace's multiplicative margin without its psi and lambda
    (the "SphereFace m1=1.35" of later papers; m1 need not be an integer), (1, m, 0) ArcFace,
    (1, 0, m) CosFace. The paper reports (1, 0.3, 0.2) and (0.9, 0.4, 0.15).

    Fallback: cos(m1 theta + m2) turns back up once m1 theta + m2 > pi, i.e. past
    ``theta* = (pi - m2) / m1``. There this loss continues with the plain cosine, shifted down so
    the curve stays continuous:

        f(theta) = cos(theta) - (1 + cos(theta*)) - m3    for theta > theta*,

    which is monotone (decreasing everywhere), keeps NormFace's gradient (d f / d cos = 1) for
    the hardest samples, and, unlike ArcFace's "classic" fallback, does not jump at theta*.
    (With m1 = 1 and m3 = 0 it therefore differs from ArcFace(fallback="classic") past pi - m2.)

    Args:
        s: the scale. Default 64.
        m1: the multiplicative margin, > 0. Default 1.
        m2: the additive angular margin in radians, in [0, pi). Default 0.3.
        m3: the additive cosine margin, in [0, 2). Default 0.2.
    """

    def __init__(self, s: float = 64.0, m1: float = 1.0, m2: float = 0.3, m3: float = 0.2):
        super().__init__()
        self.s = check_positive("s", s)
        self.m1 = check_number("m1", m1, lambda v: v > 0, "> 0 (the multiplicative angular margin)")
        self.m2 = check_number("m2", m2, lambda v: 0 <= v < math.pi, "in [0, pi) (the additive angular margin)")
        self.m3 = check_number("m3", m3, lambda v: 0 <= v < 2, "in [0, 2) (the additive cosine margin)")
        self.switch = (math.pi - self.m2) / self.m1  # theta*, where m1 theta + m2 reaches pi

    def _f(self, c: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        margined = torch.cos(self.m1 * theta + self.m2)
        continued = c - (1 + math.cos(self.switch))
        return torch.where(theta <= self.switch, margined, continued) - self.m3

    def logits(self, cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        c = target_cosine(cos, labels).to(working_dtype(cos))
        return self.s * replace_target(cos, labels, self._f(c, angle(c)))

    def target_logit(self, theta: torch.Tensor) -> torch.Tensor:
        return self._f(torch.cos(theta), theta)

    def hparams(self) -> dict:
        return {"s": self.s, "m1": self.m1, "m2": self.m2, "m3": self.m3}
