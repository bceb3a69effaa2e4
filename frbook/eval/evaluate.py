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
(pairs drawn from its labels). Images are converted to what the model was built for (its
``in_channels`` and ``input_size``) and each conversion is recorded in the report's notes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data import LFW, SynthFaces, VerificationBin
from ..data.images import resize, to_grey
from ..utils import pick_device
from .embed import embed_batch
from .verification import VerificationReport, verify

__all__ = ["evaluate", "synth_benchmark", "LFW_CROP", "SYNTH_FIRST_IDENTITY"]

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


def _resolve(target, model, root, crop):
    """(data set, pairs or None, title) for a target given by name, path or object."""
    channels, size = _model_input(model)
    if isinstance(target, str) and target in ("lfw", "synth"):
        if target == "synth":
            target = synth_benchmark(model)
        else:
            target = LFW(root, channels=channels or 3, crop=crop, size=size)
    elif isinstance(target, (str, Path)):
        path = Path(target).expanduser()
        if path.suffix == ".bin":
            target = VerificationBin(path, channels=channels or 3, size=size)
        elif path.is_dir() and (path / "pairs.txt").is_file():
            target = LFW(path, channels=channels or 3, crop=crop, size=size)
        else:
            raise ValueError(f"unknown target {str(target)!r}: give 'lfw', 'synth', a verification "
                             ".bin file, or a folder holding pairs.txt and its images")
    if isinstance(target, LFW):
        pairs = target.pairs()
        return target, pairs, f"{target.root.name} ({len(pairs.i)} pairs of {target.pairs_file.name})"
    if isinstance(target, VerificationBin):
        return target, target.pairs(), f"{target.path.name} ({len(target.issame)} pairs)"
    if isinstance(target, SynthFaces):
        return target, None, (f"SynthFaces ({target.num_classes} identities x "
                              f"{target.images_per_identity}, difficulty {target.difficulty})")
    raise TypeError(f"cannot evaluate on a {type(target).__name__}; give 'lfw', 'synth', a .bin "
                    "path, a folder with pairs.txt, or an LFW / VerificationBin / SynthFaces")


def _fit_to_model(images: torch.Tensor, model, notes: list) -> torch.Tensor:
    """Convert a batch to the model's channels and input size, noting each change once."""
    channels, size = _model_input(model)
    if channels is not None and images.shape[1] != channels:
        note = f"images converted from {images.shape[1]} to {channels} channels"
        images = images.expand(-1, 3, -1, -1) if channels == 3 else to_grey(images)
        if note not in notes:
            notes.append(note)
    if size is not None and tuple(images.shape[-2:]) != size:
        note = f"images resized from {images.shape[-2]}x{images.shape[-1]} to {size[0]}x{size[1]}"
        images = resize(images, size)
        if note not in notes:
            notes.append(note)
    return images


@torch.no_grad()
def _embed_items(model, dataset, items, batch_size, device, flip, num_workers, notes):
    batches = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, items.tolist()),
                                          batch_size=batch_size, shuffle=False,
                                          num_workers=num_workers)
    out = []
    for images, _ in batches:
        images = _fit_to_model(images.to(device), model, notes)
        out.append(embed_batch(model, images, flip=flip).cpu())
    return torch.cat(out)


def evaluate(model, target, *, root=None, crop=LFW_CROP, flip: bool = True, n_folds: int = 10,
             fars=(1e-2, 1e-3), batch_size: int = 256, device=None, num_workers: int = 0,
             num_pairs: int | None = None, seed: int = 0) -> VerificationReport:
    """Evaluate ``model`` on the verification benchmark ``target`` (see the module).

    Args:
        root: where to find LFW for ``target="lfw"`` (default: :func:`frbook.data.find_dataset`).
        crop: centre crop of LFW-format images before resizing to the model's input.
        flip: flip-sum embeddings (InsightFace's protocol); ``False`` embeds each image once.
        n_folds, fars: passed to :func:`frbook.eval.verify`.
        num_pairs, seed: how many pairs to draw for a SynthFaces target (default: all genuine
            pairs and as many impostors).
        num_workers: processes decoding images in parallel.
    """
    device = pick_device(device)
    model.to(device).eval()
    dataset, pairs, title = _resolve(target, model, root, crop)
    notes: list[str] = []
    if pairs is None:  # labelled faces: embed them all, draw pairs from the labels
        items = np.arange(len(dataset))
    else:
        items = np.unique(np.concatenate([pairs.i, pairs.j]))
    embeddings = _embed_items(model, dataset, items, batch_size, device, flip, num_workers, notes)
    title += ", flip-sum embeddings" if flip else ", single-image embeddings"
    if pairs is None:
        report = verify(embeddings, labels=dataset.labels[items], n_folds=n_folds, fars=fars,
                        seed=seed, num_pairs=num_pairs, title=title)
    else:  # pair indices refer to the data set; map them to rows of `embeddings`
        rows = (np.searchsorted(items, pairs.i), np.searchsorted(items, pairs.j), pairs.issame)
        report = verify(embeddings, pairs=rows, n_folds=n_folds, fars=fars, title=title)
    report.notes.extend(notes)
    return report
