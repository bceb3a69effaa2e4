"""The losses of deep face recognition, behind one registry.

>>> from frbook import losses
>>> loss = losses.get("normface", s=16)
>>> arcface = losses.get("arcface", s=64, m=0.5)
>>> losses.available()  # doctest: +SKIP
['adacos', 'adaface', 'amlfs', 'arcface', 'combined', 'cosface', 'curricularface', 'normface',
 'p2sgrad', 'search_softmax', 'softmax', 'sphereface', 'subcenter_arcface']

Every loss maps the classifier's output (cosines for all but plain softmax) and the labels to
logits (:meth:`~frbook.losses.base.CosineLoss.logits`) and to a scalar cross-entropy
(calling it); ``target_logit(theta)`` draws its target curve.
"""
from __future__ import annotations

import inspect

from .adaptive import AdaCos, AdaFace, CurricularFace
from .amlfs import AMLFS
from .arcface import ArcFace, CombinedMargin, SubCenterArcFace
from .base import CosineLoss
from .cosface import CosFace
from .p2sgrad import P2SGrad
from .search_softmax import SearchSoftmax
from .softmax import NormFace, Softmax
from .sphereface import SphereFace
from .tml import FusedModel, TransformerMetricLoss

_REGISTRY: dict[str, type[CosineLoss]] = {
    "softmax": Softmax,
    "normface": NormFace,
    "sphereface": SphereFace,
    "cosface": CosFace,
    "arcface": ArcFace,
    "subcenter_arcface": SubCenterArcFace,
    "combined": CombinedMargin,
    "adacos": AdaCos,
    "curricularface": CurricularFace,
    "adaface": AdaFace,
    "p2sgrad": P2SGrad,
    "search_softmax": SearchSoftmax,
    "amlfs": AMLFS,
    # needs the backbone's sizes: build it with build(..., tml=...) or TransformerMetricLoss.for_backbone
    "tml": TransformerMetricLoss,
}


def available() -> list[str]:
    """The names :func:`get` accepts, sorted."""
    return sorted(_REGISTRY)


def register(name: str, cls: type[CosineLoss]) -> None:
    """Add a loss class under ``name`` (used by the modules of later chapters)."""
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"a loss named {name!r} is already registered ({_REGISTRY[name].__name__})")
    _REGISTRY[name] = cls


def get(name: str, **params) -> CosineLoss:
    """The loss called ``name``, built with ``params``.

    An unknown name, or a parameter the loss does not take, raises an error that lists what
    is accepted.
    """
    if not isinstance(name, str):
        raise ValueError(f"a loss name is a string, got {type(name).__name__} {str(name)[:40]}; "
                         f"known losses: {', '.join(available())}")
    key = name.lower().replace("-", "_")
    if key not in _REGISTRY:
        shown = repr(name) if len(name) <= 60 else repr(name[:57] + "...")
        raise ValueError(f"unknown loss {shown}; known losses: {', '.join(available())}")
    cls = _REGISTRY[key]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise TypeError(
            f"loss {key!r} takes no parameter {', '.join(map(repr, unknown))}; "
            f"it takes: {', '.join(accepted) or 'no parameters'}"
        )
    return cls(**params)


def build(name: str, params: dict | None = None, *, tml: dict | None = None, backbone=None,
          num_classes: int | None = None) -> CosineLoss:
    """The loss a training run uses: ``name`` with ``params``, or, when ``tml`` is a mapping (of
    :class:`TransformerMetricLoss` parameters: weight, depth, heads, ...), the transformer-metric
    loss with ``name`` as its base loss, sized for ``backbone`` and ``num_classes``.

    The one builder of the trainer, the comparisons and the config checks."""
    params = dict(params or {})
    if tml is None:
        return get(name, **params)
    if not isinstance(tml, dict):
        raise ValueError(f"tml must be a mapping of TransformerMetricLoss parameters, got {tml!r}")
    if backbone is None or num_classes is None:
        raise ValueError("the transformer-metric loss is sized for a backbone: give backbone= and num_classes=")
    accepted = [p for p in inspect.signature(TransformerMetricLoss.__init__).parameters
                if p not in ("self", "backbone_channels", "map_size", "num_classes", "base_loss", "base_params")]
    unknown = sorted(set(tml) - set(accepted))
    if unknown:
        raise ValueError(f"unknown parameter {', '.join(map(repr, unknown))}; it takes: {', '.join(accepted)}")
    return TransformerMetricLoss.for_backbone(backbone, num_classes, base_loss=name, base_params=params, **tml)


__all__ = [
    "AMLFS", "AdaCos", "AdaFace", "ArcFace", "CombinedMargin", "CosFace", "CosineLoss", "CurricularFace",
    "FusedModel", "NormFace", "SearchSoftmax", "TransformerMetricLoss", "build", "Softmax", "SphereFace", "SubCenterArcFace", "available", "get", "register",
]
