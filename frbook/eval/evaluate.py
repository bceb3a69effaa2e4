"""One call from a trained model to the numbers a paper prints: :func:`evaluate`.

It runs InsightFace's verification protocol end to end on a benchmark:

1. embed every image of the benchmark's pairs with the *flip-sum*: ``model(x) + model(mirror x)``
   (:func:`frbook.eval.embed.embed_batch`);
2. L2-normalise, score each pair by the squared distance of the unit vectors;
3. ten contiguous folds in file order, the best threshold of the grid 0..4 step 0.01 learned on
   nine folds and applied to the tenth; mean and population std (ddof=0) of the ten accuracies;
4. plus the ROC, AUC, EER and TAR@FAR (both readings), all in one
   :class:`~frbook.eval.verification.VerificationReport` that prints a table and draws its plots.

A benchmark (``target``) is any of: ``"lfw"`` or an :class:`~frbook.data.LFW` (the 6,000 pairs
of ``pairs.txt``), a folder in LFW's format (images + ``pairs.txt``), a verification ``.bin``
path or :class:`~frbook.data.VerificationBin`, ``"synth"`` or a :class:`~frbook.data.SynthFaces`
(pairs drawn from its labels), or an image folder with one sub-folder per identity (no
``pairs.txt``): pairs drawn from the labels of all its identities, or, with ``test_identities``,
of the identities held out by :meth:`~frbook.data.EncodedFaces.split_identities` (the same ones a
training run with ``data.test_identities`` and ``data.split_seed`` did not train on); any labelled
frbook face set (an :class:`~frbook.data.ImageFolderFaces`, a split of one) is taken as it is. Images are converted to what the model was built for (its
``in_channels`` and ``input_size``) and each conversion is recorded in the report's notes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..data import LFW, ImageFolderFaces, SynthFaces, VerificationBin
from ..data.encoded import EncodedFaces
from ..data.images import DEFAULT_CHANNELS, resize, to_grey
from ..utils import pick_device
from .embed import embed_batch
from .verification import VerificationReport, verify

__all__ = ["evaluate", "auto_crop", "synth_benchmark", "LFW_CROP", "SYNTH_FIRST_IDENTITY"]

#: LFW's faces fill the middle 110..130 pixels of the 250x250 frame: crop a little more.
LFW_CROP = 128
#: ``"synth"`` evaluates on identities from this id on, far from the ids any config trains on.
SYNTH_FIRST_IDENTITY = 1_000_000


def synth_benchmark(model=None, identities: int = 100, images_per_identity: int = 10,
                    difficulty: float = 0.5, seed: int = 0) -> SynthFaces:
    """The ``"synth"`` target: held-out SynthFaces identities sized for ``model``."""
    channels, size = _model_input(model)
    ids = torch.arange(SYNTH_FIRST_IDENTITY, SYNTH_FIRST_IDENTITY + identities)
    return SynthFaces(ids, images_per_identity=images_per_identity, size=(size or (64, 64))[0],
                      channels=channels or 1, difficulty=difficulty, seed=seed)


def _model_input(model) -> tuple[int | None, tuple[int, int] | None]:
    channels = getattr(model, "in_channels", None)
    size = getattr(model, "input_size", None)
    return channels, (tuple(size) if size is not None else None)


def auto_crop(target, crop="auto"):
    """The crop ``evaluate`` applies: ``crop`` itself, or for ``"auto"`` LFW's 128 pixels when
    the target is ``"lfw"`` (the face fills the middle of LFW's 250x250 frames), else none."""
    if isinstance(crop, str) and crop == "auto":
        return LFW_CROP if isinstance(target, str) and target == "lfw" else None
    return crop


def _name(dataset) -> str:
    root = getattr(dataset, "root", None)
    return Path(root).name if root is not None else type(dataset).__name__


def _resolve(target, model, root, crop, test_identities=None, split_seed=0):
    """(data set, pairs or None, title) for a target given by name, path or object."""
    channels, size = _model_input(model)
    channels = channels or DEFAULT_CHANNELS
    if isinstance(target, str) and target in ("lfw", "synth"):
        if target == "synth":
            target = synth_benchmark(model)
        else:
            target = LFW(root, channels=channels, crop=crop, size=size)
    elif isinstance(target, (str, Path)):
        path = Path(target).expanduser()
        if path.suffix == ".bin":
            target = VerificationBin(path, channels=channels, size=size)
        elif path.is_dir() and (path / "pairs.txt").is_file() and not test_identities:
            target = LFW(path, channels=channels, crop=crop, size=size)
        elif path.is_dir():
            target = ImageFolderFaces(path, channels=channels, crop=crop, size=size)
        else:
            raise ValueError(f"unknown target {str(target)!r}: give 'lfw', 'synth', a verification "
                             ".bin file, a folder holding pairs.txt and its images, or an image "
                             "folder with one sub-folder per identity")
    if test_identities and isinstance(target, EncodedFaces) and not isinstance(target, (LFW, VerificationBin)):
        name, everyone = _name(target), target.num_classes
        target = target.split_identities(test_identities, split_seed)[1]
        return target, None, (f"{name}: {target.num_classes} of {everyone} identities held out "
                              f"(split seed {split_seed}), {len(target)} images")
    if isinstance(target, LFW):
        pairs = target.pairs()
        return target, pairs, f"{target.root.name} ({len(pairs.i)} pairs of {target.pairs_file.name})"
    if isinstance(target, VerificationBin):
        return target, target.pairs(), f"{target.path.name} ({len(target.issame)} pairs)"
    if isinstance(target, SynthFaces):
        return target, None, (f"SynthFaces ({target.num_classes} identities x "
                              f"{target.images_per_identity}, difficulty {target.difficulty})")
    if isinstance(target, EncodedFaces):
        return target, None, f"{_name(target)}: {target.num_classes} identities, {len(target)} images"
    raise TypeError(f"cannot evaluate on a {type(target).__name__}; give 'lfw', 'synth', a .bin "
                    "path, a folder with pairs.txt, an image folder, or an LFW / VerificationBin / "
                    "SynthFaces / labelled frbook face set")


def _fit_to_model(images: torch.Tensor, model, notes: list) -> torch.Tensor:
    """Convert a batch to the model's channels and input size, noting each change once."""
    channels, size = _model_input(model)
    if channels is not None and images.shape[1] != channels:
        note = f"images converted from {images.shape[1]} to {channels} channels"
        images = images.expand(-1, 3, -1, -1) if channels == 3 else to_grey(images)
        if note not in notes:
            notes.append(note)
    if size is not None and tuple(images.shape[-2:]) != size:
        note = (f"images resized from {images.shape[-2]}x{images.shape[-1]} to {size[0]}x{size[1]}, "
                "the model's input_size")
        images = resize(images, size)
        if note not in notes:
            notes.append(note)
    return images


@torch.no_grad()
def _embed_items(model, dataset, items, batch_size, device, flip, num_workers, notes, progress=False):
    batches = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, items.tolist()),
                                          batch_size=batch_size, shuffle=False,
                                          num_workers=num_workers)
    out = []
    for images, _ in tqdm(batches, desc=f"embedding {len(items)} images", unit="batch",
                          disable=not progress, leave=False):
        images = _fit_to_model(images.to(device), model, notes)
        out.append(embed_batch(model, images, flip=flip).cpu())
    return torch.cat(out)


def _distinct(dataset, pairs):
    """(the distinct items to embed, pairs as rows of them). A ``.bin`` stores an image once per
    pair it is in (6,000 pairs may hold 12,000 copies of 640 images): identical bytes are one
    item, embedded once."""
    i, j = pairs.i, pairs.j
    if isinstance(dataset, VerificationBin):
        first: dict[bytes, int] = {}
        canonical = np.array([first.setdefault(dataset.raw(k), k) for k in range(len(dataset))], np.int64)
        i, j = canonical[i], canonical[j]
    items = np.unique(np.concatenate([i, j]))
    return items, (np.searchsorted(items, i), np.searchsorted(items, j), pairs.issame)


def _conversion_notes(dataset, before: dict, n: int, num_workers: int, first_item: int) -> list[str]:
    """What the reader changed (channels, crops, resizes), as report notes."""
    conversions = getattr(dataset, "conversions", None)
    if conversions is None:
        return []
    seen = {k: v - before.get(k, 0) for k, v in conversions.items() if v - before.get(k, 0) > 0}
    if not seen and num_workers:  # decoded in worker processes: look at one image here
        dataset.image_uint8(int(first_item))
        seen = {k: v - before.get(k, 0) for k, v in conversions.items() if v - before.get(k, 0) > 0}
        return [f"images {what} (seen on the first; decoding ran in worker processes)" for what in seen]
    return [f"{count} of {n} images {what}" for what, count in seen.items()]


def evaluate(model, target, *, root=None, crop="auto", flip: bool = True, n_folds: int | None = None,
             fars=(1e-2, 1e-3), batch_size: int = 256, device=None, num_workers: int = 0,
             num_pairs: int | None = None, seed: int = 0, test_identities=None,
             split_seed: int = 0, progress: bool = False) -> VerificationReport:
    """Evaluate ``model`` on the verification benchmark ``target`` (see the module).

    Args:
        root: where to find LFW for ``target="lfw"`` (default: :func:`frbook.data.find_dataset`).
        crop: centre crop of the images before resizing to the model's input: pixels (int or
            (H, W)) or a fraction of each image's shorter side; ``"auto"`` (default): LFW's
            :data:`LFW_CROP` for ``target="lfw"``, none for any other target.
        flip: flip-sum embeddings (InsightFace's protocol); ``False`` embeds each image once.
        n_folds, fars: passed to :func:`frbook.eval.verify`; ``n_folds`` defaults to the
            benchmark's own: the folds of an LFW-format ``pairs.txt``, else 10.
        num_pairs, seed: how many pairs to draw from a labelled target (SynthFaces, an image
            folder; default: all genuine pairs and as many impostors), and their seed.
        test_identities, split_seed: an image folder target: evaluate only on the identities
            that :meth:`~frbook.data.EncodedFaces.split_identities` holds out (a fraction in
            (0, 1) or a count), the split drawn with ``split_seed``.
        num_workers: processes decoding images in parallel.
        progress: a progress bar over the embedding.

    Each distinct image is embedded once (pairs share images; a ``.bin`` repeats them). The
    report's notes say what was changed to fit the model: channels converted, images cropped
    or resized (by the reader or to the model's ``input_size``), with counts.
    """
    device = pick_device(device)
    model.to(device).eval()
    crop = auto_crop(target, crop)
    dataset, pairs, title = _resolve(target, model, root, crop, test_identities, split_seed)
    notes: list[str] = []
    if pairs is None:  # labelled faces: embed them all, draw pairs from the labels
        items, rows = np.arange(len(dataset)), None
    else:  # pair indices refer to the data set; `rows` refer to the embeddings of `items`
        items, rows = _distinct(dataset, pairs)
    if n_folds is None:
        n_folds = dataset.num_folds if isinstance(dataset, LFW) else 10
    before = dict(getattr(dataset, "conversions", {}))
    embeddings = _embed_items(model, dataset, items, batch_size, device, flip, num_workers, notes, progress)
    notes = _conversion_notes(dataset, before, len(items), num_workers, items[0]) + notes
    title += ", flip-sum embeddings" if flip else ", single-image embeddings"
    if pairs is None:
        report = verify(embeddings, labels=dataset.labels[items], n_folds=n_folds, fars=fars,
                        seed=seed, num_pairs=num_pairs, title=title)
    else:
        report = verify(embeddings, pairs=rows, n_folds=n_folds, fars=fars, title=title)
    report.notes.extend(notes)
    return report
