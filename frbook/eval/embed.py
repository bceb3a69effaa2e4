"""Embedding a data set with a trained backbone: the step between training and evaluation."""
from __future__ import annotations

import torch
from torch import nn

from ..utils import pick_device


def embed_batch(model: nn.Module, images: torch.Tensor, flip: bool = False) -> torch.Tensor:
    """The model's embeddings of one batch; with ``flip=True`` the *flip-sum*
    ``model(x) + model(mirror(x))``, the horizontal mirror image of each face added in.

    The flip-sum is InsightFace's test-time augmentation for its verification numbers: a face
    and its mirror are the same person, so adding the two embeddings cancels some of the
    left-right noise. The sum is not normalised here; verification normalises it (the direction
    is what counts), as InsightFace does after summing.
    """
    out = model(images).float()
    if flip:
        out = out + model(torch.flip(images, dims=[-1])).float()
    return out


@torch.no_grad()
def embed(model: nn.Module, data, batch_size: int = 512, device=None,
          flip: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(embeddings, labels)`` of every item of ``data``, in order, on the CPU.

    ``data`` is a data set with a batch ``loader`` (:class:`frbook.data.SynthFaces`, every real
    face set of :mod:`frbook.data`) or any iterable of ``(images, labels)`` batches. The model is
    put in evaluation mode. ``flip=True`` returns flip-sum embeddings (:func:`embed_batch`).
    """
    device = pick_device(device)
    model.to(device).eval()
    batches = data.loader(batch_size, shuffle=False) if hasattr(data, "loader") else data
    outputs, labels = [], []
    for images, y in batches:
        outputs.append(embed_batch(model, images.to(device), flip=flip).cpu())
        labels.append(torch.as_tensor(y).cpu())
    if not outputs:
        raise ValueError("nothing to embed: the data is empty")
    return torch.cat(outputs), torch.cat(labels)
