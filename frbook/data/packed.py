"""InsightFace's packed training sets (``train.rec`` + ``train.idx`` + ``property``), no MXNet.

On top of the RecordIO container (:mod:`frbook.data.recordio`) InsightFace lays a training set
out like this:

* ``property``: one line ``num_classes,height,width``, e.g. ``85742,112,112``. (A ``.rec`` not
  named ``train.rec`` has its own ``<stem>.property``, so two sets can share a folder.)
* record 0: a header only. Its ``flag`` is 2 and its two labels ``(a, b)`` say where things are:
  the image records are keys ``1 .. a-1`` (so ``a - 1`` images) and the identity records are keys
  ``a .. b-1`` (so ``b - a`` identities). A set without this header (flag 0) is read as "every
  key in the ``.idx`` is an image".
* image records: header ``flag 0, label = class id`` (sets that store several labels per image
  have ``flag > 0``; the first label is the class, as InsightFace reads it) + the encoded image.
* identity records: header only, ``flag 2``, labels ``(first, end)``: the image keys of that
  identity, ``first .. end-1``.

:class:`RecFaces` reads such a set as a data set; :func:`pack` writes one, header and identity
records included, from any labelled frbook data set (:func:`pack_folder`: from an image folder).
The image bytes are stored as given, so packing and reading back is exact.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from ..defaults import DEFAULT_CHANNELS
from ..safe_io import shorten, temporary_name
from .encoded import ONE_SIZE, EncodedFaces
from .errors import CorruptFileError
from .folder import ImageFolderFaces
from .images import decode, prepare, to_float
from .recordio import IRHeader, RecordReader, RecordWriter, pack as pack_record, unpack

__all__ = ["RecFaces", "pack", "pack_folder", "read_property", "property_path"]

_HEADER_BYTES = 24 + 4 * 16  # enough for the header and up to 16 float labels


MAX_CLASSES = 100_000_000  # WebFace260M has 4 million identities
MAX_SIDE = 4096


def read_property(path, max_classes: int = MAX_CLASSES) -> tuple[int, int, int]:
    """``(num_classes, height, width)`` from a ``property`` file, checked: 1 <= num_classes <=
    ``max_classes`` (a set cannot have more classes than images), 1 <= height, width <= 4096."""
    path = Path(path)
    data = path.read_bytes()[:1000]
    try:
        text = data.decode("ascii").strip()
        num_classes, height, width = (int(v) for v in text.split(","))
    except ValueError:  # UnicodeDecodeError included
        raise CorruptFileError(f"{path}: expected 'num_classes,height,width', got {shorten(data[:50])}") from None
    if not 1 <= num_classes <= max_classes:
        raise CorruptFileError(f"{path}: num_classes {num_classes} is not in 1..{max_classes} (the set has "
                               f"at most {max_classes} images to label)")
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
        raise CorruptFileError(f"{path}: image size {height}x{width} is not in 1..{MAX_SIDE}")
    return num_classes, height, width


def property_path(rec: Path) -> Path:
    """The ``property`` file of ``rec``: ``<stem>.property`` beside it when present (so that two
    sets can share a folder), else InsightFace's ``property``. :func:`pack` writes ``property``
    for ``train.rec`` (InsightFace's layout) and ``<stem>.property`` for any other name."""
    own = rec.with_suffix(".property")
    return own if own.is_file() or rec.stem != "train" else rec.parent / "property"


def _paths(path) -> tuple[Path, Path, Path]:
    """(rec, idx, property) for a folder holding train.rec, or for a .rec file."""
    path = Path(path).expanduser()
    rec = path / "train.rec" if path.is_dir() else path
    if rec.suffix != ".rec":
        raise ValueError(f"{path}: give a folder holding train.rec, or a .rec file")
    if rec.is_dir():
        raise ValueError(f"{rec} is a folder; give a folder holding train.rec, or a .rec file")
    return rec, rec.with_suffix(".idx"), property_path(rec)


class RecFaces(EncodedFaces):
    """The images of an InsightFace ``.rec`` with their class labels.

    Args:
        path: a folder holding ``train.rec``, ``train.idx`` (and usually ``property``), or the
            path of a ``.rec`` whose ``.idx`` has the same name.
        channels, crop, size: as for every frbook face set (InsightFace sets are 112x112 RGB:
            ``channels=3`` keeps their colour; the default is the library's grey).

    Labels are checked as they are read: a label that is not a whole number, is negative, or is
    not below the ``property`` file's ``num_classes`` raises :class:`CorruptFileError` naming the
    record.
    """

    def __init__(self, path, channels: int = DEFAULT_CHANNELS, crop=None, size=None):
        super().__init__(channels, crop, size)
        self.rec_path, self.idx_path, self.property_path = _paths(path)
        self.reader = RecordReader(self.rec_path, self.idx_path)
        records = len(self.reader.index)
        self.property = read_property(self.property_path, max(records, 1)) if self.property_path.is_file() else None
        self.identity_keys = range(0)
        keys = self.reader.keys
        if 0 in self.reader.index:
            header, _ = unpack(self.reader.read(0, limit=_HEADER_BYTES), f"{self.rec_path}: record 0")
            if header.flag > 0:
                # Bounded before any range is built: the keys run 0..records-1 in a packed set.
                first, end = header.label[:2] if header.flag >= 2 else (math.nan, math.nan)
                if not (math.isfinite(first) and math.isfinite(end) and first == int(first)
                        and end == int(end) and 1 <= first <= end <= records):
                    raise CorruptFileError(f"{self.rec_path}: record 0 is a header with labels "
                                           f"{shorten(header.label)}; expected (first identity key, end) "
                                           f"with 1 <= first <= end <= {records} (the records in {self.idx_path.name})")
                end_images, end_ids = int(first), int(end)
                keys = list(range(1, end_images))
                self.identity_keys = range(end_images, end_ids)
                missing = [k for k in keys if k not in self.reader.index]
                if missing:
                    raise CorruptFileError(f"{self.idx_path}: record 0 announces image keys 1.."
                                           f"{end_images - 1} but {len(missing)} are missing "
                                           f"(e.g. {missing[:3]})")
        self.keys = np.asarray(keys, dtype=np.int64)
        self._labels_cache = None

    def __len__(self) -> int:
        return int(self.keys.size)

    def where(self, i: int) -> str:
        key = int(self.keys[i])
        return f"{self.rec_path}: record {key} at offset {self.reader.index[key]}"

    def record(self, i) -> tuple[IRHeader, bytes]:
        """Item ``i``'s header and stored image bytes, exactly as packed."""
        i = self._index(i)
        key = int(self.keys[i])
        header, body = unpack(self.reader.read(key), self.where(i))
        self._check_id(header, i, key)
        return header, body

    def _check_id(self, header: IRHeader, i: int, key: int) -> None:
        """The header's id is its key (writers that leave it 0 excepted): an .idx that points at
        another record, or holds a key twice, would otherwise read the wrong image silently."""
        if header.id not in (0, key):
            raise CorruptFileError(f"{self.where(i)}: the record's header says it is record {header.id}; "
                                   f"the .idx points key {key} at another record")

    def raw(self, i: int) -> bytes:
        return self.record(i)[1]

    def label(self, i) -> int:
        """Item ``i``'s class, read from its header alone (the image is not read)."""
        i = self._index(i)
        key = int(self.keys[i])
        header, _ = unpack(self.reader.read(key, limit=_HEADER_BYTES), self.where(i))
        self._check_id(header, i, key)
        return self._checked_label(header, i)

    def _checked_label(self, header: IRHeader, i: int) -> int:
        value = header.label[0] if header.flag > 0 else header.label
        limit = self.property[0] if self.property else None
        if not math.isfinite(value) or value != int(value) or value < 0 or (limit is not None and value >= limit):
            bound = f"0..{limit - 1} (num_classes {limit} in {self.property_path})" if limit else ">= 0"
            raise CorruptFileError(f"{self.where(i)}: label {value} is not a class id in {bound}")
        return int(value)

    @property
    def labels(self) -> torch.Tensor:
        """Every item's class (read once, from the headers only, then kept)."""
        if self._labels_cache is None:
            self._labels_cache = torch.tensor([self.label(i) for i in range(len(self))],
                                              dtype=torch.int64)
        return self._labels_cache.clone()

    def __getitem__(self, i):
        header, data = self.record(i)
        i = self._index(i)
        image = decode(data, self.channels, self.where(i), self.conversions)  # one read: image and label
        return to_float(prepare(image, self.crop, self.size, self.conversions)), self._checked_label(header, i)

    @property
    def num_classes(self) -> int:
        return self.property[0] if self.property else super().num_classes

    def __repr__(self) -> str:
        return f"RecFaces({self.rec_path}, {len(self)} images, {self._settings()})"


def pack(dataset: EncodedFaces, out_rec, check: bool = True, progress: bool = False) -> dict:
    """Write ``dataset`` as an InsightFace training set: ``out_rec``, its ``.idx``, ``property``.

    Images are stored as ``dataset.encoded(i)``: the original bytes, or re-encoded when the data
    set crops or resizes. They are written grouped by label (stable order), because identity
    records describe each identity's images as one run of keys. With ``check=True`` every image
    is decoded first, so an unreadable file fails now, naming it, not in the middle of training;
    all images must then have one size (the ``property`` file has room for one).

    ``progress``: a bar over the images. Returns ``{"rec", "idx", "property", "num_images",
    "num_classes", "height", "width"}``.
    """
    from tqdm import tqdm

    out_rec = Path(out_rec)
    if out_rec.suffix != ".rec":
        raise ValueError(f"{out_rec}: the output must end in .rec")
    if out_rec.is_dir():
        raise IsADirectoryError(f"{out_rec} is a folder; give the .rec file to write, e.g. {out_rec / 'train.rec'}")
    out_rec.parent.mkdir(parents=True, exist_ok=True)
    labels = dataset.labels
    n, num_classes = len(dataset), int(dataset.num_classes)
    if n == 0:
        raise ValueError("nothing to pack: the data set is empty")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must lie in 0..{num_classes - 1} to be packed")
    if n + 1 + num_classes > 2**24:
        # Record 0 and the identity records store keys as float32 labels, exact only to 2**24.
        raise ValueError(f"{n} images + {num_classes} identities exceed the 2**24 keys that the "
                         "float32 labels of InsightFace's header records can address exactly")
    order = torch.argsort(labels, stable=True).tolist()
    # InsightFace's 'property' for train.rec; <stem>.property for another name, so that packing
    # two sets into one folder does not overwrite the first one's.
    idx_path = out_rec.with_suffix(".idx")
    prop = out_rec.parent / "property" if out_rec.stem == "train" else out_rec.with_suffix(".property")
    first_identity_key = n + 1
    sizes = set()
    with RecordWriter(out_rec, idx_path) as writer:
        writer.write(0, pack_record(IRHeader(2, (first_identity_key, first_identity_key + num_classes), 0, 0)))
        starts = np.zeros(num_classes + 1, np.int64)
        for key, i in enumerate(tqdm(order, desc="packing", unit="img", disable=not progress), start=1):
            data = dataset.encoded(i)
            if check or key == 1:
                sizes.add(tuple(decode(data, dataset.channels, dataset.where(i)).shape[-2:]))
                if len(sizes) > 1:
                    raise ValueError(f"{dataset.where(i)}: image sizes differ "
                                     f"({', '.join(f'{h}x{w}' for h, w in sorted(sizes))}); a packed set has "
                                     f"one size: {ONE_SIZE}")
            label = int(labels[i])
            writer.write(key, pack_record(IRHeader(0, float(label), key, 0), data))
            starts[label + 1] += 1
        ends = np.cumsum(starts) + 1  # image keys start at 1
        for c in range(num_classes):
            writer.write(first_identity_key + c,
                         pack_record(IRHeader(2, (float(ends[c]), float(ends[c + 1])), first_identity_key + c, 0)))
    height, width = sizes.pop()
    tmp = temporary_name(prop)
    try:
        tmp.write_text(f"{num_classes},{height},{width}\n")
        os.replace(tmp, prop)
    finally:
        tmp.unlink(missing_ok=True)
    return {"rec": out_rec, "idx": idx_path, "property": prop, "num_images": n,
            "num_classes": num_classes, "height": height, "width": width}


def pack_folder(folder, out_rec, check: bool = True, progress: bool = False, **kwargs) -> dict:
    """Pack an image folder (one sub-folder per identity) with :func:`pack`; ``kwargs`` go to
    :class:`~frbook.data.folder.ImageFolderFaces` (``crop``, ``size``, ``channels``)."""
    return pack(ImageFolderFaces(folder, **kwargs), out_rec, check=check, progress=progress)
