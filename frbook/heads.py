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
    """Holds the class centres W (C, D) and returns ``cos`` (B, C) of embeddings against them.

    Args:
        embedding_dim: D, the size of the embeddings.
        num_classes: C, the number of training identities.
    """

    def __init__(self, embedding_dim: int, num_classes: int):
        super().__init__()
        _check_sizes(embedding_dim, num_classes)
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_dim))
        # Centres start as random directions; only their direction matters.
        nn.init.normal_(self.weight, std=0.01)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        x = F.normalize(embeddings, dim=1)
        w = F.normalize(self.weight, dim=1)
        # Rounding can push a cosine a hair past +-1; arccos and sqrt downstream need it inside.
        return (x @ w.t()).clamp(-1.0, 1.0)


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
        return self.fc(embeddings)


def make_head(loss, embedding_dim: int, num_classes: int) -> nn.Module:
    """The head that ``loss`` reads: linear for plain softmax, cosine for every other loss."""
    kind = getattr(loss, "head", "cosine")
    if kind == "linear":
        return LinearClassifier(embedding_dim, num_classes)
    if kind == "cosine":
        return CosineClassifier(embedding_dim, num_classes)
    raise ValueError(f"loss {type(loss).__name__} asks for an unknown head {kind!r}")


def _check_sizes(embedding_dim: int, num_classes: int) -> None:
    if int(embedding_dim) < 1:
        raise ValueError(f"embedding_dim must be at least 1, got {embedding_dim}")
    if int(num_classes) < 2:
        raise ValueError(f"num_classes must be at least 2 for a classifier, got {num_classes}")
