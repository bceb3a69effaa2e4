"""Labeled Faces in the Wild: the folder of images and the View 2 ``pairs.txt`` protocol.

Layout (as distributed)::

    lfw/pairs.txt                         first line "10 300": 10 folds of 300 + 300 pairs
    lfw/lfw/<Name>/<Name>_0001.jpg        13,233 images of 5,749 people (250x250, unaligned)

``root`` may also hold the ``<Name>`` folders directly next to ``pairs.txt``. Each fold of
``pairs.txt`` is 300 *matched* lines ``name i j`` (images i and j of one person, numbered from 1)
followed by 300 *mismatched* lines ``name1 i name2 j``. The folds are person-disjoint, which
allows the "unrestricted, no outside data" protocol: for test fold k, train on every identity
that does not appear in fold k (:meth:`LFW.train_set`) and test on fold k's pairs.

Any folder in this format works, so a private set of pairs can be evaluated the same way: images
named ``<Name>_<number>.<ext>`` are numbered by that number, and a person whose images are named
otherwise has them numbered 1, 2, ... in sorted file order (what ``python -m frbook data pairs``
writes for a folder of one sub-folder per identity). Image extensions are those of
:class:`~frbook.data.ImageFolderFaces` (``.jpg .jpeg .png .pgm .ppm .bmp .tif .tiff .webp``);
other files (notes, thumbnails databases) are ignored. Folds are numbered 0 .. 9 here.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..defaults import DEFAULT_CHANNELS
from .encoded import Pairs
from .errors import CorruptFileError
from .folder import FileFaces
from .root import find_dataset

__all__ = ["LFW", "write_cropped_copy"]

_HOW_TO_GET = ("LFW is at https://vis-www.cs.umass.edu/lfw/ (the images folder and pairs.txt); "
               "developers find it in ../shared/data/lfw.")
_IMAGE = re.compile(r"(.+)_(\d+)\.[a-z]+", re.IGNORECASE)
#: torchvision's ImageFolder extensions (kept here so that importing frbook.data skips torchvision).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def numbered_images(person: Path) -> list[tuple[int, Path]]:
    """``[(number, file), ...]`` of one person's folder, sorted: the numbers of LFW's
    ``<Name>_<number>`` names when every image is named so, else 1, 2, ... in sorted name order
    (the order of :class:`~frbook.data.ImageFolderFaces`). Non-image files are skipped."""
    files = sorted((f for f in person.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS),
                   key=lambda f: f.name)
    matches = [_IMAGE.fullmatch(f.name) for f in files]
    if files and all(m and m.group(1) == person.name for m in matches):
        return sorted((int(m.group(2)), f) for m, f in zip(matches, files))
    return list(enumerate(files, start=1))


def _holds_lfw(folder: Path) -> bool:
    return (folder / "pairs.txt").is_file()


class LFW(FileFaces):
    """LFW images (labels: people, in name order) and its pairs.

    Args:
        root: the folder holding ``pairs.txt``, or a data root holding ``lfw/``; by default
            found by :func:`frbook.data.root.find_dataset`.
        channels: 1 grey (the library's default; the copy in ../shared/data is grey) or 3 colour
            (the original set).
        crop: centre crop (int or (H, W)) before resizing; the face sits in the middle 110..130
            pixels of the 250x250 frame, so ``crop=128`` is a cheap stand-in for alignment.
        size: resize to this (int or (H, W)) after cropping.
    """

    def __init__(self, root=None, channels: int = DEFAULT_CHANNELS, crop=None, size=None):
        self.root = find_dataset("lfw", _holds_lfw, root, _HOW_TO_GET)
        self.pairs_file = self.root / "pairs.txt"
        self.image_dir = self.root / "lfw" if (self.root / "lfw").is_dir() else self.root
        files, labels, names, self._item = [], [], [], {}
        for person in sorted((d for d in self.image_dir.iterdir() if d.is_dir()), key=lambda d: d.name):
            numbered = numbered_images(person)
            for number, f in numbered:
                self._item[(person.name, number)] = len(files)
                files.append(f)
                labels.append(len(names))
            if numbered:
                names.append(person.name)
        if not files:
            raise CorruptFileError(f"{self.image_dir}: no images in <Name>/ folders (expected "
                                   f"<Name>/<Name>_<number>.jpg, or any image files: "
                                   f"{' '.join(IMAGE_EXTENSIONS)})")
        super().__init__(files, labels, names, channels, crop, size)
        self._pairs = None

    # -- the protocol ---------------------------------------------------------------------------
    def _parse_pairs(self):
        """Parse pairs.txt once: (i, j, issame, fold of each pair), checked line by line."""
        lines = self.pairs_file.read_text().splitlines()
        where = str(self.pairs_file)
        head = lines[0].split() if lines else []
        if not head or len(head) > 2 or not all(h.isdigit() for h in head):
            raise CorruptFileError(f"{where}:1: expected 'FOLDS PAIRS' (e.g. '10 300'), got {lines[:1]}")
        folds, per_side = (int(head[0]), int(head[1])) if len(head) == 2 else (1, int(head[0]))
        expected = 1 + folds * 2 * per_side
        body = [(n, line.split()) for n, line in enumerate(lines[1:], start=2) if line.strip()]
        if len(body) != expected - 1:
            raise CorruptFileError(f"{where}: header says {folds} folds x 2 x {per_side} pairs "
                                   f"= {expected - 1} lines, but the file has {len(body)}")
        i, j, same, fold = [], [], [], []
        for k, (n, fields) in enumerate(body):
            matched = (k // per_side) % 2 == 0  # each fold: per_side matched, then mismatched
            if matched and len(fields) == 3:
                a, b = (fields[0], fields[1]), (fields[0], fields[2])
            elif not matched and len(fields) == 4:
                a, b = (fields[0], fields[1]), (fields[2], fields[3])
            else:
                kind = "matched 'name i j'" if matched else "mismatched 'name1 i name2 j'"
                raise CorruptFileError(f"{where}:{n}: expected a {kind} line, got {' '.join(fields)!r}")
            i.append(self._lookup(a, where, n))
            j.append(self._lookup(b, where, n))
            same.append(matched)
            fold.append(k // (2 * per_side))
        return (np.array(i, np.int64), np.array(j, np.int64), np.array(same, bool),
                np.array(fold, np.int64), folds)

    def _lookup(self, name_number, where, line) -> int:
        name, number = name_number
        try:
            return self._item[(name, int(number))]
        except (KeyError, ValueError):
            raise CorruptFileError(f"{where}:{line}: no image {number} of {name!r} (named "
                                   f"{name}/{name}_{number:0>4}.<ext>, or image {number} of "
                                   f"{name}/ in name order) under {self.image_dir}") from None

    @property
    def num_folds(self) -> int:
        if self._pairs is None:
            self._pairs = self._parse_pairs()
        return self._pairs[4]

    def pairs(self, fold: int | None = None) -> Pairs:
        """The pairs of ``fold`` (0-based), or all of them, in file order, as item indices."""
        num_folds = self.num_folds
        i, j, same, folds, _ = self._pairs
        if fold is None:
            return Pairs(i.copy(), j.copy(), same.copy())
        if not (isinstance(fold, (int, np.integer)) and 0 <= fold < num_folds):
            raise ValueError(f"fold must be an integer in 0..{num_folds - 1}; got {fold!r}")
        keep = folds == fold
        return Pairs(i[keep], j[keep], same[keep])

    def pair_paths(self, fold: int | None = None) -> tuple[list[Path], list[Path], np.ndarray]:
        """The same pairs as file paths: (first images, second images, issame)."""
        i, j, same = self.pairs(fold)
        return [self.files[k] for k in i], [self.files[k] for k in j], same

    def fold_identities(self, fold: int) -> set[str]:
        """The people who appear in any pair of ``fold``."""
        i, j, _ = self.pairs(fold)
        return {self.identities[int(self._labels[k])] for k in np.concatenate([i, j])}

    def validation_fold(self, test_fold: int) -> int:
        """The fold that validates a run tested on ``test_fold``: the next one, cyclically."""
        return (test_fold + 1) % self.num_folds

    def train_identities(self, test_fold: int) -> list[str]:
        """The training people of the "unrestricted, no outside data" protocol as this book runs
        it (sorted): everyone who appears in neither ``test_fold`` nor its
        :meth:`validation_fold`.

        One protocol for every run, the trainer's, a comparison's and a search's: a search needs
        validation pairs for its reward that it never trained on, and a fixed loss is compared with
        it only if both train on the same people. Holding out the validation fold costs a plain
        training run a tenth of LFW's people; in exchange a best checkpoint can be picked on pairs
        that are not the test's."""
        held_out = self.fold_identities(test_fold) | self.fold_identities(self.validation_fold(test_fold))
        return [name for name in self.identities if name not in held_out]

    def train_items(self, test_fold: int) -> list[int]:
        """The item indices of :meth:`train_identities`' images."""
        keep = set(self.train_identities(test_fold))
        return [k for k, lab in enumerate(self._labels.tolist()) if self.identities[lab] in keep]

    def train_set(self, test_fold: int) -> FileFaces:
        """The images of :meth:`train_identities` as a data set, labels renumbered 0 .. K-1."""
        return self.subset(self.train_items(test_fold))


def write_cropped_copy(lfw: LFW, out, quality: int = 90, progress: bool = True) -> Path:
    """Write ``lfw`` as a new LFW-format folder: ``out/pairs.txt`` and ``out/lfw/<Name>/<file>``,
    every image centre-cropped (and resized) as ``lfw`` prepares it, re-encoded as JPEG.

    Why: the face fills the middle of LFW's 250x250 frame, so a copy of 128x128 crops holds what a
    model sees in about a third of the bytes (49 MB of grey JPEG at quality 90 instead of 142 MB),
    small enough to carry to another machine. Reading the copy with the same ``crop`` is a no-op
    crop, so a config written for the original (``crop: 128``) runs unchanged on the copy; only
    the JPEG re-encoding differs.
    """
    from tqdm import tqdm

    from .images import encode

    out = Path(out).expanduser()
    if out.resolve() == lfw.root.resolve():
        raise ValueError(f"{out}: the copy must not overwrite the original")
    (out / "lfw").mkdir(parents=True, exist_ok=True)
    (out / "pairs.txt").write_bytes(lfw.pairs_file.read_bytes())
    for k in tqdm(range(len(lfw)), desc="cropping LFW", unit="img", disable=not progress):
        source = lfw.files[k]
        target = out / "lfw" / source.parent.name / source.name
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(encode(lfw.image_uint8(k), "jpeg", quality))
    return out
