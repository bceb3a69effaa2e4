"""MXNet's RecordIO container, read and written without MXNet.

InsightFace ships its training sets (MS1M, Glint360K, CASIA-WebFace, ...) as ``train.rec`` +
``train.idx``. The format, byte by byte (all integers little-endian):

**Framing.** A ``.rec`` file is a sequence of records. Each record is written as one or more
*parts*; each part is::

    uint32 magic   0xCED7230A
    uint32 lrec    upper 3 bits: continuation flag; lower 29 bits: payload length in bytes
    payload        padded with zero bytes to a multiple of 4

The flag is 0 for a record in one part. A payload that itself contains the magic number at a
4-byte-aligned position is cut there, so that a reader scanning for the magic can never be
fooled: the parts get flags 1 (first), 2 (middle), 3 (last), the magic bytes at each cut are
left out, and a reader puts them back between the parts. (This is rare for JPEG data, but it
happens, and a reader that ignores it silently corrupts those images.)

**Index.** The ``.idx`` file is text, one line per record: ``key<TAB>byte offset`` of the
record's first part, which gives random access.

**Image records** (MXNet's ``recordio.pack``). The payload starts with a 24-byte header,
``struct`` format ``<IfQQ``: ``flag`` (uint32), ``label`` (float32), ``id``, ``id2`` (uint64).
When ``flag > 0`` the header's label is unused and ``flag`` float32 labels follow it. The rest
is the encoded image.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..safe_io import shorten
from .errors import CorruptFileError

__all__ = ["MAGIC", "IRHeader", "pack", "unpack", "frame", "read_index", "RecordReader",
           "RecordWriter"]

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_LENGTH_BITS = 29
_MAX_LENGTH = (1 << _LENGTH_BITS) - 1
_HEADER = struct.Struct("<IfQQ")


class IRHeader(NamedTuple):
    """The header of an image record. ``label`` is a float, or a tuple of floats when
    ``flag > 0`` (then ``flag == len(label)``)."""

    flag: int
    label: float | tuple
    id: int
    id2: int


def pack(header: IRHeader, payload: bytes = b"") -> bytes:
    """Header + payload as one record payload, as MXNet's ``recordio.pack`` lays it out."""
    if isinstance(header.label, (tuple, list, np.ndarray)):
        labels = np.asarray(header.label, dtype="<f4").ravel()
        if labels.size == 0:
            raise ValueError("a label sequence must not be empty (use a single float instead)")
        head = _HEADER.pack(labels.size, 0.0, header.id, header.id2)
        return head + labels.tobytes() + bytes(payload)
    return _HEADER.pack(0, float(header.label), header.id, header.id2) + bytes(payload)


def unpack(record: bytes, where: str = "record") -> tuple[IRHeader, bytes]:
    """Split a record payload into its :class:`IRHeader` and the remaining bytes."""
    if len(record) < _HEADER.size:
        raise CorruptFileError(f"{where}: {len(record)} bytes is too short for the "
                               f"{_HEADER.size}-byte image record header")
    flag, label, id_, id2 = _HEADER.unpack_from(record)
    body = memoryview(record)[_HEADER.size:]
    if flag > 0:
        if len(body) < 4 * flag:
            raise CorruptFileError(f"{where}: header announces {flag} labels but only "
                                   f"{len(body)} bytes follow it")
        label = tuple(float(x) for x in np.frombuffer(body[:4 * flag], dtype="<f4"))
        body = body[4 * flag:]
    return IRHeader(flag, label, id_, id2), bytes(body)


def _part(flag: int, data: bytes) -> bytes:
    pad = -len(data) % 4
    return _MAGIC_BYTES + struct.pack("<I", (flag << _LENGTH_BITS) | len(data)) + data + b"\0" * pad


def frame(payload: bytes) -> bytes:
    """The bytes of one record on disk: parts cut at every 4-aligned magic (see the module)."""
    payload = bytes(payload)
    if len(payload) > _MAX_LENGTH:
        raise ValueError(f"a record holds at most {_MAX_LENGTH} bytes; got {len(payload)}")
    words = np.frombuffer(payload[: len(payload) // 4 * 4], dtype="<u4")
    cuts = (np.flatnonzero(words == MAGIC) * 4).tolist()
    if not cuts:
        return _part(0, payload)
    parts, start = [], 0
    for k, cut in enumerate(cuts):
        parts.append(_part(1 if k == 0 else 2, payload[start:cut]))
        start = cut + 4  # the magic itself is not stored; the reader re-inserts it
    parts.append(_part(3, payload[start:]))
    return b"".join(parts)


_MAX_KEY = 2**63 - 1  # keys are stored as int64


def read_index(idx_path) -> dict[int, int]:
    """The ``.idx`` file as ``{key: byte offset}``, in file order, checked line by line: UTF-8
    text, ``key<TAB>offset`` with both in ``0..2**63-1``, no key twice. Every failure names the
    file and the line. (An offset past the end of the ``.rec`` is reported when that record is
    read, naming it, so that the records before a truncation stay readable.)"""
    idx_path = Path(idx_path)
    data = idx_path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CorruptFileError(f"{idx_path}:{line}: not UTF-8 text (byte {exc.start}); an .idx is "
                               "lines of 'key<TAB>offset'") from None
    index: dict[int, int] = {}
    lines: dict[int, int] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        try:
            if len(fields) != 2 or max(len(f.strip()) for f in fields) > 20:  # 2**64 has 20 digits
                raise ValueError
            key, offset = int(fields[0]), int(fields[1])
        except ValueError:
            raise CorruptFileError(f"{idx_path}:{n}: expected 'key<TAB>offset', got {shorten(line)}") from None
        if not 0 <= key <= _MAX_KEY:
            raise CorruptFileError(f"{idx_path}:{n}: key {key} is not in 0..2**63-1")
        if not 0 <= offset <= _MAX_KEY:
            raise CorruptFileError(f"{idx_path}:{n}: offset {offset} of key {key} is not in 0..2**63-1")
        if key in index:
            raise CorruptFileError(f"{idx_path}:{n}: key {key} appears twice (first on line "
                                   f"{lines[key]}); the index is corrupt")
        index[key], lines[key] = offset, n
    return index


class RecordReader:
    """Random access to the records of a ``.rec`` file through its ``.idx``.

    ``read(key)`` returns the payload of a record. The file is opened lazily and reopened in a
    new process, so a reader can be used inside DataLoader workers.
    """

    def __init__(self, rec_path, idx_path):
        self.rec_path, self.idx_path = Path(rec_path), Path(idx_path)
        for p in (self.rec_path, self.idx_path):
            if not p.is_file():
                raise FileNotFoundError(f"{p}: no such file")
        self.size = self.rec_path.stat().st_size
        self.index = read_index(self.idx_path)
        self._file, self._pid = None, None

    @property
    def keys(self) -> list[int]:
        return list(self.index)

    def _handle(self):
        if self._file is None or self._pid != os.getpid():
            self._file, self._pid = open(self.rec_path, "rb"), os.getpid()
        return self._file

    def read(self, key: int, limit: int | None = None) -> bytes:
        """The payload of record ``key`` (parts joined, magic re-inserted at each cut); with
        ``limit``, only its first ``limit`` bytes."""
        try:
            offset = self.index[key]
        except KeyError:
            raise KeyError(f"{self.idx_path}: no record with key {key}") from None
        return self.read_at(offset, f"{self.rec_path}: record {key} at offset {offset}", limit)

    def read_at(self, offset: int, where: str | None = None, limit: int | None = None) -> bytes:
        """The record whose first part starts at byte ``offset``; with ``limit``, only its first
        ``limit`` bytes (enough for a header, without reading a whole image)."""
        where = where or f"{self.rec_path}: record at offset {offset}"
        f = self._handle()
        f.seek(offset)
        chunks, position, have = [], offset, 0
        while True:
            head = f.read(8)
            if len(head) < 8:
                raise CorruptFileError(f"{where}: truncated: the file ends at byte {self.size}, "
                                       f"inside the part header at byte {position}")
            magic, lrec = struct.unpack("<II", head)
            if magic != MAGIC:
                raise CorruptFileError(f"{where}: bad magic 0x{magic:08x} at byte {position} "
                                       f"(expected 0x{MAGIC:08x}); the .idx does not match this "
                                       ".rec, or the file is corrupt")
            flag, length = lrec >> _LENGTH_BITS, lrec & _MAX_LENGTH
            if flag > 3:
                raise CorruptFileError(f"{where}: bad continuation flag {flag} at byte {position}")
            padded = length + (-length % 4)
            if limit is not None and have + length >= limit:  # enough: read no further
                want = max(0, limit - have)  # 0 when the re-inserted magic already got there
                data = f.read(want)
                if len(data) < want:
                    raise CorruptFileError(f"{where}: truncated: the file ends at byte {self.size}")
                return _MAGIC_BYTES.join(chunks + [data])[:limit]
            data = f.read(padded)
            if len(data) < padded:
                raise CorruptFileError(f"{where}: truncated: a part of {length} bytes starts at "
                                       f"byte {position + 8} but the file ends at byte {self.size}")
            chunks.append(data[:length])
            have += length + 4  # the magic re-inserted after this part, if another follows
            position += 8 + padded
            if flag in (0, 3):
                return _MAGIC_BYTES.join(chunks)[:limit]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __getstate__(self):  # a pickled reader (for a worker process) reopens its file
        state = dict(self.__dict__)
        state["_file"], state["_pid"] = None, None
        return state


class RecordWriter:
    """Write records and their index: ``with RecordWriter(rec, idx) as w: w.write(key, data)``.

    Both files are written under temporary names and renamed into place on a clean exit, so an
    interrupted pack never leaves a ``.rec`` that looks complete.
    """

    def __init__(self, rec_path, idx_path):
        self.rec_path, self.idx_path = Path(rec_path), Path(idx_path)
        self._rec_tmp = self.rec_path.with_name(self.rec_path.name + ".tmp")
        self._idx_tmp = self.idx_path.with_name(self.idx_path.name + ".tmp")
        self._rec = open(self._rec_tmp, "wb")
        self._idx = open(self._idx_tmp, "w")
        self._keys: set[int] = set()

    def write(self, key: int, payload: bytes) -> int:
        """Append a record; returns its byte offset."""
        key = int(key)
        if key in self._keys:
            raise ValueError(f"record key {key} written twice")
        self._keys.add(key)
        offset = self._rec.tell()
        self._rec.write(frame(payload))
        self._idx.write(f"{key}\t{offset}\n")
        return offset

    def close(self, keep: bool = True) -> None:
        try:
            self._rec.close()
            self._idx.close()
            if keep:
                os.replace(self._rec_tmp, self.rec_path)
                os.replace(self._idx_tmp, self.idx_path)
        finally:  # nothing half-written is left behind, whatever failed
            self._rec_tmp.unlink(missing_ok=True)
            self._idx_tmp.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(keep=exc_type is None)
