"""What every frbook backbone shares: the input contract and the feature-map arithmetic.

Every backbone takes images as floats in [0, 1] with shape (B, C, H, W) and normalises them
itself, so that data stays in [0, 1] everywhere else in the library (loaders, plots, augmentation)
and no chapter has to remember a mean and a standard deviation. Every backbone also has exactly
four downsampling steps, each a 3x3 convolution with stride 2 and padding 1 (or a 1x1 shortcut
with stride 2, which gives the same size), so one formula gives the size of the last feature map.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Backbone", "as_size", "downsampled_size", "init_weights"]


def as_size(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``112`` -> ``(112, 112)``; ``(112, 96)`` stays ``(112, 96)``; anything else is an error."""
    if isinstance(size, int):
        size = (size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"input_size must be a positive int or a pair (H, W), got {size!r}")
    return size


def downsampled_size(size: int | tuple[int, int], steps: int) -> tuple[int, int]:
    """Spatial size after ``steps`` convolutions with kernel 3, stride 2, padding 1.

    Each one maps n to floor((n + 2 - 3) / 2) + 1 = ceil(n / 2): 112 -> 56 -> 28 -> 14 -> 7.
    """
    h, w = as_size(size)
    for _ in range(steps):
        h, w = (h + 1) // 2, (w + 1) // 2
    return h, w


def init_weights(module: nn.Module) -> None:
    """Kaiming-normal convolutions, unit/zero batch norms, small linear layers.

    ``mode="fan_in"`` rather than the usual ``fan_out``: for a depthwise convolution (weight shape
    (C, 1, k, k)) PyTorch computes fan_out as C * k * k although each output sees only k * k
    inputs, which would shrink MobileFaceNet's depthwise filters by sqrt(C); fan_in is k * k there
    and correct everywhere. A batch norm follows every convolution, so the exact gain matters less
    than getting the order of magnitude right.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            # The embedding layer feeds a BatchNorm1d, which removes its scale; a small normal
            # init keeps the first steps' pre-BN activations in a sensible range.
            nn.init.normal_(m.weight, std=0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class Backbone(nn.Module):
    """Base class: input checks, input normalisation and ``feature_map_size``.

    Subclasses set ``embedding_dim``, ``feature_channels``, ``in_channels`` and ``input_size``
    and implement ``_forward(x) -> (embeddings, feature_map)`` on normalised input.
    """

    #: number of stride-2 steps between the input and the last feature map
    downsampling_steps = 4

    embedding_dim: int
    feature_channels: int
    in_channels: int
    input_size: tuple[int, int]

    def feature_map_size(self, input_size: int | tuple[int, int] | None = None) -> tuple[int, int]:
        """(H', W') of the last feature map for an input of ``input_size`` (default: the model's)."""
        return downsampled_size(self.input_size if input_size is None else input_size,
                                self.downsampling_steps)

    @staticmethod
    def normalise(x: torch.Tensor) -> torch.Tensor:
        """[0, 1] -> [-1, 1], the range InsightFace's models are trained on."""
        return (x - 0.5) / 0.5

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} expects images of shape (B, {self.in_channels}, H, W), "
                f"got {tuple(x.shape)}; build the model with in_channels={x.shape[1] if x.dim() == 4 else '?'}"
                " or convert the images (grey <-> RGB)")
        if tuple(x.shape[-2:]) != self.input_size:
            raise ValueError(
                f"{type(self).__name__} was built for {self.input_size[0]}x{self.input_size[1]} "
                f"inputs (its embedding layer is sized from the feature map), got "
                f"{x.shape[-2]}x{x.shape[-1]}; build it with input_size={tuple(x.shape[-2:])} "
                "or resize the images")

    def forward(self, x: torch.Tensor, return_feature_map: bool = False):
        """Embeddings (B, D) of images in [0, 1]; with ``return_feature_map=True`` also the last
        convolutional feature map (B, feature_channels, H', W'), before flattening or pooling."""
        self._check_input(x)
        embeddings, feature_map = self._forward(self.normalise(x))
        return (embeddings, feature_map) if return_feature_map else embeddings

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return (f"embedding_dim={self.embedding_dim}, in_channels={self.in_channels}, "
                f"input_size={self.input_size}")
