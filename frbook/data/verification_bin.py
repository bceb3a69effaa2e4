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
import pickletools
from pathlib import Path

import numpy as np
import torch

from ..defaults import DEFAULT_CHANNELS
from ..safe_io import clip, shorten, temporary_name
from .encoded import EncodedFaces, Pairs
from .errors import CorruptFileError

__all__ = ["RestrictedUnpickler", "read_bin", "write_bin", "pairs_to_bin", "VerificationBin"]


class _UnsafePickle(Exception):
    pass


# The pickle opcodes a .bin needs: framing, lists and tuples, bytes and strings, bools and small
# ints, the memo, and the one global call described in the module docstring. Everything else
# (BUILD, which sets attributes on an object; NEWOBJ, INST, OBJ; dicts, sets, floats, persistent
# ids, out-of-band buffers) is refused before anything is built.
_ALLOWED_OPCODES = frozenset("""
    PROTO FRAME STOP MARK POP POP_MARK DUP
    EMPTY_LIST LIST APPEND APPENDS EMPTY_TUPLE TUPLE TUPLE1 TUPLE2 TUPLE3
    BINBYTES SHORT_BINBYTES BINBYTES8 BYTEARRAY8 BINSTRING SHORT_BINSTRING STRING
    BINUNICODE SHORT_BINUNICODE BINUNICODE8 UNICODE
    NEWTRUE NEWFALSE NONE INT BININT BININT1 BININT2 LONG LONG1
    PUT BINPUT LONG_BINPUT MEMOIZE GET BINGET LONG_BINGET
    GLOBAL STACK_GLOBAL REDUCE
""".split())


_STRINGS = frozenset({"BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "UNICODE"})
_PUTS, _GETS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"}), frozenset({"GET", "BINGET", "LONG_BINGET"})


def _check_opcodes(data: bytes) -> None:
    """Refuse a pickle that names a global other than ``_codecs.encode``, or uses an opcode
    outside :data:`_ALLOWED_OPCODES`: a linear scan that builds nothing. The last two strings
    pushed (memo included) are tracked so that a refusal names the global a protocol-4 pickle
    asks for, as protocol 2's GLOBAL names it in its argument."""
    memo: dict[int, object] = {}
    last: list[object] = [None, None]  # the two most recent pushes, strings or None
    for opcode, arg, position in pickletools.genops(data):
        name = opcode.name
        if name == "GLOBAL" and arg != "_codecs encode":
            raise _UnsafePickle(f"it names {clip(str(arg).replace(' ', '.'), 120)}")
        if name == "STACK_GLOBAL" and last != ["_codecs", "encode"]:
            module, attribute = (x if isinstance(x, str) else "?" for x in last)
            raise _UnsafePickle(f"it names {clip(module, 60)}.{clip(attribute, 60)}")
        if name not in _ALLOWED_OPCODES:
            raise _UnsafePickle(f"it uses the pickle opcode {name} at byte {position}")
        if name == "STOP":
            return
        if name in _PUTS:
            memo[arg] = last[-1]
        elif name == "MEMOIZE":
            memo[len(memo)] = last[-1]
        elif name in _GETS:
            last = [last[-1], memo.get(arg)]
        elif opcode.stack_after:  # it pushes something: a string, or anything else
            # only short strings are kept: names, not the images of a protocol-2 file
            last = [last[-1], arg if name in _STRINGS and len(arg) <= 200 else None]


class _Latin1Bytes:
    """The only callable a .bin may name: Python 3's protocol-2 spelling of a bytes object,
    ``_codecs.encode(text, "latin1")``. One per file (a fresh object, so nothing a file does to
    it lasts), and it produces at most ``budget`` bytes in all: a file that calls it again and
    again on one memoised string to ask for far more memory than its own size is refused."""

    def __init__(self, budget: int):
        self.budget = budget

    def __call__(self, text, encoding="latin1"):
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise _UnsafePickle(f"_codecs.encode called with ({type(text).__name__}, {shorten(encoding, 40)})")
        self.budget -= len(text)
        if self.budget < 0:
            raise _UnsafePickle("its _codecs.encode calls produce more bytes than the file holds "
                                "(a memo-reference memory bomb)")
        return text.encode("latin1")


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global except ``_codecs.encode`` (see the module).

    ``budget`` bounds the bytes that the ``_codecs.encode`` stand-in may produce (the file's size
    when read by :func:`read_bin`).
    """

    def __init__(self, file, *, budget: int = 1 << 40, **kwargs):
        super().__init__(file, **kwargs)
        self._latin1 = _Latin1Bytes(budget)

    def find_class(self, module, name):
        if (module, name) == ("_codecs", "encode"):
            return self._latin1
        raise _UnsafePickle(f"it names {clip(module, 60)}.{clip(name, 60)}")


def read_bin(path) -> tuple[list[bytes], np.ndarray]:
    """``(images, issame)`` of a verification ``.bin``, checked: 2N images, N booleans, N >= 1.

    The file is untrusted: only the opcodes a .bin needs are allowed, the bytes it can produce
    are bounded by its size, an image stored once and referenced many times (pickle's memo) stays
    one object, and error messages quote at most a few dozen characters of any value. Every
    failure is a :class:`CorruptFileError` naming the file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise CorruptFileError(f"{path}: a folder, not a verification .bin") from None
    if not data:
        raise CorruptFileError(f"{path}: empty file (0 bytes), not a verification .bin")
    try:
        _check_opcodes(data)
        # encoding="bytes": byte strings pickled by Python 2 come back as bytes, not text.
        obj = RestrictedUnpickler(io.BytesIO(data), encoding="bytes", budget=len(data)).load()
    except _UnsafePickle as exc:
        raise CorruptFileError(f"{path}: refused: {exc}; a verification .bin may hold only lists, "
                               "tuples, bytes and bools, and loading anything else could run code") from None
    except (RecursionError, MemoryError) as exc:
        raise CorruptFileError(f"{path}: refused: unpickling it needs {type(exc).__name__}") from None
    except Exception as exc:  # truncated or not a pickle at all
        raise CorruptFileError(f"{path}: not a readable verification .bin ({type(exc).__name__}: "
                               f"{clip(exc, 120)})") from None
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2):
        raise CorruptFileError(f"{path}: expected a pickled pair (images, issame), got {type(obj).__name__}")
    images, issame = obj
    if not isinstance(images, (list, tuple)) or not isinstance(issame, (list, tuple)):
        raise CorruptFileError(f"{path}: images and issame must be lists, got {type(images).__name__} "
                               f"and {type(issame).__name__}")
    if not issame:
        raise CorruptFileError(f"{path}: holds no pairs (images and issame are empty)")
    as_bytes: dict[int, bytes] = {}  # id -> bytes: an object referenced many times is copied once
    for k, image in enumerate(images):
        if not isinstance(image, (bytes, bytearray)):
            raise CorruptFileError(f"{path}: image {k} is a {type(image).__name__}, not bytes")
        if id(image) not in as_bytes:
            as_bytes[id(image)] = bytes(image)
    flags = []
    for k, flag in enumerate(issame):
        if not (isinstance(flag, bool) or (type(flag) is int and flag in (0, 1))):
            raise CorruptFileError(f"{path}: issame[{k}] is {shorten(flag)} ({type(flag).__name__}), "
                                   "not a bool")
        flags.append(bool(flag))
    if len(images) != 2 * len(issame):
        raise CorruptFileError(f"{path}: {len(images)} images for {len(issame)} pairs; "
                               "expected two images per pair")
    return [as_bytes[id(im)] for im in images], np.array(flags, dtype=bool)


def write_bin(path, images, issame, protocol: int = 4) -> Path:
    """Write ``(images, issame)`` as a ``.bin`` that InsightFace's loader and :func:`read_bin`
    both read; written to a temporary name then renamed, so it is never half-written."""
    path = Path(path)
    images = [bytes(im) for im in images]
    issame = [bool(s) for s in np.asarray(issame).ravel()]
    if len(images) != 2 * len(issame):
        raise ValueError(f"{len(images)} images for {len(issame)} pairs; need two per pair")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        with open(tmp, "wb") as f:
            pickle.dump((images, issame), f, protocol=protocol)
        os.replace(tmp, path)
    finally:  # a full disk or a folder at ``path`` leaves no temporary file behind
        tmp.unlink(missing_ok=True)
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
