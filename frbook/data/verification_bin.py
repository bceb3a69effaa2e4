"""InsightFace's verification ``.bin`` files (lfw.bin, cfp_fp.bin, agedb_30.bin, ...).

A ``.bin`` is a pickle of ``(bins, issame)``: ``bins`` a list of 2N encoded images (pair k is
images 2k and 2k+1), ``issame`` a list of N booleans. The pairs are in the benchmark's order,
so ten contiguous folds of them are the benchmark's folds.

A pickle can run arbitrary code when loaded, and these files come from the internet. So
:func:`read_bin` unpickles with a :class:`RestrictedUnpickler` that builds only what such a file
needs (lists, tuples, bytes, bools and ints are opcodes, not classes) and refuses every class or
function a file names, with one narrow exception: a file pickled by Python 3 at protocol 2
stores each ``bytes`` object as a call ``_codecs.encode(text, "latin1")``; that call, and only
with those arguments, is answered by a function that returns the bytes and does nothing else.
Files written by Python 2 (the original InsightFace ones) store images as byte strings and need
no exception at all. Anything else (a numpy array of labels, say) is refused with a message.
"""
from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import torch

from ..defaults import DEFAULT_CHANNELS
from .encoded import EncodedFaces, Pairs
from .errors import CorruptFileError

__all__ = ["RestrictedUnpickler", "read_bin", "write_bin", "pairs_to_bin", "VerificationBin"]


class _UnsafePickle(Exception):
    pass


def _latin1_bytes(text, encoding="latin1"):
    """The only callable a .bin may name: Python 3's protocol-2 spelling of a bytes object."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _UnsafePickle(f"_codecs.encode called with ({type(text).__name__}, {encoding!r})")
    return text.encode("latin1")


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global except ``_codecs.encode`` (see the module)."""

    def find_class(self, module, name):
        if (module, name) == ("_codecs", "encode"):
            return _latin1_bytes
        raise _UnsafePickle(f"it names {module}.{name}")


def read_bin(path) -> tuple[list[bytes], np.ndarray]:
    """``(images, issame)`` of a verification ``.bin``, checked: 2N images, N booleans."""
    path = Path(path)
    data = path.read_bytes()
    try:
        # encoding="bytes": byte strings pickled by Python 2 come back as bytes, not text.
        obj = RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except _UnsafePickle as exc:
        raise CorruptFileError(f"{path}: refused: {exc}; a verification .bin may hold only lists, "
                               "tuples, bytes and bools, and loading anything else could run code") from None
    except Exception as exc:  # truncated or not a pickle at all
        raise CorruptFileError(f"{path}: not a readable verification .bin ({type(exc).__name__}: {exc})") from None
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2):
        raise CorruptFileError(f"{path}: expected a pickled pair (images, issame), got {type(obj).__name__}")
    images, issame = obj
    if not isinstance(images, (list, tuple)) or not isinstance(issame, (list, tuple)):
        raise CorruptFileError(f"{path}: images and issame must be lists")
    for k, image in enumerate(images):
        if not isinstance(image, (bytes, bytearray)):
            raise CorruptFileError(f"{path}: image {k} is a {type(image).__name__}, not bytes")
    for k, flag in enumerate(issame):
        if not (isinstance(flag, bool) or flag in (0, 1)):
            raise CorruptFileError(f"{path}: issame[{k}] is {flag!r}, not a bool")
    if len(images) != 2 * len(issame):
        raise CorruptFileError(f"{path}: {len(images)} images for {len(issame)} pairs; "
                               "expected two images per pair")
    return [bytes(im) for im in images], np.array([bool(f) for f in issame], dtype=bool)


def write_bin(path, images, issame, protocol: int = 4) -> Path:
    """Write ``(images, issame)`` as a ``.bin`` that InsightFace's loader and :func:`read_bin`
    both read; written to a temporary name then renamed, so it is never half-written."""
    path = Path(path)
    images = [bytes(im) for im in images]
    issame = [bool(s) for s in np.asarray(issame).ravel()]
    if len(images) != 2 * len(issame):
        raise ValueError(f"{len(images)} images for {len(issame)} pairs; need two per pair")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        pickle.dump((images, issame), f, protocol=protocol)
    os.replace(tmp, path)
    return path


class VerificationBin(EncodedFaces):
    """The images of a ``.bin`` as a data set (labels unknown: -1), with its :meth:`pairs`."""

    def __init__(self, path, channels: int = DEFAULT_CHANNELS, crop=None, size=None):
        super().__init__(channels, crop, size)
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such verification .bin")
        self._images, self.issame = read_bin(self.path)

    def __len__(self) -> int:
        return len(self._images)

    def raw(self, i: int) -> bytes:
        return self._images[self._index(i)]

    def where(self, i: int) -> str:
        return f"{self.path}: image {i} (pair {i // 2})"

    @property
    def labels(self) -> torch.Tensor:
        return torch.full((len(self),), -1, dtype=torch.int64)

    def pairs(self) -> Pairs:
        """Pair k is images 2k and 2k+1, in file order."""
        n = len(self.issame)
        return Pairs(np.arange(0, 2 * n, 2), np.arange(1, 2 * n, 2), self.issame.copy())

    def __repr__(self) -> str:
        return f"VerificationBin({self.path}, {len(self.issame)} pairs, {self._settings()})"


def pairs_to_bin(dataset: EncodedFaces, pairs, path, format: str | None = None,
                 quality: int = 95, progress: bool = False) -> Path:
    """Write the pairs ``(i, j, issame)`` of ``dataset`` (e.g. ``LFW(...).pairs()``) as a ``.bin``.

    Each image is ``dataset.encoded(k, format, quality)``: the stored bytes when the data set
    neither crops nor resizes and no ``format`` is asked, else the prepared image re-encoded
    (JPEG by default, as InsightFace's own files). An image in several pairs is stored each time,
    as the format requires (and encoded once). ``progress``: a bar over the distinct images.
    """
    from tqdm import tqdm

    i, j, issame = pairs
    if len(i) != len(j) or len(i) != len(issame):
        raise ValueError(f"pairs must have equal lengths; got {len(i)}, {len(j)}, {len(issame)}")
    distinct = np.unique(np.concatenate([np.asarray(i), np.asarray(j)]).astype(np.int64))
    cache = {int(k): dataset.encoded(int(k), format, quality)
             for k in tqdm(distinct, desc="encoding pair images", unit="img", disable=not progress)}
    images = [cache[int(k)] for a, b in zip(i, j) for k in (a, b)]
    return write_bin(path, images, issame)
