r"""Losses that adapt to training: AdaCos (the scale), CurricularFace and AdaFace (the margin).

Each keeps running statistics in buffers (saved in checkpoints), updated without gradient and
only in training mode (``loss.train()``), so evaluation never changes them.

- AdaCos (Zhang et al., "AdaCos: Adaptively Scaling Cosine Logits for Effectively Learning Deep
  Face Representations", CVPR 2019): no margin and no scale to tune; s is set from the number of
  classes and, in the dynamic version, re-estimated every batch.
- CurricularFace (Huang et al., "CurricularFace: Adaptive Curriculum Learning Loss for Deep Face
  Recognition", CVPR 2020): ArcFace's target, plus hard negatives whose weight grows as training
  progresses (easy samples first, hard ones later).
- AdaFace (Kim et al., "AdaFace: Quality Adaptive Margin for Face Recognition", CVPR 2022): the
  feature norm as an image-quality proxy picks the margin, between ArcFace-like (low quality)
  and CosFace-like with an angular bonus (high quality).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .angles import angle, check_number, working_dtype
from .arcface import CLIP_EPS, arc_margin
from .base import CosineLoss, check_inputs, check_positive, replace_target, target_cosine


class AdaCos(CosineLoss):
    r"""Adaptively scaled cosine logits, ``s cos(theta_j)`` for every class (no margin).

    Fixed version: ``s = sqrt(2) log(C - 1)``: with the non-target cosines near 0 (their value
    for random directions in high dimension), the scale at which a sample pi/4 away from its
    centre gets probability 1/2, i.e. s cos(pi/4) = log(C - 1).

    Dynamic version (the default): before each training batch's logits,

        B_avg = mean_i sum_{k != y_i} exp(s_old cos theta_ik),
        theta_med = median_i theta_{i, y_i},
        s_new = log(B_avg) / cos(min(pi/4, theta_med)),

    computed without gradient and stored in the buffer ``s``. The median is ``torch.median``'s:
    the lower of the two middle values for an even batch, as in the common unofficial PyTorch port
    (the authors published no code). A batch whose
    s_new is not a positive finite number (B_avg <= 1: every non-target cosine very negative)
    keeps the old s rather than flipping the sign of the logits.

    Args:
        num_classes: C, at least 3 (with C = 2, log(C - 1) = 0). ``None`` infers it from
            ``cos.shape[1]`` at the first call (and fixes s then).
        dynamic: re-estimate s every training batch (default) or keep the fixed value.
    """

    def __init__(self, num_classes: int | None = None, dynamic: bool = True):
        super().__init__()
        self.dynamic = bool(dynamic)
        self.num_classes = None if num_classes is None else self._check_classes(num_classes)
        s = float("nan") if num_classes is None else self.fixed_scale(self.num_classes)
        self.register_buffer("s", torch.tensor(s))  # NaN until the number of classes is known

    @staticmethod
    def fixed_scale(num_classes: int) -> float:
        """sqrt(2) log(C - 1), the fixed AdaCos scale."""
        return math.sqrt(2) * math.log(num_classes - 1)

    @staticmethod
    def _check_classes(num_classes) -> int:
        rule = "that is an integer >= 3"
        return int(check_number("num_classes", num_classes, lambda v: v >= 3 and v.is_integer(), rule))

    def logits(self, cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.num_classes is None:  # first call; s may already hold a checkpoint's value
            self.num_classes = self._check_classes(cos.shape[1])
            if torch.isnan(self.s):
                self.s.fill_(self.fixed_scale(self.num_classes))
        elif cos.shape[1] != self.num_classes:
            raise ValueError(f"AdaCos was built for {self.num_classes} classes but got cosines for {cos.shape[1]}")
        if self.dynamic and self.training:
            self._update_scale(cos.detach(), labels)
        return self.s.to(cos.dtype) * cos

    @torch.no_grad()
    def _update_scale(self, cos: torch.Tensor, labels: torch.Tensor) -> None:
        c = cos.to(working_dtype(cos))
        non_target = ~F.one_hot(labels, c.shape[1]).to(torch.bool)
        b_avg = torch.where(non_target, torch.exp(self.s.to(c.dtype) * c), 0).sum(1).mean()
        theta_med = angle(target_cosine(c, labels)).median()
        s_new = torch.log(b_avg) / torch.cos(theta_med.clamp(max=math.pi / 4))
        self.s.copy_(torch.where(torch.isfinite(s_new) & (s_new > 0), s_new, self.s.to(c.dtype)))

    def target_logit(self, theta: torch.Tensor) -> torch.Tensor:
        return torch.cos(theta)

    def hparams(self) -> dict:
        s = float(self.s)
        return {"num_classes": self.num_classes, "dynamic": self.dynamic, "s": None if math.isnan(s) else s}


class CurricularFace(CosineLoss):
    r"""ArcFace's target plus curriculum-weighted hard negatives.

    Target: ``s cos(theta_y + m)``, with ArcFace's "classic" fallback (cos theta - m sin m past
    pi - m), as in the authors' code. Non-target j:

        s cos theta_j                     if cos theta_j <= cos(theta_y + m)   (easy negative)
        s cos theta_j (t + cos theta_j)   otherwise                            (hard negative)

    The threshold is the margined target value cos(theta_y + m) itself, as in the authors' code
    (not its fallback, which differs only for theta_y > pi - m). The running ``t`` (a buffer,
    starting at 0) tracks the mean target cosine: in training, before the logits,
    ``t <- 0.01 mean_i cos theta_{i,y_i} + 0.99 t`` (no gradient). The modulation factor
    t + cos theta_j is below 1 early in training (t ~ 0), so hard negatives weigh less and easy
    samples lead; as t grows towards 1 it exceeds 1 and hard negatives weigh more.

    Args:
        s: the scale. Default 64, the paper's.
        m: the angular margin, in [0, pi). Default 0.5, the paper's.
    """

    def __init__(self, s: float = 64.0, m: float = 0.5):
        super().__init__()
        self.s = check_positive("s", s)
        self.m = check_number("m", m, lambda v: 0 <= v < math.pi, "in [0, pi) (the angular margin, radians)")
        self.register_buffer("t", torch.zeros(()))

    def logits(self, cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        c = target_cosine(cos, labels).to(working_dtype(cos))
        theta = angle(c)
        if self.training:
            with torch.no_grad():
                self.t.mul_(0.99).add_(0.01 * c.detach().mean().to(self.t.dtype))
        threshold = torch.cos(theta + self.m).detach().to(cos.dtype).unsqueeze(1)
        hard = cos > threshold  # the target column is overwritten below
        negatives = torch.where(hard, cos * (self.t.to(cos.dtype) + cos), cos)
        return self.s * replace_target(negatives, labels, arc_margin(c, theta, self.m, "classic"))

    def target_logit(self, theta: torch.Tensor) -> torch.Tensor:
        return arc_margin(torch.cos(theta), theta, self.m, "classic")

    def hparams(self) -> dict:
        return {"s": self.s, "m": self.m}


class AdaFace(CosineLoss):
    r"""Quality-adaptive margin from the feature norm.

    The feature norm ``|x|`` (before normalisation) tracks image quality. Norms are detached and
    clipped to [0.001, 100]; their batch mean and (unbiased) standard deviation are tracked by
    an exponential moving average (buffers ``batch_mean`` = 20, ``batch_std`` = 100 at the start,
    ``new = t_alpha batch + (1 - t_alpha) old``, updated before use, training mode only; a batch
    of one leaves the std unchanged). Then

        z = clip((|x| - batch_mean) / (batch_std + eps) h, -1, 1),
        g_angle = -m z,   g_add = m z + m,
        logit_y = s (cos(clip(theta_y + g_angle, eps, pi - eps)) - g_add),    eps = 1e-3.

    z = -1 (low quality): s cos(theta + m), ArcFace (its "clip" fallback); z = 0: s (cos theta - m),
    CosFace;
    z = +1 (high quality): s (cos(theta - m) - 2m). Non-target logits are s cos theta_j.
    (The authors' head first clamps every cosine, target and non-target, into
    [-1 + eps, 1 - eps] with eps = 1e-3, which moves any cosine within 1e-3 of +-1 by up to 1e-3;
    here no cosine is clamped: only the margined target angle is clipped, as in the formula above.)

    AdaFace needs the norms: ``loss(cos, labels, norms=embeddings.norm(dim=1))``, where
    ``embeddings`` is the backbone output before the head normalises it. ``needs_norms`` says so
    to a trainer.

    Args:
        s: the scale. Default 64.
        m: the margin, in [0, pi/2). Default 0.4, the paper's.
        h: the slope of z: a norm 1/h standard deviations above the mean gets z = 1. Default
            0.333, the paper's: z then stays inside [-1, 1] for norms within 3 sigmas.
        t_alpha: the moving-average rate of the norm statistics, in [0, 1]. Default 0.01.
    """

    needs_norms = True
    eps = CLIP_EPS  # 1e-3, the authors' value, for the std division and the angle clip

    def __init__(self, s: float = 64.0, m: float = 0.4, h: float = 0.333, t_alpha: float = 0.01):
        super().__init__()
        self.s = check_positive("s", s)
        self.m = check_number("m", m, lambda v: 0 <= v < math.pi / 2, "in [0, pi/2) (AdaFace's margin)")
        self.h = check_positive("h", h)
        self.t_alpha = check_number("t_alpha", t_alpha, lambda v: 0 <= v <= 1, "in [0, 1] (the moving-average rate)")
        self.register_buffer("batch_mean", torch.tensor(20.0))
        self.register_buffer("batch_std", torch.tensor(100.0))

    def norm_z(self, norms: torch.Tensor) -> torch.Tensor:
        """z in [-1, 1] for each norm, against the current statistics (no update)."""
        z = (norms - self.batch_mean.to(norms.dtype)) / (self.batch_std.to(norms.dtype) + self.eps)
        return (z * self.h).clamp(-1, 1)

    def logits(self, cos: torch.Tensor, labels: torch.Tensor, norms: torch.Tensor | None = None) -> torch.Tensor:
        if norms is None:
            raise ValueError(
                "AdaFace needs the feature norms: pass norms=embeddings.norm(dim=1), the L2 norm of the "
                "backbone's embeddings before normalisation, shape (batch,), e.g. loss(cos, labels, norms=...)"
            )
        if norms.shape != (cos.shape[0],):
            raise ValueError(f"norms must have shape ({cos.shape[0]},), one per sample; got {tuple(norms.shape)}")
        norms = norms.detach().to(working_dtype(cos)).clamp(0.001, 100)
        if self.training:
            with torch.no_grad():
                a = self.t_alpha
                self.batch_mean.mul_(1 - a).add_(a * norms.mean().to(self.batch_mean.dtype))
                if norms.numel() > 1:
                    self.batch_std.mul_(1 - a).add_(a * norms.std().to(self.batch_std.dtype))
        c = target_cosine(cos, labels).to(norms.dtype)
        return self.s * replace_target(cos, labels, self._f(angle(c), self.norm_z(norms)))

    def forward(self, cos: torch.Tensor, labels: torch.Tensor, norms: torch.Tensor | None = None) -> torch.Tensor:
        check_inputs(cos, labels)
        return F.cross_entropy(self.logits(cos, labels, norms=norms), labels)

    def _f(self, theta: torch.Tensor, z) -> torch.Tensor:
        g_angle, g_add = -self.m * z, self.m * z + self.m
        return torch.cos((theta + g_angle).clamp(self.eps, math.pi - self.eps)) - g_add

    def target_logit(self, theta: torch.Tensor, norm_z: float = 0.0) -> torch.Tensor:
        """f(theta) at a given z (-1: low quality, ArcFace-like; 0: CosFace; 1: high quality)."""
        z = torch.as_tensor(norm_z, dtype=theta.dtype).clamp(-1, 1)
        return self._f(theta, z)

    def hparams(self) -> dict:
        return {"s": self.s, "m": self.m, "h": self.h, "t_alpha": self.t_alpha}
