"""Backbones: images in [0, 1] -> embeddings (B, D), and on request the last feature map.

Every model here follows one contract, so a chapter or the trainer can swap them by name:

* input: float images in [0, 1], shape (B, in_channels, H, W), at the ``input_size`` the model was
  built for; each model normalises to [-1, 1] itself;
* ``model(x)`` -> embeddings (B, embedding_dim); ``model(x, return_feature_map=True)`` ->
  ``(embeddings, feature_map)``, the last convolutional map (B, feature_channels, H', W') before
  flattening or pooling (the transformer-metric loss reads it as H' * W' tokens);
* attributes ``embedding_dim``, ``feature_channels``, ``in_channels``, ``input_size``, and
  ``feature_map_size(input_size) -> (H', W')``.

Models:

* ``small_cnn``: :class:`SmallCNN`, four conv stages and a flatten -> linear -> BN head, for CPUs;
* ``iresnet18/34/50/100``: :class:`IResNet`, ArcFace's improved ResNet (Deng et al. 2019);
* ``mobilefacenet``: :class:`MobileFaceNet` (Chen et al. 2018), ~1M parameters;
* ``pixels``: :class:`Pixels`, the image itself (flattened, mean-centred): the baseline every
  learned model must beat, with no parameters to train.

    >>> from frbook import models
    >>> net = models.get("small_cnn", embedding_dim=2)
    >>> models.available()
    ('small_cnn', 'iresnet18', 'iresnet34', 'iresnet50', 'iresnet100', 'mobilefacenet', 'pixels')
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from ._base import Backbone
from .iresnet import IBasicBlock, IResNet, iresnet18, iresnet34, iresnet50, iresnet100
from .mobilefacenet import MobileFaceNet
from .pixels import Pixels
from .small_cnn import SmallCNN

__all__ = ["Backbone", "SmallCNN", "IResNet", "IBasicBlock", "MobileFaceNet", "Pixels",
           "iresnet18", "iresnet34", "iresnet50", "iresnet100", "get", "available",
           "num_parameters"]

_REGISTRY: dict[str, Callable[..., Backbone]] = {
    "small_cnn": SmallCNN,
    "iresnet18": iresnet18,
    "iresnet34": iresnet34,
    "iresnet50": iresnet50,
    "iresnet100": iresnet100,
    "mobilefacenet": MobileFaceNet,
    "pixels": Pixels,
}


def available() -> tuple[str, ...]:
    """The names :func:`get` knows."""
    return tuple(_REGISTRY)


def get(name: str, **kwargs) -> Backbone:
    """Build a backbone by name, e.g. ``get("iresnet50", embedding_dim=512)``.

    Keyword arguments go to the model's constructor. An unknown name raises ``ValueError`` that
    lists the known ones.
    """
    try:
        factory = _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(_REGISTRY)}") from None
    return factory(**kwargs)


def num_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all of them, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
