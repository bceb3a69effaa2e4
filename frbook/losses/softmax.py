r"""Softmax and NormFace: the two losses without a margin.

Plain softmax (the baseline of every paper) uses a linear classifier ``W x + b`` on the raw
embedding; nothing bounds the logits, so the network can lower the loss by growing feature
norms instead of separating angles.

NormFace (Wang et al., 2017) normalises both the embedding and the class centres, so the
logit of class j is ``s cos(theta_j)``. Without the scale ``s`` the logits live in [-1, 1] and
the softmax probability of the right class cannot approach 1 (chapter 2 derives the bound),
so ``s`` is fixed (typically 16 to 64) or learned.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import CosineLoss, check_positive


class Softmax(CosineLoss):
    """Softmax cross-entropy on the logits of a linear classifier (no normalisation, no margin).

    Its input is the output of :class:`frbook.heads.LinearClassifier`, ``W x + b``; ``logits``
    passes it through unchanged. ``target_logit`` shows ``cos(theta)`` (the logit per unit of
    ``|W| |x|``, ignoring the bias) so the plain softmax appears on the same plot as the rest.
    """

    head = "linear"

    def logits(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return z

    def target_logit(self, theta: torch.Tensor) -> torch.Tensor:
        return torch.cos(theta)


class NormFace(CosineLoss):
    r"""Normalised softmax: logits ``s cos(theta_j)`` for every class, target included.

    Args:
        s: the scale (the inverse temperature). With ``learn_scale=True`` it is the initial
            value of a learned scale, kept positive by learning ``log s``.
        learn_scale: learn the scale with the rest of the network (NormFace, section 3.3).
    """

    def __init__(self, s: float = 16.0, learn_scale: bool = False):
        super().__init__()
        s = check_positive("s", s)
        self.learn_scale = bool(learn_scale)
        log_s = torch.tensor(float(s)).log()
        if self.learn_scale:
            self.log_s = nn.Parameter(log_s)
        else:
            self.register_buffer("log_s", log_s)

    @property
    def s(self) -> torch.Tensor:
        return self.log_s.exp()

    def logits(self, cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.s.to(cos.dtype) * cos

    def target_logit(self, theta: torch.Tensor) -> torch.Tensor:
        return torch.cos(theta)

    def hparams(self) -> dict:
        return {"s": round(float(self.s.detach()), 6), "learn_scale": self.learn_scale}
