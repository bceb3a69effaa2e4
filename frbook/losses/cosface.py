r"""CosFace / AM-Softmax: an additive margin on the cosine.

CosFace (Wang et al., "CosFace: Large Margin Cosine Loss for Deep Face Recognition", CVPR 2018)
and AM-Softmax (Wang et al., "Additive Margin Softmax for Face Verification", IEEE SPL 2018)
subtract a constant from the target cosine:

    logit_y = s (cos(theta_y) - m),    logit_j = s cos(theta_j)  (j != y).

The margin lives in cosine space, so the gradient is NormFace's, ``s (p - onehot) / B``, only
evaluated at harder logits; no arccos, so no trouble at cos = +-1.
"""
from __future__ import annotations

import torch

from .angles import check_number
from .base import CosineLoss, check_positive, replace_target, target_cosine


class CosFace(CosineLoss):
    r"""Large margin cosine loss: target logit ``s (cos theta - m)``.

    Args:
        s: the scale. Default 64, CosFace's setting (AM-Softmax used s=30 with the same m).
        m: the additive cosine margin, in [0, 2) (cosines differ by at most 2). Default 0.35,
            the setting of both papers.
    """

    def __init__(self, s: float = 64.0, m: float = 0.35):
        super().__init__()
        self.s = check_positive("s", s)
        self.m = check_number("m", m, lambda v: 0 <= v < 2, "in [0, 2) (CosFace's cosine margin)")

    def logits(self, cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.s * replace_target(cos, labels, target_cosine(cos, labels) - self.m)

    def target_logit(self, theta: torch.Tensor) -> torch.Tensor:
        return torch.cos(theta) - self.m

    def hparams(self) -> dict:
        return {"s": self.s, "m": self.m}
