"""Pixels: the simplest face recognizer, the image itself as the embedding.

Papers quote it as the floor every learned model must clear ("raw pixels" or "pixel baseline"):
the embedding of a face is its grey values, flattened and centred on their mean, so the cosine
of two embeddings is the correlation of the two images. It has no trainable parameters, so it
needs no training and no checkpoint (``python -m frbook eval --model pixels ...``).

    >>> from frbook import models
    >>> net = models.get("pixels", input_size=32)
    >>> net.embedding_dim, models.num_parameters(net)
    (1024, 0)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._base import Backbone, as_size

__all__ = ["Pixels"]


class Pixels(Backbone):
    """Images in [0, 1] -> their pixels, flattened and mean-centred per image: (B, C * h * w).

    Args:
        input_size: H = W (or (H, W)) of the images it takes; evaluation resizes images to it
            (and its report says so). 32, not the library's 64 (:mod:`frbook.defaults`): the
            book's recorded LFW baseline (chapter 5, ``book/results/lfw_eval/pixels.json``) is at
            32x32, and a default change would change that number; pass ``input_size=64`` to match
            a 64-pixel model.
        in_channels: 1 grey (the default; the baseline is usually run on grey images) or 3.
        pool: optionally average the image down to ``pool`` x ``pool`` (or (h, w)) before
            flattening (area interpolation: each output pixel is the mean of a block), a
            smaller embedding that is less sensitive to small shifts. ``None`` keeps every pixel.

    Subtracting each image's mean makes the cosine of two embeddings their Pearson correlation,
    insensitive to brightness offsets and (since cosine ignores the norm) to contrast. A uniform
    image has a zero embedding, whose cosine is undefined; faces are never uniform.
    ``feature_map`` (``return_feature_map=True``) is the pooled image, before centring.
    """

    downsampling_steps = 0

    def __init__(self, input_size: int | tuple[int, int] = 32, in_channels: int = 1,
                 pool: int | tuple[int, int] | None = None):
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 (grey) or 3 (colour), got {in_channels}")
        self.in_channels = int(in_channels)
        self.input_size = as_size(input_size)
        self.pool = None if pool is None else as_size(pool)
        if self.pool is not None and (self.pool[0] > self.input_size[0]
                                      or self.pool[1] > self.input_size[1]):
            raise ValueError(f"pool {self.pool} must not exceed input_size {self.input_size}")
        h, w = self.pool or self.input_size
        self.feature_channels = self.in_channels
        self.embedding_dim = self.in_channels * h * w

    def feature_map_size(self, input_size=None) -> tuple[int, int]:
        return self.pool or as_size(self.input_size if input_size is None else input_size)

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.pool is not None and tuple(x.shape[-2:]) != self.pool:
            x = F.interpolate(x, size=self.pool, mode="area")
        flat = x.flatten(1)
        return flat - flat.mean(dim=1, keepdim=True), x

    def extra_repr(self) -> str:
        return super().extra_repr() + (f", pool={self.pool}" if self.pool else "")
