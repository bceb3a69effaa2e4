"""The pieces every training path shares: :func:`frbook.train.fit` (the short loop a chapter
prints), the trainer (:mod:`frbook.train.trainer`) and the loss search (:mod:`frbook.search`).

Each piece is written once, here or in the module named, so the three cannot drift apart:

* which parameters are decayed (:func:`parameter_groups`) and the optimiser (:func:`make_optimizer`);
* the forward of a loss: what the backbone must return and what the loss is called with, read from
  the loss contract of :class:`frbook.losses.base.CosineLoss` (:func:`embed_batch`, :func:`loss_value`);
* the epoch order (:func:`frbook.train.batches.epoch_order`) and the learning-rate schedules
  (:mod:`frbook.train.schedules`).
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["parameter_groups", "make_optimizer", "embed_batch", "loss_value"]


def parameter_groups(backbone: nn.Module, head: nn.Module, loss: nn.Module, weight_decay: float) -> list[dict]:
    """Backbone and head with ``weight_decay``; the loss's own parameters (a learned scale, the
    transformer branch) without it, since a learned scale must not be pulled towards zero."""
    groups = [{"params": [*backbone.parameters(), *head.parameters()], "weight_decay": weight_decay}]
    own = [p for p in loss.parameters() if p.requires_grad]
    if own:
        groups.append({"params": own, "weight_decay": 0.0})
    return groups


def make_optimizer(groups: list[dict], name: str = "sgd", lr: float = 0.1, momentum: float = 0.9,
                   fused: bool = False) -> torch.optim.Optimizer:
    """SGD with momentum (the field's optimiser for margin losses) or AdamW."""
    extra = {"fused": True} if fused else {}
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, **extra)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, **extra)
    raise ValueError(f"unknown optimiser {name!r}; known: sgd, adamw")


def embed_batch(backbone: nn.Module, images: torch.Tensor, loss) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(embeddings, last feature map or None): the feature map only when the loss reads it."""
    if loss.needs_feature_map:
        return backbone(images, return_feature_map=True)
    return backbone(images), None


def loss_value(loss, outputs: torch.Tensor, labels: torch.Tensor, embeddings: torch.Tensor,
               feature_map: torch.Tensor | None = None) -> torch.Tensor:
    """Call ``loss`` with what its contract asks for: the feature norms (AdaFace) and the
    backbone's last feature map (the transformer-metric loss)."""
    extra = {}
    if loss.needs_norms:
        extra["norms"] = embeddings.norm(dim=1)
    if loss.needs_feature_map:
        extra["feature_map"] = feature_map
    return loss(outputs, labels, **extra)
