"""Faces stored one file per image: the general :class:`FileFaces` and :class:`ImageFolderFaces`.

``ImageFolderFaces`` reads the layout CASIA-WebFace (and most sets) unpack to, one folder per
identity::

    root/<identity>/<any name>.jpg

listed by torchvision's own ImageFolder rules (identities sorted by folder name, files sorted,
extensions ``.jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp``), so labels agree with
``torchvision.datasets.ImageFolder`` on the same folder. Other files (notes, ``Thumbs.db``) are
skipped.

Held-out people, the way verification is measured: ::

    faces = ImageFolderFaces("photos/", size=64)
    train, test = faces.split_identities(0.2, seed=0)   # 20% of the people, never trained on
    some = faces.subset([0, 5, 9])                     # any items; labels renumbered 0 .. K-1

``split_identities`` is what a training config's ``data.test_identities`` / ``data.split_seed``
and ``python -m frbook eval --target photos/ --test-identities 0.2 --split-seed 0`` use, so the
three agree on who is held out. ``subset`` keeps the files and the identities' names.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..defaults import DEFAULT_CHANNELS
from .encoded import EncodedFaces
from .errors import DataNotFoundError

__all__ = ["FileFaces", "ImageFolderFaces"]


class FileFaces(EncodedFaces):
    """Images in ``files`` with labels ``labels`` (0 .. K-1); label ``k`` is ``identities[k]``."""

    def __init__(self, files, labels, identities, channels: int = DEFAULT_CHANNELS, crop=None, size=None):
        super().__init__(channels, crop, size)
        self.files = [Path(f) for f in files]
        self._labels = torch.as_tensor(labels, dtype=torch.int64).view(-1).clone()
        self.identities = list(identities)
        if self._labels.numel() != len(self.files):
            raise ValueError(f"{self._labels.numel()} labels for {len(self.files)} files")
        if self._labels.numel() and (self._labels.min() < 0 or self._labels.max() >= len(self.identities)):
            raise ValueError(f"labels must lie in [0, {len(self.identities)}) (one per identity)")

    def __len__(self) -> int:
        return len(self.files)

    def raw(self, i: int) -> bytes:
        return self.files[self._index(i)].read_bytes()

    def where(self, i: int) -> str:
        return str(self.files[i])

    @property
    def labels(self) -> torch.Tensor:
        return self._labels.clone()

    @property
    def num_classes(self) -> int:
        return len(self.identities)

    def subset(self, items) -> "FileFaces":
        """The given items (indices) as a new data set whose identities are renumbered 0 .. K-1
        (keeping their order), as a training set needs; ``identities`` keeps the names, so
        ``subset.identities[label]`` is still the person's folder. Channels, crop and size carry
        over. See :meth:`~frbook.data.EncodedFaces.split_identities` for a split by people."""
        items = [int(k) for k in torch.as_tensor(items).view(-1)]
        old = self._labels[items]
        kept = sorted(set(old.tolist()))
        new_label = {o: n for n, o in enumerate(kept)}
        return FileFaces([self.files[k] for k in items], [new_label[int(o)] for o in old],
                         [self.identities[o] for o in kept], self.channels, self.crop, self.size)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self)} images of {self.num_classes} identities, "
                f"{self._settings()})")


class ImageFolderFaces(FileFaces):
    """Every image under ``path/<identity>/``; identities are the sorted folder names."""

    def __init__(self, path, channels: int = DEFAULT_CHANNELS, crop=None, size=None, extensions=None):
        # Imported here: torchvision takes seconds to import, and only this reader needs it.
        from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

        path = Path(path).expanduser()
        if not path.is_dir():
            raise DataNotFoundError(f"{path}: no such folder (expected one folder per identity)")
        try:
            names, class_to_idx = find_classes(str(path))
            samples = make_dataset(str(path), class_to_idx, extensions=tuple(extensions or IMG_EXTENSIONS))
        except FileNotFoundError as exc:  # torchvision's "Couldn't find any class folder" etc.
            raise DataNotFoundError(f"{path}: {exc} (expected {path}/<identity>/<image>)") from None
        files, labels = zip(*samples)
        super().__init__(files, labels, names, channels, crop, size)
        self.root = path
