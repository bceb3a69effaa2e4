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

from ..defaults import DEFAULT_CHANNELS
from .images import as_crop, as_hw, check_channels, decode, encode, prepare, to_float

#: What to say when images of several sizes meet where one size is needed, in the words of each
#: way in (command line, config, Python).
ONE_SIZE = ("resize them to one size: --size 112 on the command line, data.size in a training "
            "config, size=112 in Python (non-square images are centre-cropped to square first, not "
            "squashed); --crop 0.8 (a fraction of the shorter side) crops images of mixed sizes alike")

__all__ = ["EncodedFaces", "Pairs", "held_out_identities"]


class Pairs(NamedTuple):
    """Verification pairs in benchmark file order: item ``i[k]`` against item ``j[k]``, and
    whether they show the same person. A 3-tuple, so it can be passed straight to
    ``frbook.eval.verify(embeddings, pairs=...)``."""

    i: np.ndarray
    j: np.ndarray
    issame: np.ndarray


class EncodedFaces(torch.utils.data.Dataset):
    """Base class: decoded to ``channels`` (1 grey, the library's default, or 3 colour),
    centre-cropped to ``crop`` (pixels, or a fraction of the shorter side) and resized to ``size``
    (an int or (H, W), keeping the aspect ratio; ``None`` keeps the stored geometry); see
    :func:`frbook.data.images.prepare`. ``conversions`` counts what was changed, by kind, over
    the images decoded in this process (an evaluation report lists them)."""

    def __init__(self, channels: int = DEFAULT_CHANNELS, crop=None, size=None):
        self.channels = check_channels(channels)
        self.crop = as_crop(crop)
        self.size = as_hw(size, "size")
        self.conversions: dict[str, int] = {}

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
        image = decode(self.raw(i), self.channels, where, self.conversions)
        try:
            return prepare(image, self.crop, self.size, self.conversions)
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
            raise ValueError(f"{type(self).__name__}: images of different sizes "
                             f"{', '.join(f'{h}x{w}' for _, h, w in sorted(shapes)[:3])}; {ONE_SIZE}")
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

    def subset(self, items) -> "EncodedFaces":
        """The given items as a new data set whose identities are renumbered 0 .. K-1 (keeping
        their order), as a training set needs. Readers of files override it (same result)."""
        return _SubsetFaces(self, items)

    def split_identities(self, test, seed: int = 0) -> tuple["EncodedFaces", "EncodedFaces"]:
        """``(train, held_out)``: the images of disjoint sets of identities, labels renumbered.

        ``test`` is the held-out share: a fraction in (0, 1) of the identities (rounded, at least
        one) or a whole number of them. Which identities are held out depends only on the number
        of identities, ``test`` and ``seed``, so a training run (``data.test_identities``,
        ``data.split_seed``) and ``python -m frbook eval --test-identities ... --split-seed ...``
        pick the same ones.
        """
        held = held_out_identities(self.num_classes, test, seed)
        is_held = np.isin(self.labels.numpy(), held)
        return self.subset(np.flatnonzero(~is_held)), self.subset(np.flatnonzero(is_held))

    def _settings(self) -> str:
        return f"channels={self.channels}, crop={self.crop}, size={self.size}"


def held_out_identities(num_identities: int, test, seed: int = 0) -> np.ndarray:
    """The sorted identity ids (of 0 .. num_identities-1) that :meth:`EncodedFaces.split_identities`
    holds out: a seeded random choice of ``test`` (a fraction in (0, 1), or a count) of them."""
    if isinstance(test, bool) or not isinstance(test, (int, float, np.integer, np.floating)) or test <= 0:
        raise ValueError(f"test identities must be a fraction in (0, 1) or a count >= 1; got {test!r}")
    count = int(round(test * num_identities)) if test < 1 else int(test)
    if test != count and test >= 1:
        raise ValueError(f"test identities {test!r}: a count must be a whole number (or give a fraction < 1)")
    count = max(count, 1)
    if count >= num_identities:
        raise ValueError(f"cannot hold out {count} of {num_identities} identities and keep some to "
                         "train on; hold out fewer")
    order = np.random.default_rng(int(seed)).permutation(num_identities)
    return np.sort(order[:count])


class _SubsetFaces(EncodedFaces):
    """Some items of another encoded data set, labels renumbered 0 .. K-1 in their old order."""

    def __init__(self, parent: EncodedFaces, items):
        super().__init__(parent.channels, parent.crop, parent.size)
        self.parent = parent
        self.items = [int(k) for k in torch.as_tensor(items).view(-1)]
        old = parent.labels[self.items] if self.items else torch.empty(0, dtype=torch.int64)
        kept, self._labels = torch.unique(old, sorted=True, return_inverse=True)
        self._num_classes = int(kept.numel())

    def __len__(self) -> int:
        return len(self.items)

    def raw(self, i: int) -> bytes:
        return self.parent.raw(self.items[self._index(i)])

    def where(self, i: int) -> str:
        return self.parent.where(self.items[i])

    @property
    def labels(self) -> torch.Tensor:
        return self._labels.clone()

    @property
    def num_classes(self) -> int:
        return self._num_classes

    def __repr__(self) -> str:
        return f"{len(self)} items of {self.parent!r}"
