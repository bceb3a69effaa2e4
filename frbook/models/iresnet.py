"""iResNet: the improved ResNet that ArcFace made the field's standard face backbone.

ArcFace (Deng, Guo, Xue and Zafeiriou, "ArcFace: Additive Angular Margin Loss for Deep Face
Recognition", CVPR 2019) trains ResNets changed for 112x112 faces:

* the stem is a 3x3 convolution with stride 1 and no max pooling, so the four stages see
  56, 28, 14 and 7 pixels: a face is small, and throwing away resolution early costs accuracy;
* the residual unit ("IBasicBlock") is BN -> conv3x3 -> BN -> PReLU -> conv3x3 (stride s) -> BN,
  which the paper found better than the original post-activation unit;
* the output layer ("option E") is BN -> dropout -> flatten -> fully connected -> BN. Flattening
  the 7x7x512 map instead of global average pooling keeps *where* on the face a feature fired,
  which matters for aligned faces.

The depths 18, 34, 50 and 100 count 2 * (number of blocks) + 2 layers; they have ~24.0M, 34.1M,
43.6M and 65.2M parameters with a 512-d embedding at 112x112 (the InsightFace numbers).
"""

from __future__ import annotations

import torch
from torch import nn

from ._base import Backbone, as_size, init_weights

__all__ = ["IBasicBlock", "IResNet", "iresnet18", "iresnet34", "iresnet50", "iresnet100"]

# Blocks per stage for each depth.
IRESNET_LAYERS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 14, 3), 100: (3, 13, 30, 3)}
STAGE_CHANNELS = (64, 128, 256, 512)


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    # No bias: a batch norm follows every convolution and would cancel it.
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """The improved residual unit: BN -> conv3x3 -> BN -> PReLU -> conv3x3 (stride) -> BN.

    The block starts with a BN and ends with a BN but has no activation after the addition, so
    the identity path stays linear from the stem to the output layer. The stride sits in the
    second convolution, so the first one still sees the full-resolution input.
    """

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels, eps=1e-5)
        self.conv1 = conv3x3(in_channels, channels)
        self.bn2 = nn.BatchNorm2d(channels, eps=1e-5)
        self.prelu = nn.PReLU(channels)
        self.conv2 = conv3x3(channels, channels, stride)
        self.bn3 = nn.BatchNorm2d(channels, eps=1e-5)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            # The shortcut has to change shape too: a strided 1x1 projection, as in ResNet.
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(channels, eps=1e-5),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.bn1(x)
        out = self.conv1(out)
        out = self.bn2(out)
        out = self.prelu(out)
        out = self.conv2(out)
        out = self.bn3(out)
        return out + shortcut


class IResNet(Backbone):
    """iResNet backbone (Deng et al. 2019): images in [0, 1] -> embeddings (B, D).

    Args:
        layers: blocks in each of the four stages, e.g. ``(3, 4, 14, 3)`` for iResNet-50.
        embedding_dim: D, the size of the embedding (512 in ArcFace).
        in_channels: 3 for RGB, 1 for grey.
        input_size: H = W (or a pair (H, W)) of the input; 112 gives the 7x7 map of the paper.
            The fully connected layer is sized from the feature map, so other sizes work, but a
            model accepts only the size it was built for.
        dropout: dropout probability on the flattened feature map (InsightFace uses 0 on large
            datasets and 0.4 on small ones such as CASIA-WebFace).
        fp16: run the convolutional trunk under float16 autocast on CUDA, as InsightFace does; the
            fully connected layer and the final BN stay in float32 for a stable embedding. No
            effect on CPU (the trainer's autocast handles mixed precision there).

    ``forward(x, return_feature_map=True)`` also returns the map after the output BN2d, which is
    what gets flattened: (B, 512, 7, 7) at 112x112.
    """

    def __init__(self, layers=(3, 4, 14, 3), embedding_dim: int = 512, in_channels: int = 3,
                 input_size: int | tuple[int, int] = 112, dropout: float = 0.0,
                 fp16: bool = False):
        super().__init__()
        if len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"layers must be four positive block counts, got {layers!r}")
        if embedding_dim < 1 or in_channels < 1:
            raise ValueError(f"embedding_dim and in_channels must be positive, got "
                             f"{embedding_dim} and {in_channels}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.layers = tuple(layers)
        self.embedding_dim = embedding_dim
        self.in_channels = in_channels
        self.input_size = as_size(input_size)
        self.feature_channels = STAGE_CHANNELS[-1]
        self.fp16 = fp16

        self.conv1 = conv3x3(in_channels, 64)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = nn.PReLU(64)
        stages, channels_in = [], 64
        for channels, blocks in zip(STAGE_CHANNELS, layers):
            # Each stage halves the resolution in its first block.
            stage = [IBasicBlock(channels_in, channels, stride=2)]
            stage += [IBasicBlock(channels, channels) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*stage))
            channels_in = channels
        self.layer1, self.layer2, self.layer3, self.layer4 = stages

        h, w = self.feature_map_size()
        self.bn2 = nn.BatchNorm2d(self.feature_channels, eps=1e-5)
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(self.feature_channels * h * w, embedding_dim)
        self.features = nn.BatchNorm1d(embedding_dim, eps=1e-5)
        init_weights(self)
        # As in the reference: the embedding BN only centres and scales to unit variance, it
        # learns a shift but not a per-dimension scale (a scale would only re-weight dimensions
        # that the cosine then compares, adding nothing but a way to drift).
        nn.init.ones_(self.features.weight)
        self.features.weight.requires_grad_(False)

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(device_type="cuda", dtype=torch.float16,
                            enabled=self.fp16 and x.is_cuda):
            x = self.prelu(self.bn1(self.conv1(x)))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            feature_map = self.bn2(x)
            x = torch.flatten(self.dropout(feature_map), 1)
        x = self.features(self.fc(x.float()))
        return x, feature_map.float()


def _make(depth: int, embedding_dim: int, in_channels: int, input_size, dropout: float,
          fp16: bool) -> IResNet:
    return IResNet(IRESNET_LAYERS[depth], embedding_dim=embedding_dim, in_channels=in_channels,
                   input_size=input_size, dropout=dropout, fp16=fp16)


def iresnet18(embedding_dim: int = 512, in_channels: int = 3, input_size=112,
              dropout: float = 0.0, fp16: bool = False) -> IResNet:
    """iResNet-18: blocks (2, 2, 2, 2), ~24.0M parameters at D=512, 112x112."""
    return _make(18, embedding_dim, in_channels, input_size, dropout, fp16)


def iresnet34(embedding_dim: int = 512, in_channels: int = 3, input_size=112,
              dropout: float = 0.0, fp16: bool = False) -> IResNet:
    """iResNet-34: blocks (3, 4, 6, 3), ~34.1M parameters at D=512, 112x112."""
    return _make(34, embedding_dim, in_channels, input_size, dropout, fp16)


def iresnet50(embedding_dim: int = 512, in_channels: int = 3, input_size=112,
              dropout: float = 0.0, fp16: bool = False) -> IResNet:
    """iResNet-50: blocks (3, 4, 14, 3), ~43.6M parameters at D=512, 112x112."""
    return _make(50, embedding_dim, in_channels, input_size, dropout, fp16)


def iresnet100(embedding_dim: int = 512, in_channels: int = 3, input_size=112,
               dropout: float = 0.0, fp16: bool = False) -> IResNet:
    """iResNet-100: blocks (3, 13, 30, 3), ~65.2M parameters at D=512, 112x112 (ArcFace's
    best-known backbone, "LResNet100E-IR" in the paper)."""
    return _make(100, embedding_dim, in_channels, input_size, dropout, fp16)
