"""Faces stored one file per image: the general :class:`FileFaces` and :class:`ImageFolderFaces`.

``ImageFolderFaces`` reads the layout CASIA-WebFace (and most sets) unpack to, one folder per
identity::

    root/<identity>/<any name>.jpg

listed by torchvision's own ImageFolder rules (identities sorted by folder name, files sorted,
extensions ``.jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp``), so labels agree with
``torchvision.datasets.ImageFolder`` on the same folder, except that the walk is safe on folders
from elsewhere: linked folders below an identity are not followed, and what is not a regular file
is skipped (see :class:`ImageFolderFaces`). Every image is read through :func:`read_image_file`,
which never blocks on a FIFO and reads at most :data:`MAX_IMAGE_BYTES`.

Held-out people, the way verification is measured: ::

    faces = ImageFolderFaces("photos/", size=64)
    train, test = faces.split_identities(0.2, seed=0)   # 20% of the people, never trained on
    some = faces.subset([0, 5, 9])                     # any items; labels renumbered 0 .. K-1

``split_identities`` is what a training config's ``data.test_identities`` / ``data.split_seed``
and ``python -m frbook eval --target photos/ --test-identities 0.2 --split-seed 0`` use, so the
three agree on who is held out. ``subset`` keeps the files and the identities' names.
"""
from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path

import torch

from ..defaults import DEFAULT_CHANNELS
from .encoded import EncodedFaces
from .errors import CorruptFileError, DataNotFoundError

__all__ = ["FileFaces", "ImageFolderFaces", "read_image_file", "MAX_IMAGE_BYTES"]


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
        return read_image_file(self.files[self._index(i)])

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
    """Every image under ``path/<identity>/``; identities are the sorted folder names.

    The walk is torchvision's ImageFolder's, made safe for folders from elsewhere: symlinked
    folders below an identity are not followed (a link to ``.`` would loop for ever, a link to a
    parent would list every image again), an identity folder that is the root itself or holds it
    is skipped, and entries that are not regular files (FIFOs, devices, sockets: reading one can
    hang or never end) are skipped. Each skip is reported in one warning.
    """

    def __init__(self, path, channels: int = DEFAULT_CHANNELS, crop=None, size=None, extensions=None):
        # Imported here: torchvision takes seconds to import, and only this reader needs it.
        from torchvision.datasets.folder import IMG_EXTENSIONS

        path = Path(path).expanduser()
        if not path.is_dir():
            raise DataNotFoundError(f"{path}: no such folder (expected one folder per identity)")
        extensions = tuple(e.lower() for e in (extensions or IMG_EXTENSIONS))
        root = path.resolve()
        names, files, labels, skipped, empty = [], [], [], [], []
        for entry in sorted(os.scandir(path), key=lambda e: e.name):
            if not entry.is_dir():
                continue
            real = Path(entry.path).resolve()
            if real == root or real in root.parents:
                skipped.append(f"{entry.path} (a link to the folder itself or above it)")
                continue
            found = _images_below(Path(entry.path), extensions, skipped)
            if not found:
                empty.append(entry.name)
            labels += [len(names)] * len(found)
            files += found
            names.append(entry.name)
        if skipped:
            warnings.warn(f"{path}: skipped {len(skipped)} entries: " + "; ".join(skipped[:5])
                          + (" ..." if len(skipped) > 5 else ""), stacklevel=2)
        if not names:
            raise DataNotFoundError(f"{path}: no identity folders (expected {path}/<identity>/<image>)")
        if empty:  # as torchvision's ImageFolder: labels are only meaningful when every folder counts
            raise DataNotFoundError(f"{path}: no images with extensions {', '.join(extensions)} in the "
                                    f"identity folders {', '.join(empty[:10])}{' ...' if len(empty) > 10 else ''} "
                                    f"(expected {path}/<identity>/<image>)")
        super().__init__(files, labels, names, channels, crop, size)
        self.root = path


def _images_below(folder: Path, extensions: tuple, skipped: list) -> list[Path]:
    """The regular files under ``folder`` with an image extension, sorted as torchvision sorts
    them; symlinked folders below ``folder`` are not followed (noted in ``skipped``)."""
    found = []
    for top, dirs, names in sorted(os.walk(folder, followlinks=False)):  # torchvision's order
        for d in dirs:
            if os.path.islink(os.path.join(top, d)):
                skipped.append(f"{os.path.join(top, d)} (a linked folder, not followed)")
        for name in sorted(names):
            if not name.lower().endswith(extensions):
                continue
            full = os.path.join(top, name)
            try:
                regular = stat.S_ISREG(os.stat(full).st_mode)  # follows a file link: to what?
            except OSError:
                regular = False  # a dangling link
            if regular:
                found.append(Path(full))
            else:
                skipped.append(f"{full} (not a regular file)")
    return found


MAX_IMAGE_BYTES = 64 << 20  # a face image is kilobytes; 64 MiB is generous, /dev/zero is not


def read_image_file(path: Path, limit: int = MAX_IMAGE_BYTES) -> bytes:
    """The bytes of the image file ``path``, refusing (with :class:`CorruptFileError`) what is
    not a regular file (opened without blocking, so a FIFO cannot hang the reader) or is larger
    than ``limit`` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise CorruptFileError(f"{path}: cannot open it ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise CorruptFileError(f"{path}: not a regular file (a FIFO, device or socket); an image "
                                   "must be a file")
        if info.st_size > limit:
            raise CorruptFileError(f"{path}: {info.st_size:,} bytes is larger than an image may be "
                                   f"({limit:,})")
        data = f.read(limit + 1)
    if len(data) > limit:  # it grew while being read
        raise CorruptFileError(f"{path}: larger than an image may be ({limit:,} bytes)")
    return data
