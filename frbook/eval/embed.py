"""Embedding a data set with a trained backbone: the step between training and evaluation."""
from __future__ import annotations

import torch
from torch import nn

from ..utils import pick_device


@torch.no_grad()
def embed(model: nn.Module, data, batch_size: int = 512, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(embeddings, labels)`` of every item of ``data``, in order, on the CPU.

    ``data`` is a data set with a batch ``loader`` (:class:`frbook.data.SynthFaces`) or any
    iterable of ``(images, labels)`` batches. The model is put in evaluation mode.
    """
    device = pick_device(device)
    model.to(device).eval()
    batches = data.loader(batch_size, shuffle=False) if hasattr(data, "loader") else data
    outputs, labels = [], []
    for images, y in batches:
        outputs.append(model(images.to(device)).float().cpu())
        labels.append(torch.as_tensor(y).cpu())
    if not outputs:
        raise ValueError("nothing to embed: the data is empty")
    return torch.cat(outputs), torch.cat(labels)
