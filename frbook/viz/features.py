"""Embeddings drawn where they live: 2-D features in the plane, 3-D features on the sphere, and
the wedges of the plane that each class weight wins."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def features_2d(embeddings, labels, centres=None, normalise=False, ax=None, title=None,
                max_points_per_class=200) -> Figure:
    """Scatter 2-D embeddings coloured by class; draw each class centre as a ray from the origin.

    Args:
        embeddings: (N, 2) features.
        labels: (N,) class of each feature.
        centres: optional (C, 2) class centres (the classifier's weight rows), drawn as rays.
        normalise: project the features onto the unit circle (what a cosine loss sees).
    """
    x, y = _numpy(embeddings).astype(float), _numpy(labels)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"features_2d draws (N, 2) embeddings, got shape {x.shape}")
    if normalise:
        x = x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)
    fig, ax = _figure(ax)
    classes = np.unique(y)
    colours = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    reach = np.abs(x).max() * 1.05
    for k, c in enumerate(classes):
        pts = x[y == c][:max_points_per_class]
        ax.scatter(pts[:, 0], pts[:, 1], s=6, alpha=0.6, color=colours(k % colours.N), label=str(c))
        if centres is not None:
            w = _numpy(centres)[int(c)].astype(float)
            w = w / max(np.linalg.norm(w), 1e-12) * reach
            ax.plot([0, w[0]], [0, w[1]], color=colours(k % colours.N), lw=1.5)
    if normalise:
        t = np.linspace(0, 2 * np.pi, 200)
        ax.plot(np.cos(t), np.sin(t), color="0.7", lw=0.8, zorder=0)
    ax.axhline(0, color="0.85", lw=0.6, zorder=0)
    ax.axvline(0, color="0.85", lw=0.6, zorder=0)
    ax.set_aspect("equal")
    ax.set_xlabel("feature 1")
    ax.set_ylabel("feature 2")
    if title:
        ax.set_title(title)
    return fig


def _figure(ax):
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        return fig, ax
    return ax.figure, ax


def winning_wedges(circle, panels, colours=("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"),
                   figsize=(9, 4.4)) -> Figure:
    """Which class wins each direction of the plane: one panel per title of ``panels`` (title ->
    ``(weights, winner)``: the (K, 2) class weights and, for every unit vector of ``circle``
    (N, 2), the index of the class whose logit w_k · x is largest). Each weight is an arrow; each
    direction a dot in its winner's colour; the angle each class wins is written inside its wedge."""
    fig = Figure(figsize=figsize, layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    points = _numpy(circle)
    for ax, (title, (weights, winner)) in zip(axes, panels.items()):
        w, won = _numpy(weights), _numpy(winner)
        for k in range(len(w)):
            colour = colours[k % len(colours)]
            ax.scatter(points[won == k, 0], points[won == k, 1], s=4, color=colour)
            ax.annotate("", xy=tuple(w[k]), xytext=(0, 0),
                        arrowprops=dict(arrowstyle="->", color=colour, linewidth=2))
            label_at = np.arctan2(w[k, 1], w[k, 0]) + np.radians(28)  # inside the wedge, beside the arrow
            ax.text(1.25 * np.cos(label_at), 1.25 * np.sin(label_at), f"{360 * np.mean(won == k):.0f}°",
                    color=colour, ha="center", va="center", fontsize=12)
        ax.set_aspect("equal")
        ax.set_xlim(-1.6, 1.6)
        ax.set_ylim(-1.5, 1.6)
        ax.axis("off")
        ax.set_title(title)
    return fig
