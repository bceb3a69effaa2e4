"""Show a batch of images as one grid: the first look at any face data set."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure


def image_grid(images, nrow: int, titles: Sequence[str] | None = None, ax=None) -> Figure:
    """Draw images of shape (N, C, H, W), values in [0, 1], as a grid ``nrow`` images wide.

    Grey images (C = 1) are drawn with a grey colour map on a fixed [0, 1] scale, so brightness
    differences between images stay visible; colour images (C = 3) are drawn as RGB. Tiles are
    separated by a one-pixel white line. ``titles``, one per image, are written above the tiles.
    Draws into ``ax`` when given (its figure is returned), otherwise into a new figure.
    """
    if isinstance(images, torch.Tensor):
        images = images.detach().to("cpu", torch.float32).numpy()
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (N, C, H, W) with C = 1 or 3, got "
                         f"{images.shape}")
    if isinstance(nrow, bool) or not isinstance(nrow, (int, np.integer)) or nrow < 1:
        raise ValueError(f"nrow (images per grid row) must be an integer >= 1, got {nrow!r}")
    n, c, h, w = images.shape
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles must give one title per image: {n} images, "
                         f"{len(titles)} titles")

    columns = min(nrow, max(n, 1))
    rows = -(-n // columns) if n else 1
    pad = 1
    mosaic = np.ones((rows * (h + pad) - pad, columns * (w + pad) - pad, c), dtype=np.float32)
    for k in range(n):
        top, left = (k // columns) * (h + pad), (k % columns) * (w + pad)
        mosaic[top:top + h, left:left + w] = images[k].transpose(1, 2, 0)
    mosaic = mosaic.clip(0.0, 1.0)

    if ax is None:
        scale = 1.1 if titles is not None else 0.9  # inches per tile, room for titles
        fig, ax = plt.subplots(figsize=(max(2.0, scale * columns), max(2.0, scale * rows)))
    else:
        fig = ax.figure
    if c == 1:
        ax.imshow(mosaic[..., 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(mosaic, interpolation="nearest")
    if titles is not None:
        for k, title in enumerate(titles):
            x = (k % columns) * (w + pad) + w / 2
            y = (k // columns) * (h + pad) - 0.5
            ax.text(x, y, str(title), ha="center", va="bottom", fontsize=7)
    ax.set_axis_off()
    return fig


def alignment_figure(frames, detections, crop: int, centre_crops, aligned, titles: Sequence[str]) -> Figure:
    """Centre crop against alignment, one column per face: the whole frame with the detected box,
    the five landmarks and the centre-crop square (top), what a centre crop gives (middle), and
    the face warped onto the five-point template (bottom).

    ``frames``: (C, H, W) ``uint8`` images; ``detections``: ``(box, score, points)`` per frame, as
    :meth:`frbook.data.align.MTCNNDetector.detect` returns them (``None`` where no face was
    found); ``centre_crops`` and ``aligned``: (C, h, w) ``uint8`` images at the size a model sees.
    """
    from matplotlib.patches import Rectangle

    n = len(frames)
    if not n or not (len(detections) == len(centre_crops) == len(aligned) == len(titles) == n):
        raise ValueError(f"one detection, centre crop, aligned face and title per frame: {n} frames, "
                         f"{len(detections)}, {len(centre_crops)}, {len(aligned)}, {len(titles)}")

    def show(ax, image):
        image = torch.as_tensor(image)
        if image.shape[0] == 1:
            ax.imshow(image[0].numpy(), cmap="gray", vmin=0, vmax=255)
        else:
            ax.imshow(image.permute(1, 2, 0).numpy())
        ax.set_xticks([])
        ax.set_yticks([])

    fig, axes = plt.subplots(3, n, figsize=(2.2 * n, 7.0), squeeze=False)
    for k in range(n):
        top = axes[0, k]
        show(top, frames[k])
        h, w = frames[k].shape[-2:]
        top.add_patch(Rectangle(((w - crop) / 2 - 0.5, (h - crop) / 2 - 0.5), crop, crop, fill=False,
                                edgecolor="yellow", linestyle="--", linewidth=1))
        if detections[k] is not None:
            box, _, points = detections[k]
            top.add_patch(Rectangle((box[0], box[1]), box[2] - box[0], box[3] - box[1], fill=False,
                                    edgecolor="tab:cyan", linewidth=1))
            top.plot(points[:, 0], points[:, 1], "o", color="tab:red", markersize=3)
        top.set_title(titles[k], fontsize=10)
        show(axes[1, k], centre_crops[k])
        show(axes[2, k], aligned[k])
    for row, label in enumerate(("frame, box, landmarks", "centre crop", "aligned")):
        axes[row, 0].set_ylabel(label)
    fig.tight_layout()
    return fig
