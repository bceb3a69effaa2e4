"""SmallCNN: the backbone of the CPU chapters, a plain VGG-style network that trains in minutes.

It is iResNet's layout shrunk to what a laptop trains in a minute: four stages that each halve the
resolution with a strided 3x3 convolution (conv -> BN -> ReLU, optionally a second stride-1 conv),
with ``width, 2 width, 4 width, 4 width`` channels, then the same kind of output layer as ArcFace's
iResNet (Deng et al. 2019): flatten -> linear -> BatchNorm1d. Flattening instead of global
pooling keeps where on the (aligned) face each feature fired, which is worth a lot for faces.

At 64x64 with ``width=32`` the last feature map is 4x4x128: the convolutions have 0.24M parameters
and the embedding layer 2048 * D more (0.37M in all at D=64).

Low-dimensional embeddings (D = 2 or 3, to draw features on the circle or the sphere) train well:
the final BatchNorm1d has no learned shift and scale (``affine=False``), so the batch of embeddings
is always centred on the origin with unit variance in every direction. A learned shift could move
the whole cloud away from the origin, and in two dimensions that squeezes all classes into a
narrow cone of angles; centring keeps the full circle available to the cosine losses, which ignore
the norm anyway. For the softmax chapter, where the *norm* of the features is the lesson (they
grow radially without normalisation), build the model with ``final_bn=False``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..defaults import DEFAULT_CHANNELS, DEFAULT_SIZE
from ._base import Backbone, as_size, init_weights

__all__ = ["SmallCNN"]


def conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True)]


class SmallCNN(Backbone):
    """A small, fast CNN for the CPU chapters: images in [0, 1] -> embeddings (B, D).

    Args:
        embedding_dim: D; anything from 2 up (2 and 3 are for plotting).
        in_channels: 1 for grey (the synthetic faces), 3 for RGB.
        input_size: H = W (or a pair (H, W)); 32, 64 and 112 are the sizes the book uses, any
            size from 16 works (the four stride-2 stages take 16 down to 1x1).
        width: channels of the first stage; the stages have (w, 2w, 4w, 4w).
        convs_per_stage: 1 (fast, the default) or 2 (a second stride-1 conv per stage: more
            capacity for harder data at about 3.5 times the compute).
        final_bn: end with a BatchNorm1d without affine parameters (see the module docstring).
        dropout: dropout probability on the flattened feature map.

    ``forward(x, return_feature_map=True)`` also returns the last stage's output,
    (B, 4 width, H/16, W/16) rounded up: 4x4 at 64x64. (Its memory is channels-last, see
    ``__init__``; that changes strides, not values or shape.)
    """

    def __init__(self, embedding_dim: int = 64, in_channels: int = DEFAULT_CHANNELS,
                 input_size: int | tuple[int, int] = DEFAULT_SIZE, width: int = 32,
                 convs_per_stage: int = 1, final_bn: bool = True, dropout: float = 0.0):
        super().__init__()
        if embedding_dim < 1 or in_channels < 1 or width < 1:
            raise ValueError(f"embedding_dim, in_channels and width must be positive, got "
                             f"{embedding_dim}, {in_channels} and {width}")
        if convs_per_stage not in (1, 2):
            raise ValueError(f"convs_per_stage must be 1 or 2, got {convs_per_stage}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.embedding_dim = embedding_dim
        self.in_channels = in_channels
        self.input_size = as_size(input_size)
        if min(self.input_size) < 16:
            raise ValueError(f"SmallCNN needs inputs of at least 16x16 (four stride-2 stages), "
                             f"got input_size={self.input_size}")
        self.width = width
        self.feature_channels = 4 * width

        layers, channels = [], in_channels
        for out_channels in (width, 2 * width, 4 * width, 4 * width):
            # Downsample first: the stride-2 conv is the cheap place to change resolution,
            # and the optional second conv then works at the lower resolution.
            layers += conv_bn_relu(channels, out_channels, stride=2)
            if convs_per_stage == 2:
                layers += conv_bn_relu(out_channels, out_channels)
            channels = out_channels
        self.body = nn.Sequential(*layers)

        h, w = self.feature_map_size()
        self.dropout = nn.Dropout(p=dropout)
        # No bias: the BatchNorm1d that follows removes it; without the BN keep it.
        self.fc = nn.Linear(self.feature_channels * h * w, embedding_dim, bias=not final_bn)
        self.features = nn.BatchNorm1d(embedding_dim, affine=False) if final_bn else nn.Identity()
        init_weights(self)
        # Store the conv weights channels-last (NHWC): oneDNN then runs the whole network in
        # NHWC, which makes a CPU training step about 30% faster here (measured, 2 cores). A
        # grey image is NCHW and NHWC at once, so the input needs no conversion; moving the
        # model with .to(device) keeps the layout.
        self.to(memory_format=torch.channels_last)

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature_map = self.body(x)
        x = torch.flatten(self.dropout(feature_map), 1)
        return self.features(self.fc(x)), feature_map
