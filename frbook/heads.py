"""Classifier heads: the last layer, which turns an embedding into one number per class.

The margin losses all read the same thing, the cosine between the normalised embedding and each
normalised class centre, so one :class:`CosineClassifier` serves them all. Plain softmax reads a
:class:`LinearClassifier` instead; :func:`make_head` picks the head a loss asks for.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CosineClassifier(nn.Module):
    """Holds the class centres W and returns ``cos`` (B, C) of embeddings against them.

    With ``sub_centers=K`` > 1 (Sub-center ArcFace, Deng et al., ECCV 2020; K = 3 in the paper)
    each class has K centres, stored class by class in W (C*K, D) (rows c*K .. c*K + K - 1 are
    class c's), and a class answers with its closest centre: cos (B, C) is the maximum over its
    K cosines, so the gradient reaches only that arg-max centre. Noisy samples then gather at a
    non-dominant centre instead of pulling the dominant one. :meth:`subcenter_cosines` gives all
    K cosines, (B, C, K), for plots.

    Args:
        embedding_dim: D, the size of the embeddings.
        num_classes: C, the number of training identities.
        sub_centers: K, the number of centres per class (default 1: one centre, the usual head).
    """

    def __init__(self, embedding_dim: int, num_classes: int, sub_centers: int = 1):
        super().__init__()
        _check_sizes(embedding_dim, num_classes)
        if isinstance(sub_centers, bool) or int(sub_centers) != sub_centers or sub_centers < 1:
            raise ValueError(f"sub_centers must be an integer >= 1, got {sub_centers!r}")
        self.num_classes, self.sub_centers = int(num_classes), int(sub_centers)
        self.weight = nn.Parameter(torch.empty(self.num_classes * self.sub_centers, embedding_dim))
        # Centres start as random directions; only their direction matters.
        nn.init.normal_(self.weight, std=0.01)

    def subcenter_cosines(self, embeddings: torch.Tensor) -> torch.Tensor:
        """The cosine of every embedding with every centre, (B, C, K).

        Always in the centres' precision (float32), also under autocast: bf16 keeps 3 significant
        digits, and the margins work on cos near 1, where arccos is steepest."""
        with torch.autocast(embeddings.device.type, enabled=False):
            x = F.normalize(embeddings.to(self.weight.dtype), dim=1)
            w = F.normalize(self.weight, dim=1)
            # Rounding can push a cosine a hair past +-1; arccos and sqrt downstream need it inside.
            cos = (x @ w.t()).clamp(-1.0, 1.0)
        return cos.view(cos.shape[0], self.num_classes, self.sub_centers)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        cos = self.subcenter_cosines(embeddings)
        if self.sub_centers == 1:
            return cos.squeeze(2)
        # max, not amax: on a tie amax would split the gradient, max sends it to one centre.
        return cos.max(dim=2).values


class LinearClassifier(nn.Module):
    """The plain softmax classifier, ``W x + b``, with no normalisation."""

    def __init__(self, embedding_dim: int, num_classes: int, bias: bool = True):
        super().__init__()
        _check_sizes(embedding_dim, num_classes)
        self.fc = nn.Linear(embedding_dim, num_classes, bias=bias)

    @property
    def weight(self) -> torch.Tensor:
        return self.fc.weight

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        with torch.autocast(embeddings.device.type, enabled=False):  # float32 logits, as the cosine head's
            return self.fc(embeddings.to(self.fc.weight.dtype))


def make_head(loss, embedding_dim: int, num_classes: int) -> nn.Module:
    """The head that ``loss`` reads: linear for plain softmax, cosine for every other loss,
    with the loss's ``sub_centers`` centres per class if it asks for more than one."""
    kind = loss.head
    if kind == "linear":
        return LinearClassifier(embedding_dim, num_classes)
    if kind == "cosine":
        return CosineClassifier(embedding_dim, num_classes, sub_centers=loss.sub_centers)
    raise ValueError(f"loss {type(loss).__name__} asks for an unknown head {kind!r}")


def _check_sizes(embedding_dim: int, num_classes: int) -> None:
    if int(embedding_dim) < 1:
        raise ValueError(f"embedding_dim must be at least 1, got {embedding_dim}")
    if int(num_classes) < 2:
        raise ValueError(f"num_classes must be at least 2 for a classifier, got {num_classes}")
