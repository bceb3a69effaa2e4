"""What every loss of the book shares.

A face recognition loss here is a function of the classifier's output and the labels. For the
cosine losses that output is ``cos`` (B, C): the cosine between each normalised embedding and
each normalised class centre (:class:`frbook.heads.CosineClassifier`). A loss turns it into
logits, changing the target column only (that is where every margin lives), and the loss value
is softmax cross-entropy over those logits. One head serves every loss, and one plot,
:meth:`CosineLoss.target_logit`, compares them all.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class CosineLoss(nn.Module):
    """Base class: softmax cross-entropy over logits built from cosines.

    Subclasses implement :meth:`logits`, and :meth:`target_logit` for plots.

    The contract a training loop reads (the defaults suit most losses; a loss that needs more
    says so by overriding them, and every loop, :func:`frbook.train.fit`, the trainer and the
    search, reads these and nothing else):

    * ``head``: which classifier produces the loss's input, ``"cosine"`` or ``"linear"``;
    * ``needs_norms``: the loss is called with ``norms=`` (the embeddings' lengths, AdaFace);
    * ``needs_feature_map``: the loss is called with ``feature_map=`` (the backbone's last
      convolution map, the transformer-metric loss);
    * ``sub_centers``: class centres per class the head must hold (Sub-center ArcFace);
    * ``learn_scale``: the scale is a learned parameter (it must not be weight-decayed);
    * :meth:`step`: called once after every optimiser step (a per-step schedule such as
      SphereFace's lambda); a no-op by default.
    """

    head = "cosine"
    needs_norms = False
    needs_feature_map = False
    sub_centers = 1
    learn_scale = False

    def step(self) -> None:
        """Advance the loss's own per-step schedule, if it has one (called after each optimiser step)."""

    def logits(self, cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The (B, C) logits fed to softmax: scaled, with the margin on the target column."""
        raise NotImplementedError

    def forward(self, cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_inputs(cos, labels)
        return F.cross_entropy(self.logits(cos, labels), labels)

    def target_logit(self, theta: torch.Tensor) -> torch.Tensor:
        """f(theta): the target logit, divided by the scale, as a function of the target angle."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.hparams().items())

    def hparams(self) -> dict:
        """The loss's hyper-parameters, as plain numbers (for logs and result files)."""
        return {}


def check_inputs(cos: torch.Tensor, labels: torch.Tensor) -> None:
    """Fail early, with a message that says what is wrong, on mismatched shapes or labels."""
    if cos.dim() != 2:
        raise ValueError(f"expected classifier output of shape (batch, classes), got {tuple(cos.shape)}")
    if cos.shape[0] == 0:  # cross-entropy's mean over no samples is NaN, silently
        raise ValueError("empty batch: a loss needs at least one sample (got classifier output of shape "
                         f"{tuple(cos.shape)})")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer class ids (torch.int64), got {labels.dtype}; "
                         "convert them with labels.long()")
    if labels.dim() != 1 or labels.shape[0] != cos.shape[0]:
        raise ValueError(
            f"labels must have shape ({cos.shape[0]},) to match the batch, got {tuple(labels.shape)}"
        )
    if labels.numel() and (labels.min() < 0 or labels.max() >= cos.shape[1]):
        raise ValueError(
            f"labels must lie in [0, {cos.shape[1] - 1}] for {cos.shape[1]} classes; "
            f"got values from {int(labels.min())} to {int(labels.max())}"
        )


def replace_target(values: torch.Tensor, labels: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """A copy of ``values`` (B, C) whose column ``labels[i]`` in row i is ``target[i]``.

    Written with a one-hot mask rather than in-place indexing, so autograd sees one clean
    expression and the non-target entries keep their own gradient.
    """
    mask = F.one_hot(labels, values.shape[1]).to(torch.bool)
    return torch.where(mask, target.unsqueeze(1).to(values.dtype), values)


def target_cosine(cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """cos theta_y: the cosine of each sample with its own class centre, shape (B,)."""
    return cos.gather(1, labels.unsqueeze(1)).squeeze(1)


def check_positive(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)
