"""MobileFaceNet: a face backbone of about a million parameters for phones.

Chen, Liu, Gao and Han, "MobileFaceNets: Efficient CNNs for Accurate Real-Time Face Verification
on Mobile Devices", CCBR 2018. It is MobileNetV2 (inverted residual bottlenecks: expand with a
1x1 convolution, filter with a depthwise 3x3, project back with a linear 1x1) adapted to faces:

* smaller expansion factors (2 and 4 instead of 6) and PReLU instead of ReLU6;
* a fast downsampling stem (a strided 3x3 convolution and a depthwise 3x3) so the expensive
  stages run at 28x28 and below;
* a *global depthwise convolution* (GDC) instead of global average pooling: a 7x7 depthwise
  filter with no activation that learns how much each position of the 7x7 map matters. Global
  average pooling treats the corner of the image like the centre of the face; the paper shows
  the learned weighting is clearly better, at almost no cost (512 * 49 weights);
* a linear 1x1 convolution to the embedding, followed by batch norm.

Table 1 of the paper, for a 112x112 input:

    conv3x3, 64, stride 2                          -> 56x56x64
    depthwise conv3x3, 64                          -> 56x56x64
    bottleneck t=2, c=64,  n=5, s=2                -> 28x28x64
    bottleneck t=4, c=128, n=1, s=2                -> 14x14x128
    bottleneck t=2, c=128, n=6, s=1                -> 14x14x128
    bottleneck t=4, c=128, n=1, s=2                -> 7x7x128
    bottleneck t=2, c=128, n=2, s=1                -> 7x7x128
    conv1x1, 512                                   -> 7x7x512   (the feature map returned)
    linear GDConv7x7, 512                          -> 1x1x512
    linear conv1x1, D (128 in the paper)           -> D
"""

from __future__ import annotations

import torch
from torch import nn

from ._base import Backbone, as_size, init_weights

__all__ = ["MobileFaceNet", "Bottleneck"]

# (expansion t, output channels c, repeats n, stride of the first repeat s), from Table 1.
BOTTLENECKS = ((2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1))


def conv_bn(in_channels: int, out_channels: int, kernel: int | tuple[int, int] = 1,
            stride: int = 1, groups: int = 1, activation: bool = True) -> nn.Sequential:
    """conv -> BN (-> PReLU). ``activation=False`` gives the paper's "linear" layers."""
    if isinstance(kernel, int):
        kernel = (kernel, kernel)
    # 3x3 convolutions pad by 1 (so stride 2 gives ceil(n / 2)); 1x1 and the GDC do not pad.
    padding = 1 if kernel == (3, 3) else 0
    layers = [nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding,
                        groups=groups, bias=False),
              nn.BatchNorm2d(out_channels)]
    if activation:
        layers.append(nn.PReLU(out_channels))
    return nn.Sequential(*layers)


class Bottleneck(nn.Module):
    """MobileNetV2's inverted residual with PReLU: 1x1 expand -> 3x3 depthwise -> 1x1 linear.

    The projection has no activation: it maps to a low-dimensional space, where a non-linearity
    would destroy information (the MobileNetV2 argument). The residual is used when input and
    output have the same shape.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int):
        super().__init__()
        hidden = in_channels * expansion
        self.use_residual = stride == 1 and in_channels == out_channels
        self.block = nn.Sequential(
            conv_bn(in_channels, hidden, 1),
            conv_bn(hidden, hidden, 3, stride=stride, groups=hidden),
            conv_bn(hidden, out_channels, 1, activation=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.use_residual else out


class MobileFaceNet(Backbone):
    """MobileFaceNet (Chen et al. 2018): images in [0, 1] -> embeddings (B, D).

    Args:
        embedding_dim: D (128 in the paper).
        in_channels: 3 for RGB, 1 for grey.
        input_size: H = W (or a pair (H, W)). At 112 the last map is 7x7 and the GDC is the
            paper's 7x7; for other sizes the GDC kernel is the size of the last map, so it still
            reduces the map to one vector with one learned weight per position and channel.

    ``forward(x, return_feature_map=True)`` also returns the 7x7x512 map before the GDC.
    1,003,136 parameters at D=128 (976,000 in the convolutions and the linear layer, the rest in
    batch norms and PReLUs); the paper reports 0.99M.
    """

    def __init__(self, embedding_dim: int = 128, in_channels: int = 3,
                 input_size: int | tuple[int, int] = 112):
        super().__init__()
        if embedding_dim < 1 or in_channels < 1:
            raise ValueError(f"embedding_dim and in_channels must be positive, got "
                             f"{embedding_dim} and {in_channels}")
        self.embedding_dim = embedding_dim
        self.in_channels = in_channels
        self.input_size = as_size(input_size)
        self.feature_channels = 512

        self.stem = nn.Sequential(
            conv_bn(in_channels, 64, 3, stride=2),
            conv_bn(64, 64, 3, groups=64),  # depthwise
        )
        blocks, channels = [], 64
        for expansion, out_channels, repeats, stride in BOTTLENECKS:
            for i in range(repeats):
                blocks.append(Bottleneck(channels, out_channels, stride if i == 0 else 1,
                                         expansion))
                channels = out_channels
        self.bottlenecks = nn.Sequential(*blocks)
        self.conv_expand = conv_bn(channels, self.feature_channels, 1)
        # Global depthwise convolution: a kernel as large as the map, one filter per channel,
        # linear (no PReLU), so the output is a position-weighted sum of each channel.
        self.gdc = conv_bn(self.feature_channels, self.feature_channels, self.feature_map_size(),
                           groups=self.feature_channels, activation=False)
        # The paper's final linear 1x1 convolution acts on a 1x1 map, i.e. it is a linear layer.
        self.linear = nn.Linear(self.feature_channels, embedding_dim, bias=False)
        self.features = nn.BatchNorm1d(embedding_dim)
        init_weights(self)

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature_map = self.conv_expand(self.bottlenecks(self.stem(x)))
        x = torch.flatten(self.gdc(feature_map), 1)
        return self.features(self.linear(x)), feature_map
