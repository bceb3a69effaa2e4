"""A run's data, from the config's ``data`` section: training set, validation set, test set.

One function, :func:`build_data`, serves the trainer, the comparisons and the searches, so every
run of the book splits its data the same way:

* ``synth``: three identity-disjoint SynthFaces populations. Training: identities ``0 ..
  identities-1`` with ``images_per_identity`` images each (a share ``label_noise`` of their labels
  wrong); validation: the next ``val_identities``; test: the next ``test_identities``; both with
  ``test_images_per_identity`` images. A search's reward and the trainer's periodic evaluation read
  the validation identities; the test identities are read once, at the end. ``age`` ages the faces
  of every split; with ``cross_age_gap`` the test pairs are cross-age (:func:`cross_age_test_pairs`).
* ``lfw``: the "unrestricted, no outside data" protocol, for test fold ``test_fold``: training on
  the people outside the test fold and its validation fold (:meth:`frbook.data.LFW.train_identities`
  says why both), validation on the next fold's 600 pairs, test on the test fold's 600 pairs. LFW is
  decoded once per process (13,233 images; 54 MB at 64x64 grey) and served from memory.
* ``folder`` and ``rec``: a training set (``data.cache`` decodes it once into memory) and, with
  ``test_identities``, a test set of people held out of it (``split_identities``, seeded by
  ``split_seed``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data import LFW, DataNotFoundError, ImageFolderFaces, RecFaces, SynthFaces
from ..data.decoded import DecodedFaces, PairFaces, decode_all
from ..data.noise import NoisyLabels
from ..eval import cross_age_pairs
from .batches import InMemoryFaces
from .config import ConfigError

__all__ = ["RunData", "build_data", "cross_age_test_pairs", "fold_pairs", "interleave_fold"]


@dataclass
class RunData:
    """``train``: the training set; ``val`` and ``test``: SynthFaces identities or LFW
    :class:`~frbook.data.decoded.PairFaces` (None where the data has none)."""

    train: object
    val: object = None
    test: object = None


_DECODED: dict = {}  # LFW decoded once per process: the runs of a comparison share it


def build_data(config: dict, device=None, progress: bool = False) -> RunData:
    """The :class:`RunData` of ``config["data"]`` (see the module docstring); SynthFaces render on
    ``device``, decoded LFW sits there."""
    d = dict(config["data"])
    if d["crop_fraction"] is not None:  # the readers take one crop: pixels or a fraction
        d["crop"] = float(d["crop_fraction"])
    device = torch.device(device or "cpu")
    try:
        if d["kind"] == "synth":
            data = _synth(d, device)
            if d["cross_age_gap"] is not None:  # fail now, not after training, if the ages do not allow them
                cross_age_test_pairs(data.test, config)
            return data
        if d["kind"] == "lfw":
            return _lfw(d, device, progress)
        reader = ImageFolderFaces if d["kind"] == "folder" else RecFaces
        train = reader(d["path"], channels=d["channels"], crop=d["crop"], size=d["size"])
        held_out = None
        if d["test_identities"]:  # identity-disjoint: the held-out people are never trained on
            train, held_out = train.split_identities(d["test_identities"], d["split_seed"])
    except DataNotFoundError as exc:
        raise ConfigError(f"data.path: {exc} (set it with --set data.path=/where/it/is)") from None
    return RunData(InMemoryFaces(train, progress) if d["cache"] else train, test=held_out)


def _synth(d: dict, device) -> RunData:
    common = dict(size=d["size"], channels=d["channels"], difficulty=d["difficulty"], seed=d["seed"], device=device,
                  age=d["age"])
    test = 100 if d["test_identities"] is None else int(d["test_identities"])
    edges = np.cumsum([0, d["identities"], d["val_identities"], test]).tolist()
    train = SynthFaces(torch.arange(edges[0], edges[1]), images_per_identity=d["images_per_identity"], **common)
    if d["label_noise"]:
        train = NoisyLabels(train, d["label_noise"], seed=d["seed"])
    held_out = [SynthFaces(torch.arange(edges[k], edges[k + 1]), images_per_identity=d["test_images_per_identity"],
                           **common) for k in (1, 2)]
    return RunData(train, *held_out)


def cross_age_test_pairs(test: SynthFaces, config: dict):
    """The ``eval.num_pairs`` test pairs (``i, j, issame``) of ``test``'s faces whose two faces differ in
    age by at least ``data.cross_age_gap``, genuine and impostor alike (:func:`frbook.eval.cross_age_pairs`)."""
    gap = config["data"]["cross_age_gap"]
    try:
        return cross_age_pairs(test.labels, test.ages(), gap, num_pairs=config["eval"]["num_pairs"], seed=0)
    except ValueError as exc:
        raise ConfigError(f"data.cross_age_gap {gap}: {exc} (data.test_images_per_identity, eval.num_pairs)") \
            from None


def _lfw(d: dict, device, progress: bool) -> RunData:
    key = (d["path"], d["channels"], d["crop"], d["size"])
    if key not in _DECODED:
        lfw = LFW(d["path"], channels=d["channels"], crop=d["crop"], size=d["size"])
        _DECODED[key] = lfw, decode_all(lfw, progress)
    lfw, images = _DECODED[key]
    if d["test_fold"] >= lfw.num_folds:
        raise ConfigError(f"data.test_fold {d['test_fold']}: this pairs.txt has folds 0..{lfw.num_folds - 1}")
    images = images.to(device)
    items = lfw.train_items(d["test_fold"])
    renumbered = torch.unique(lfw.labels[items], return_inverse=True)[1]  # 0 .. K-1, in LFW's order
    return RunData(DecodedFaces(images[items], renumbered),
                   fold_pairs(images, lfw, lfw.validation_fold(d["test_fold"])), fold_pairs(images, lfw, d["test_fold"]))


def interleave_fold(pairs) -> tuple[np.ndarray, int]:
    """(an order of one LFW fold's pairs, a number of sub-folds) such that each sub-fold holds
    as many matched as mismatched pairs; pairs.txt lists a fold's matched pairs first."""
    same, diff = np.flatnonzero(pairs.issame), np.flatnonzero(~pairs.issame)
    n_folds = next((k for k in (10, 5, 2) if len(same) == len(diff) and len(same) % k == 0), 1)
    order = [np.concatenate([s, d]) for s, d in zip(np.split(same, n_folds), np.split(diff, n_folds))]
    return np.concatenate(order), n_folds


def fold_pairs(images: torch.Tensor, lfw: LFW, fold: int) -> PairFaces:
    """One fold's 600 pairs, reordered so that each of the contiguous sub-folds over which
    verification's accuracy cross-validates its threshold holds 30 matched and 30 mismatched pairs."""
    pairs = lfw.pairs(fold)
    order, n_folds = interleave_fold(pairs)
    return PairFaces(images, (pairs.i[order], pairs.j[order], pairs.issame[order]), n_folds=n_folds)
