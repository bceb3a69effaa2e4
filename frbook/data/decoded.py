"""Real faces decoded once and held as ``uint8`` tensors, with the fast batch loader of SynthFaces.

Decoding JPEGs costs more than a training step of a small network, so a set that fits in memory
(LFW is 13,233 images: 217 MB at 128x128 grey) is decoded once (:func:`decode_all`) and then
served from a tensor, on the CPU or on the GPU where the training runs. Two views of such a
tensor are what a comparison needs:

* :class:`DecodedFaces`: labelled training images; ``loader`` shuffles with a seed and, with
  ``flip=True``, mirrors each image with probability 1/2 (the field's usual augmentation: a face
  and its mirror image are the same person), drawn from the same seed, so a batch order is
  reproducible.
* :class:`PairFaces`: the images of a list of verification pairs, in order, with the pairs
  re-indexed to rows of those images (``pairs``), for :func:`frbook.eval.verify`.

Both have the ``loader(batch_size, shuffle, generator_seed, drop_last)`` that
:func:`frbook.train.fit`, the loss search and :func:`frbook.eval.embed` read.
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from .encoded import ONE_SIZE, Pairs

__all__ = ["DecodedFaces", "PairFaces", "decode_all"]


def decode_all(dataset, progress: bool = False) -> torch.Tensor:
    """Every image of an frbook face set as one ``uint8`` tensor (N, C, H, W)."""
    images = [dataset.image_uint8(i) for i in tqdm(range(len(dataset)), desc="decoding images", unit="img",
                                                    disable=not progress, leave=False)]
    shapes = {tuple(im.shape) for im in images}
    if len(shapes) != 1:
        raise ValueError(f"{type(dataset).__name__}: images of different sizes "
                         f"{', '.join(f'{h}x{w}' for _, h, w in sorted(shapes)[:3])}; {ONE_SIZE}")
    return torch.stack(images)


def _batches(images, labels, batch_size, shuffle, generator_seed, drop_last, flip):
    n = len(images)
    generator = torch.Generator().manual_seed(int(generator_seed))
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    mirror = torch.rand(n, generator=generator) < 0.5 if flip else None
    end = n - n % batch_size if drop_last else n
    for start in range(0, end, batch_size):
        rows = order[start:start + batch_size]
        batch = images[rows.to(images.device)].float() / 255
        if mirror is not None:
            m = mirror[rows].to(images.device)
            batch = torch.where(m.view(-1, 1, 1, 1), batch.flip(-1), batch)
        yield batch, labels[rows.to(labels.device)]


class DecodedFaces:
    """Labelled ``uint8`` images (N, C, H, W), labels 0 .. K-1, served in batches of floats in [0, 1]."""

    def __init__(self, images: torch.Tensor, labels, flip: bool = False):
        labels = torch.as_tensor(labels, dtype=torch.int64, device=images.device)
        if images.dtype != torch.uint8 or images.dim() != 4 or len(labels) != len(images):
            raise ValueError(f"need uint8 images (N, C, H, W) and N labels; got {images.dtype} "
                             f"{tuple(images.shape)} and {len(labels)} labels")
        self.images, self.labels, self.flip = images, labels, flip
        self.num_classes = int(labels.max()) + 1 if len(labels) else 0

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i].float() / 255, int(self.labels[i])

    def loader(self, batch_size: int, shuffle: bool = True, generator_seed: int = 0, drop_last: bool = False):
        return _batches(self.images, self.labels, batch_size, shuffle, generator_seed, drop_last,
                        self.flip and shuffle)

    def __repr__(self) -> str:
        return (f"DecodedFaces({len(self)} images of {self.num_classes} identities, "
                f"{tuple(self.images.shape[1:])}, flip={self.flip})")


class PairFaces:
    """The images of verification pairs (each once) and the pairs as rows of them.

    Args:
        images: ``uint8`` images of the whole set, (N, C, H, W).
        pairs: ``(i, j, issame)`` indexing ``images``, in the benchmark's order (kept, since the
            k-fold accuracy uses contiguous folds).
        n_folds: the number of contiguous folds that accuracy's threshold is cross-validated over.
    """

    def __init__(self, images: torch.Tensor, pairs, n_folds: int = 10):
        self.n_folds = n_folds
        i, j, issame = (np.asarray(a) for a in pairs)
        self.items = np.unique(np.concatenate([i, j]))
        self.images = images[torch.as_tensor(self.items, device=images.device)]
        self.pairs = Pairs(np.searchsorted(self.items, i), np.searchsorted(self.items, j), issame.astype(bool))
        # Identities are not needed to score pairs: -1 marks them unknown, as elsewhere in frbook.
        self.labels = torch.full((len(self.items),), -1, dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.images)

    def loader(self, batch_size: int, shuffle: bool = False, generator_seed: int = 0, drop_last: bool = False):
        return _batches(self.images, self.labels, batch_size, shuffle, generator_seed, drop_last, flip=False)

    def __repr__(self) -> str:
        return f"PairFaces({len(self.pairs.i)} pairs over {len(self)} images)"
