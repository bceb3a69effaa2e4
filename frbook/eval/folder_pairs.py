"""LFW's protocol for any labelled face set: person-disjoint folds of matched and mismatched pairs.

LFW's View 2 (``pairs.txt``) is ten folds; each fold is N *matched* pairs (two images of one
person) then N *mismatched* pairs (two people), and no person appears in two folds, so a
threshold learned on nine folds is applied to people it has never seen.
:func:`person_disjoint_folds` draws such folds from the labels of any frbook face set (an image
folder, a ``.rec``), seeded; :func:`write_pairs_txt` writes them in LFW's format, which
:class:`frbook.data.LFW` (and so ``python -m frbook eval --target FOLDER``) reads back.
``python -m frbook data pairs FOLDER`` does both in one command, or writes a ``.bin`` instead.

How people are put into folds: shuffled with the seed, then, largest first, each into the fold
with the fewest images so far, so that every fold can supply about as many matched pairs.
Within a fold the pairs are drawn by :func:`frbook.eval.make_pairs` (seed ``seed + fold``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.encoded import Pairs
from ..data.lfw import numbered_images
from .verification import make_pairs

__all__ = ["person_disjoint_folds", "write_pairs_txt", "interleaved", "LFW_PAIRS_PER_FOLD"]

#: LFW's own fold: 300 matched + 300 mismatched pairs; the default cap for a fold here.
LFW_PAIRS_PER_FOLD = 300


def _assign_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """The fold (0 .. folds-1) of each identity."""
    ids, counts = np.unique(labels, return_counts=True)
    order = np.random.default_rng(seed).permutation(ids.size)
    order = order[np.argsort(-counts[order], kind="stable")]  # largest first, ties in random order
    fold_of = np.empty(int(labels.max()) + 1, np.int64)
    load = np.zeros(folds, np.int64)
    for k in order:
        f = int(np.argmin(load))
        fold_of[ids[k]] = f
        load[f] += counts[k]
    return fold_of


def _capacity(labels: np.ndarray) -> int:
    """How many matched and as many mismatched pairs these labels allow."""
    _, counts = np.unique(labels, return_counts=True)
    genuine = int(np.sum(counts * (counts - 1) // 2))
    n = labels.size
    return min(genuine, n * (n - 1) // 2 - genuine)


def person_disjoint_folds(dataset, folds: int | None = None, per_fold: int | None = None,
                          seed: int = 0) -> list[Pairs]:
    """``folds`` lists of pairs (item indices of ``dataset``), each ``per_fold`` matched pairs then
    ``per_fold`` mismatched ones, no identity in two folds.

    ``folds`` defaults to LFW's 10, or fewer when there are fewer than 20 people (a fold needs
    two). ``per_fold`` defaults to what the sparsest fold allows, at most
    :data:`LFW_PAIRS_PER_FOLD`.
    """
    labels = dataset.labels.numpy()
    if folds is None:
        folds = max(1, min(10, np.unique(labels).size // 2))
    if folds < 1 or int(folds) != folds:
        raise ValueError(f"folds must be a whole number >= 1; got {folds!r}")
    num_ids = np.unique(labels).size
    if num_ids < 2 * folds:
        raise ValueError(f"{num_ids} identities are too few for {folds} person-disjoint folds "
                         f"(each needs two people for a mismatched pair); use --folds {max(num_ids // 2, 1)} or fewer")
    fold_of = _assign_folds(labels, folds, seed)[labels]
    members = [np.flatnonzero(fold_of == f) for f in range(folds)]
    capacity = [_capacity(labels[m]) for m in members]
    most = min(capacity)
    if most == 0:
        raise ValueError(f"fold {capacity.index(0)} gets no matched pair (its people have one image "
                         "each); use fewer folds, or a folder with more images per person")
    if per_fold is None:
        per_fold = min(most, LFW_PAIRS_PER_FOLD)
    elif per_fold < 1 or per_fold > most:
        raise ValueError(f"{per_fold} pairs of each kind per fold: the sparsest fold allows 1..{most}")
    out = []
    for f, items in enumerate(members):
        i, j, same = make_pairs(labels[items], num_pairs=2 * per_fold, seed=seed + f)
        order = np.concatenate([np.flatnonzero(same), np.flatnonzero(~same)])  # matched first, as LFW
        out.append(Pairs(items[i[order]], items[j[order]], same[order]))
    return out


def interleaved(folds: list[Pairs]) -> Pairs:
    """All folds in order as one list of pairs, each fold's matched and mismatched pairs
    alternating: the order for a ``.bin``, whose folds are contiguous chunks, so that any number of
    chunks is balanced, and with as many chunks as folds, each chunk is one person-disjoint fold."""
    parts = []
    for f in folds:
        n = len(f.i) // 2
        order = np.stack([np.arange(n), np.arange(n, 2 * n)], 1).ravel()
        parts.append(Pairs(f.i[order], f.j[order], f.issame[order]))
    return Pairs(*(np.concatenate([getattr(p, key) for p in parts]) for key in ("i", "j", "issame")))


def write_pairs_txt(dataset, folds: list[Pairs], path) -> Path:
    """Write ``folds`` (from :func:`person_disjoint_folds`) as LFW's ``pairs.txt``.

    ``dataset`` is an :class:`~frbook.data.ImageFolderFaces` (or any set of files whose identity
    is the name of the folder holding each file). Images are named by their number within the
    person's folder (:func:`frbook.data.lfw.numbered_images`), as :class:`~frbook.data.LFW` reads
    them, so ``pairs.txt`` placed in that folder makes it an LFW-format benchmark.
    """
    per_fold = len(folds[0].i) // 2
    if any(len(f.i) != 2 * per_fold or f.issame[:per_fold].sum() != per_fold for f in folds):
        raise ValueError("every fold must hold as many matched pairs (first) as mismatched ones")
    labels = dataset.labels
    number: dict[Path, int] = {}
    for person in sorted({Path(f).parent for f in dataset.files}):
        number.update({f: n for n, f in numbered_images(person)})
    for name in dataset.identities:
        if not name or any(c.isspace() for c in name):
            raise ValueError(f"identity folder {name!r}: pairs.txt separates fields by spaces, so "
                             "folder names must not contain any; rename it")

    def image(k) -> tuple[str, int]:
        f = Path(dataset.files[int(k)])
        name = dataset.identities[int(labels[int(k)])]
        if f.parent.name != name or f not in number:
            raise ValueError(f"{f}: pairs.txt names images <identity> <number>, so each image must lie "
                             f"directly in its identity's folder {name}/")
        return name, number[f]

    lines = [f"{len(folds)} {per_fold}"]
    for fold in folds:
        for a, b, same in zip(fold.i, fold.j, fold.issame):
            (na, ka), (nb, kb) = image(a), image(b)
            lines.append(f"{na}\t{ka}\t{kb}" if same else f"{na}\t{ka}\t{nb}\t{kb}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path
