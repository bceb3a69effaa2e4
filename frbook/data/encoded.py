"""The shared shape of every real-face data set: encoded images, one label each, decoded on use.

LFW, ORL, image folders, ``.rec`` and ``.bin`` files differ only in where the bytes of item ``i``
come from. A subclass says that (``raw(i)``, ``where(i)``, ``__len__``, ``labels``); this base
turns it into what the rest of frbook expects from SynthFaces: ``images()`` as a float tensor
(N, C, H, W) in [0, 1], ``dataset[i] -> (image, label)``, ``labels``, ``num_classes`` and a batch
``loader(batch_size, shuffle, generator_seed, drop_last)`` that :func:`frbook.train.fit` and
:func:`frbook.eval.embed` accept.
"""
from __future__ import annotations

import operator
from typing import NamedTuple

import numpy as np
import torch

from .images import as_hw, check_channels, decode, encode, prepare, to_float

__all__ = ["EncodedFaces", "Pairs"]


class Pairs(NamedTuple):
    """Verification pairs in benchmark file order: item ``i[k]`` against item ``j[k]``, and
    whether they show the same person. A 3-tuple, so it can be passed straight to
    ``frbook.eval.verify(embeddings, pairs=...)``."""

    i: np.ndarray
    j: np.ndarray
    issame: np.ndarray


class EncodedFaces(torch.utils.data.Dataset):
    """Base class: decoded to ``channels`` (1 grey, 3 colour), centre-cropped to ``crop`` and
    resized to ``size`` (each an int or (H, W); ``None`` keeps the stored geometry)."""

    def __init__(self, channels: int = 3, crop=None, size=None):
        self.channels = check_channels(channels)
        self.crop = as_hw(crop, "crop")
        self.size = as_hw(size, "size")

    # -- what a subclass provides ---------------------------------------------------------------
    def __len__(self) -> int:
        raise NotImplementedError

    def raw(self, i: int) -> bytes:
        """The stored, encoded bytes of item ``i``, exactly as on disk."""
        raise NotImplementedError

    def where(self, i: int) -> str:
        """A human-readable location of item ``i`` for error messages (a path, a record)."""
        return f"{type(self).__name__} item {i}"

    @property
    def labels(self) -> torch.Tensor:
        """One int64 label per item; -1 where identities are unknown."""
        raise NotImplementedError

    # -- what every data set gets --------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        labels = self.labels
        return int(labels.max()) + 1 if labels.numel() else 0

    def _index(self, i) -> int:
        try:
            i = operator.index(i)
        except TypeError:
            raise TypeError(f"indices must be integers, got {type(i).__name__}") from None
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"item {i} is out of range for {n} items")
        return i

    def image_uint8(self, i) -> torch.Tensor:
        """Item ``i`` decoded and prepared, still ``uint8`` (C, H, W)."""
        i = self._index(i)
        where = self.where(i)
        image = decode(self.raw(i), self.channels, where)
        try:
            return prepare(image, self.crop, self.size)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None

    def __getitem__(self, i):
        i = self._index(i)
        return to_float(self.image_uint8(i)), int(self.labels[i])

    def images(self, items=None) -> torch.Tensor:
        """Items (all by default) as one float tensor (N, C, H, W) in [0, 1].

        All must come out the same size: give ``size=`` when the stored images differ.
        """
        items = range(len(self)) if items is None else [int(k) for k in torch.as_tensor(items).view(-1)]
        decoded = [self.image_uint8(k) for k in items]
        if not decoded:
            return torch.empty(0, self.channels, *(self.size or (0, 0)))
        shapes = {tuple(im.shape) for im in decoded}
        if len(shapes) > 1:
            raise ValueError(f"{type(self).__name__}: images of different sizes {sorted(shapes)[:3]}; "
                             "pass size=(H, W) to resize them to one size")
        return to_float(torch.stack(decoded))

    def encoded(self, i, format: str | None = None, quality: int = 95) -> bytes:
        """Item ``i`` as encoded bytes: the stored bytes when nothing is to change (no crop, no
        resize, no ``format``), else the prepared image re-encoded (``format`` default JPEG)."""
        i = self._index(i)
        if format is None and self.crop is None and self.size is None:
            return self.raw(i)
        return encode(self.image_uint8(i), format or "jpeg", quality)

    def loader(self, batch_size: int, shuffle: bool = True, generator_seed: int = 0,
               drop_last: bool = False, num_workers: int = 0) -> torch.utils.data.DataLoader:
        """Batches of (images, labels); the order is fixed by ``generator_seed`` when shuffled.

        ``num_workers > 0`` decodes in worker processes, which pays off for JPEG on several cores.
        """
        generator = torch.Generator().manual_seed(int(generator_seed))
        return torch.utils.data.DataLoader(self, batch_size=batch_size, shuffle=shuffle,
                                           generator=generator, drop_last=drop_last,
                                           num_workers=num_workers)

    def _settings(self) -> str:
        return f"channels={self.channels}, crop={self.crop}, size={self.size}"
