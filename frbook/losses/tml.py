"""The transformer-metric loss: a transformer reads the CNN's last feature map and adds a loss.

Prakash et al. (arXiv 2412.02198; four versions, 2024-2025, whose claims differ: v1 "SoTA on various
validation datasets", v2-v3 LFW, CALFW and AgeDB, v4 the age-variant CALFW and AgeDB) keep the usual margin loss (ArcFace or CosFace) on the
CNN's embedding and add a second one: the backbone's final convolutional feature map is read as a
sequence of vectors, a transformer encoder reads that sequence, and a loss on the transformer's
output ("transformer loss") is added with a weight. Both are trained end to end, so the second
loss reaches the backbone through the feature map. What the abstracts fix is only that outline;
the encoder's depth, heads and width, the tokenisation, the pooling, the head on the transformer
output and the weight are not stated, and there is no public code. Every such choice below is
ours, and :class:`TransformerMetricLoss` says which.

    total = L_metric(cos_cnn, y) + weight * L_metric'(cos_transformer, y)

At test time the CNN's embedding alone is used by default (this library's choice: the abstracts do
not say which embedding was tested); :class:`FusedModel` concatenates the normalised CNN and transformer embeddings instead, so
an experiment can measure whether the branch is also worth keeping at test time.

With :func:`frbook.train.fit` the loss is the whole trio's loss: build the head from it as usual
(``make_head(tml, ...)``), and ``fit`` hands it the feature map because it sets
``needs_feature_map`` (the loss contract of :class:`~frbook.losses.base.CosineLoss`). A training
config builds it with ``loss.aux: tml`` through :func:`frbook.losses.build`, the one builder::

    tml = TransformerMetricLoss.for_backbone(model, num_classes, base_loss="arcface",
                                             base_params={"s": 30, "m": 0.5})
    head = make_head(tml, model.embedding_dim, num_classes)
    fit(model, head, tml, data, steps=300)
    fused = FusedModel(model, tml)  # optional: the test-time embedding with both branches
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..heads import CosineClassifier
from .base import CosineLoss

__all__ = ["TransformerMetricLoss", "FusedModel", "POOLINGS"]

POOLINGS = ("cls", "mean")


class TransformerMetricLoss(CosineLoss):
    """Metric loss on the CNN embedding + ``weight`` x metric loss on a transformer's reading of
    the CNN's last feature map.

    Called as ``tml(cos, labels, feature_map=fmap)``: ``cos`` (B, C) is the CNN head's output as
    for any loss, ``fmap`` (B, C', H, W) the backbone's ``forward(x, return_feature_map=True)``
    map. :func:`frbook.train.fit` and the trainer pass it (``needs_feature_map`` is set).

    The branch, step by step (every step is our choice; the paper does not state it):

    1. **Tokens**: each of the H*W positions of the map is one token, its C' channels projected
       to ``width`` by one linear layer (a 1x1 convolution): the "sequence of contextual
       vectors" of the abstract, with nothing added and nothing pooled away.
    2. **Positions**: a learned positional embedding per position (and one for the class token),
       initialised N(0, 0.02^2), sized for the H x W the loss is built for; a map of another size
       is an error, not a silent interpolation.
    3. **Encoder**: ``torch.nn.TransformerEncoder`` (batch first), ``depth`` layers of ``heads``
       heads, feed-forward width ``mlp_ratio * width``, GELU, pre-norm (``norm_first``: trains
       stably with SGD at the CNN's learning rate), ``dropout`` 0 (short runs do not overfit).
    4. **Pooling**: ``"cls"`` a learned class token prepended to the sequence (ViT's reading),
       or ``"mean"`` the average of the output tokens.
    5. **Head**: LayerNorm -> Linear(width, ``embedding_dim``) gives the transformer's embedding,
       scored by its own :class:`~frbook.heads.CosineClassifier` (its own class centres: the two
       branches need not agree on where a class lies).
    6. **Loss**: the same margin loss as the CNN's (``base_loss`` with ``base_params``, built
       with :func:`frbook.losses.get`), a separate instance, so a loss with state (AdaCos,
       CurricularFace) keeps one state per branch.
    7. **Weight**: ``weight`` = 0.5 by default, between the 0.1 and 1 the experiments of the
       book try; with ``weight=0`` the branch is not computed at all, so training is exactly
       the base loss.

    Args:
        backbone_channels: C', the channels of the backbone's last feature map
            (``backbone.feature_channels``).
        embedding_dim: the size of the transformer's embedding (ours: the CNN's, by default in
            :meth:`for_backbone`).
        num_classes: training identities (for the branch's class centres).
        map_size: (H, W) of the feature map (``backbone.feature_map_size()``).
        base_loss, base_params: the margin loss of both branches.
        weight: the transformer loss's weight (>= 0).
        depth, heads, width, mlp_ratio, dropout: the encoder (``width`` divisible by ``heads``).
        pooling: ``"cls"`` or ``"mean"``.
    """

    head = "cosine"  # the CNN's head: make_head(tml, ...) builds the usual CosineClassifier
    needs_feature_map = True

    def __init__(self, backbone_channels: int, embedding_dim: int, num_classes: int,
                 map_size: int | tuple[int, int], base_loss: str = "arcface", base_params: dict | None = None,
                 weight: float = 0.5, depth: int = 1, heads: int = 4, width: int = 128,
                 mlp_ratio: float = 2.0, dropout: float = 0.0, pooling: str = "cls"):
        super().__init__()
        for name, value in (("backbone_channels", backbone_channels), ("embedding_dim", embedding_dim),
                            ("depth", depth), ("heads", heads), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if width % heads:
            raise ValueError(f"width ({width}) must be divisible by heads ({heads}): each head reads "
                             f"width / heads channels")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
            raise ValueError(f"weight must be a number >= 0, got {weight!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        if not mlp_ratio > 0 or not 0 <= dropout < 1:
            raise ValueError(f"mlp_ratio must be > 0 and dropout in [0, 1), got {mlp_ratio} and {dropout}")
        map_size = (map_size, map_size) if isinstance(map_size, int) else tuple(int(s) for s in map_size)
        if len(map_size) != 2 or min(map_size) < 1:
            raise ValueError(f"map_size must be a positive int or a pair (H, W), got {map_size!r}")

        from . import get  # the registry, which lists this class too

        base_params = dict(base_params or {})
        self.base = get(base_loss, **base_params)
        if self.base.head != "cosine":
            raise ValueError(f"base_loss {base_loss!r} reads a linear head; the transformer-metric loss "
                             "needs a cosine loss (arcface, cosface, ...)")
        self.transformer_loss = get(base_loss, **base_params)
        self.base_name, self.base_params = base_loss, base_params
        self.sub_centers = self.base.sub_centers
        self.needs_norms = self.base.needs_norms
        self.weight = float(weight)
        self.backbone_channels, self.map_size, self.pooling = backbone_channels, map_size, pooling
        self.config = dict(depth=depth, heads=heads, width=width, mlp_ratio=mlp_ratio, dropout=dropout)

        self.tokens = nn.Linear(backbone_channels, width)
        extra = 1 if pooling == "cls" else 0
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width)) if extra else None
        self.positions = nn.Parameter(torch.zeros(1, map_size[0] * map_size[1] + extra, width))
        nn.init.trunc_normal_(self.positions, std=0.02)
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)
        layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=int(mlp_ratio * width), dropout=dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, norm=nn.LayerNorm(width), enable_nested_tensor=False)
        # The backbones' output layer: linear, then a BatchNorm1d without affine parameters that
        # centres the batch of embeddings. Without it the embeddings share a large common
        # component, sit in a narrow cone, and the cosine classifier cannot tell them apart (we
        # measured the branch collapsing to one direction, pairwise cosines above 0.999).
        self.project = nn.Sequential(nn.Linear(width, embedding_dim, bias=False),
                                     nn.BatchNorm1d(embedding_dim, affine=False))
        self.classifier = CosineClassifier(embedding_dim, num_classes, sub_centers=self.sub_centers)

    @classmethod
    def for_backbone(cls, backbone: nn.Module, num_classes: int, embedding_dim: int | None = None,
                     **params) -> TransformerMetricLoss:
        """The loss sized for ``backbone`` (its channels, map size, and embedding size by default)."""
        return cls(backbone.feature_channels, embedding_dim or backbone.embedding_dim, num_classes,
                   backbone.feature_map_size(), **params)

    # -- the branch ----------------------------------------------------------------------------
    def _sequence(self, feature_map: torch.Tensor) -> torch.Tensor:
        """(B, C', H, W) -> (B, [1 +] H*W, width): projected tokens plus positions."""
        if feature_map.dim() != 4:
            raise ValueError(f"expected a feature map (B, C, H, W), got shape {tuple(feature_map.shape)}")
        b, c, h, w = feature_map.shape
        if c != self.backbone_channels:
            raise ValueError(f"the feature map has {c} channels, the transformer-metric loss was built for "
                             f"{self.backbone_channels}; build it with backbone_channels={c} "
                             "(TransformerMetricLoss.for_backbone(model, ...) reads it from the model)")
        if (h, w) != self.map_size:
            raise ValueError(f"the feature map is {h}x{w}, the positional embeddings were sized for "
                             f"{self.map_size[0]}x{self.map_size[1]}; build the loss with map_size=({h}, {w}) "
                             "(the input size of the backbone changed?)")
        x = self.tokens(feature_map.flatten(2).transpose(1, 2).to(self.tokens.weight.dtype))
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(b, -1, -1), x], dim=1)
        return x + self.positions

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0] if self.pooling == "cls" else x.mean(dim=1)

    def embed(self, feature_map: torch.Tensor) -> torch.Tensor:
        """The transformer's embedding (B, embedding_dim) of a feature map."""
        return self.project(self._pool(self.encoder(self._sequence(feature_map))))

    def attention_maps(self, feature_map: torch.Tensor) -> list[torch.Tensor]:
        """Every layer's attention weights, (B, heads, T, T) each, T = [1 +] H*W (class token first)."""
        x, maps = self._sequence(feature_map), []
        for layer in self.encoder.layers:
            h = layer.norm1(x)  # pre-norm: attention reads the normalised sequence
            _, weights = layer.self_attn(h, h, h, need_weights=True, average_attn_weights=False)
            maps.append(weights)
            x = layer(x)
        return maps

    # -- the loss ------------------------------------------------------------------------------
    def forward(self, cos: torch.Tensor, labels: torch.Tensor, feature_map: torch.Tensor | None = None,
                norms: torch.Tensor | None = None) -> torch.Tensor:
        parts = self.parts(cos, labels, feature_map, norms)
        return parts["total"]

    def parts(self, cos, labels, feature_map=None, norms=None) -> dict[str, torch.Tensor]:
        """``{"metric", "transformer", "total"}``: the two losses and their weighted sum."""
        extra = {"norms": norms} if self.needs_norms else {}
        metric = self.base(cos, labels, **extra)
        if self.weight == 0:
            return {"metric": metric, "transformer": torch.zeros_like(metric), "total": metric}
        if feature_map is None:
            raise ValueError("the transformer-metric loss needs the backbone's feature map: call it as "
                             "loss(cos, labels, feature_map=fmap) with fmap from model(x, return_feature_map=True) "
                             "(frbook.train.fit passes it)")
        embedding = self.embed(feature_map)
        extra = {"norms": embedding.norm(dim=1)} if self.needs_norms else {}
        branch = self.transformer_loss(self.classifier(embedding), labels, **extra)
        return {"metric": metric, "transformer": branch, "total": metric + self.weight * branch}

    def step(self) -> None:
        """Advance the base losses' own schedules (SphereFace's lambda), if they have one."""
        self.base.step()
        self.transformer_loss.step()

    def target_logit(self, theta: torch.Tensor) -> torch.Tensor:
        return self.base.target_logit(theta)

    def logits(self, cos: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The CNN branch's logits (what the CNN head's accuracy is read from)."""
        return self.base.logits(cos, labels)

    def hparams(self) -> dict:
        return {"base_loss": self.base_name, **self.base.hparams(), "tml_weight": self.weight,
                "tml_depth": self.config["depth"], "tml_heads": self.config["heads"],
                "tml_width": self.config["width"], "tml_pooling": self.pooling}

    def extra_repr(self) -> str:
        return (f"base={self.base_name}, weight={self.weight}, map_size={self.map_size}, "
                f"pooling={self.pooling}, " + ", ".join(f"{k}={v}" for k, v in self.config.items()))


class FusedModel(nn.Module):
    """The test-time embedding with both branches: ``[normalise(cnn), normalise(transformer)]``.

    The two halves are unit vectors, so the fused embedding has norm sqrt(2) and the cosine of two
    fused embeddings is the mean of the two branches' cosines: each branch votes with equal weight.
    (Our choice; the paper's abstracts do not say which embedding was tested.) The transformer branch is computed here
    even if the loss was trained with ``weight=0``, where it is untrained and fusing is pointless.
    """

    def __init__(self, backbone: nn.Module, tml: TransformerMetricLoss):
        super().__init__()
        self.backbone, self.tml = backbone, tml
        self.embedding_dim = backbone.embedding_dim + tml.project[0].out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        embeddings, feature_map = self.backbone(x, return_feature_map=True)
        return torch.cat([F.normalize(embeddings.float(), dim=1),
                          F.normalize(self.tml.embed(feature_map).float(), dim=1)], dim=1)
