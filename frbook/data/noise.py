"""Label noise: training sets in which a fraction of the labels name the wrong identity.

Web-crawled face data sets (CASIA-WebFace, MS-Celeb-1M) carry many wrong labels, and several
losses (P2SGrad, sub-center ArcFace) claim to cope with them. :func:`flip_labels` makes exactly
``round(fraction * N)`` labels wrong, each moved to a different class drawn uniformly ("symmetric"
noise); :class:`NoisyLabels` applies it to a :class:`~frbook.data.SynthFaces`, whose images stay
those of the true identity.
"""
from __future__ import annotations

import torch

from .synth import SynthFaces


def flip_labels(labels: torch.Tensor, fraction: float, num_classes: int, seed: int = 0) -> torch.Tensor:
    """A copy of ``labels`` with ``round(fraction * N)`` of them changed to another class.

    Which labels flip, and to what, depends only on ``seed``: the same call gives the same noise.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"the label noise fraction must lie in [0, 1], got {fraction!r}")
    if num_classes < 2:
        raise ValueError(f"label noise needs at least 2 classes, got {num_classes}")
    generator = torch.Generator().manual_seed(seed)
    noisy = labels.clone()
    flipped = torch.randperm(len(labels), generator=generator)[: round(fraction * len(labels))]
    # An offset in 1 .. C-1 added modulo C: uniform over the other classes, never the true one.
    offsets = torch.randint(1, num_classes, (len(flipped),), generator=generator)
    noisy[flipped] = (labels[flipped] + offsets) % num_classes
    return noisy


class NoisyLabels(SynthFaces):
    """A SynthFaces whose labels are partly wrong; ``clean_labels`` keeps the truth.

    Args:
        data: the clean data set (its identities, images, size and device are kept).
        fraction: the share of images whose label is wrong, in [0, 1].
        seed: chooses which labels flip.
    """

    def __init__(self, data: SynthFaces, fraction: float, seed: int = 0):
        self.__dict__.update(data.__dict__)
        self.fraction = float(fraction)
        self.clean_labels = data.labels
        self._noisy = flip_labels(self.clean_labels, self.fraction, data.num_classes, seed)

    @property
    def labels(self) -> torch.Tensor:
        return self._noisy.clone()

    def _items(self, items):
        identity_ids, image_indices, _ = super()._items(items)
        return identity_ids, image_indices, self._noisy[torch.as_tensor(items, dtype=torch.int64)]

    def __repr__(self) -> str:
        return f"NoisyLabels({super().__repr__()}, fraction={self.fraction})"
