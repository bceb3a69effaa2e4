"""Measurements of a trained embedding's geometry: how a collapsed run differs from a healthy one.

Three numbers, each computed on unit-length embeddings (the cosine head only ever sees
directions):

- :func:`effective_dimension`: how many directions the embeddings actually use. It is the
  *participation ratio* of the eigenvalues of their covariance,
  ``(sum_i lambda_i)^2 / sum_i lambda_i^2``: D when the variance is spread evenly over D
  directions, 1 when it lies along a single one, and in between it counts the directions that
  carry a comparable share (eigenvalues 1, 1, 0.01 give about 2).
- :func:`centre_span_energy`: the share of the embeddings' squared length that lies inside the
  linear span of the class centres. A cosine-softmax (or P2SGrad) head sees an embedding only
  through its inner products with the centres, so whatever lies outside that span is invisible
  to it. For random directions in D dimensions and C < D independent centres the expected share
  is C / D; with C >= D centres in general position the span is the whole space and the share is 1.
- :func:`mean_target_angle`: the mean angle, in degrees, between each embedding and its own class
  centre: 90 for directions unrelated to their centres, small for a trained classifier.

And, without the head's centres, how compact the classes are: :func:`class_compactness` measures
each class against its own mean direction (:func:`class_directions`), the direction the features
actually gather around, wherever the head's centre points.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _unit_rows(x: torch.Tensor, name: str) -> torch.Tensor:
    if x.dim() != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name} must be a non-empty matrix (N, D), got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return F.normalize(x, dim=1)


def effective_dimension(embeddings: torch.Tensor) -> float:
    """Participation ratio ``(sum lambda)^2 / sum lambda^2`` of the covariance of the unit embeddings.

    The embeddings (N, D) are normalised to unit length, then centred; lambda are the eigenvalues
    of their covariance. Returns 0.0 when every embedding points the same way (no variance).
    """
    x = _unit_rows(embeddings, "embeddings").double()
    if x.shape[0] < 2:
        raise ValueError("effective_dimension needs at least two embeddings")
    x = x - x.mean(0, keepdim=True)
    eigenvalues = torch.linalg.eigvalsh(x.T @ x / (x.shape[0] - 1)).clamp_min(0)
    total = eigenvalues.sum()
    if total <= 1e-300:
        return 0.0
    return (total ** 2 / (eigenvalues ** 2).sum()).item()


def centre_span_energy(embeddings: torch.Tensor, centres: torch.Tensor, rtol: float = 1e-10) -> float:
    """Mean over samples of ``|P x|^2`` for unit embeddings x, P the projection onto the centres' span.

    Args:
        embeddings: (N, D).
        centres: (C, D) class centres (the head's weight rows); their length does not matter.
        rtol: singular values below ``rtol`` times the largest count as zero, so that centres that
            are linearly dependent span only what they span.
    """
    x = _unit_rows(embeddings, "embeddings").double()
    w = _unit_rows(centres, "centres").double()
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"embeddings have {x.shape[1]} dimensions but centres have {w.shape[1]}")
    _, singular, basis = torch.linalg.svd(w, full_matrices=False)
    basis = basis[singular > rtol * singular.max()]  # orthonormal rows spanning the centres
    return (x @ basis.T).pow(2).sum(1).mean().item()


def mean_target_angle(embeddings: torch.Tensor, centres: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean angle in degrees between each embedding and the centre of its label."""
    x = _unit_rows(embeddings, "embeddings").double()
    w = _unit_rows(centres, "centres").double()
    labels = torch.as_tensor(labels, dtype=torch.long)
    if labels.shape != (x.shape[0],):
        raise ValueError(f"labels must have shape ({x.shape[0]},), got {tuple(labels.shape)}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= w.shape[0]):
        raise ValueError(f"labels must lie in [0, {w.shape[0] - 1}] (one per centre)")
    cosines = (x * w[labels]).sum(1).clamp(-1, 1)
    return math.degrees(cosines.acos().mean().item())


def embedding_geometry(embeddings: torch.Tensor, centres: torch.Tensor, labels: torch.Tensor) -> dict:
    """The three measurements at once, plus the chance level of the span share (C / D, at most 1)."""
    rank = torch.linalg.matrix_rank(centres.double()).item()
    return {
        "effective_dimension": effective_dimension(embeddings),
        "centre_span_energy": centre_span_energy(embeddings, centres),
        "centre_span_chance": min(1.0, rank / embeddings.shape[1]),
        "target_angle": mean_target_angle(embeddings, centres, labels),
    }


def class_directions(features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The unit features, and the unit mean direction of each class (classes 0 .. max label)."""
    x = F.normalize(features, dim=1)
    means = torch.stack([x[labels == c].mean(0) for c in range(int(labels.max()) + 1)])
    return x, F.normalize(means, dim=1)


def class_compactness(features: torch.Tensor, labels: torch.Tensor) -> tuple[float, float, float]:
    """``(within, between, accuracy)``: the mean angle (degrees) of a feature to its class's mean
    direction; the mean angle from each class's direction to the nearest other class's; and the
    accuracy of assigning each feature to the nearest class direction. A margin should lower
    ``within / between``: tighter classes, as far apart as before."""
    x, means = class_directions(features, labels)
    within = torch.arccos((x * means[labels]).sum(1).clamp(-1, 1)).mean()
    between = torch.arccos((means @ means.t()).clamp(-1, 1)).fill_diagonal_(math.pi)
    accuracy = ((x @ means.t()).argmax(1) == labels).float().mean().item()
    return math.degrees(within), math.degrees(between.min(1).values.mean()), accuracy
