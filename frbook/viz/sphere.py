"""3-D embeddings on the unit sphere: what a cosine loss sees of a 3-D feature space.

A pure function: data in, a matplotlib ``Figure`` out (built without pyplot, so a Figure returned
as a cell's last expression shows once). Uses ``mpl_toolkits.mplot3d`` (``projection="3d"``).
"""
from __future__ import annotations

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure

__all__ = ["features_3d"]


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def features_3d(embeddings, labels, centres=None, ax=None, title=None, max_points_per_class=300,
                elev=20.0, azim=35.0) -> Figure:
    """3-D features projected onto the unit sphere, coloured by class, on a faint wireframe sphere.

    Only directions matter to a cosine loss, so each feature is normalised; a well-trained
    margin loss gathers each class in a tight cap around its centre.

    Args:
        embeddings: (N, 3) features (any norm; zero vectors are left at the origin).
        labels: (N,) class of each feature.
        centres: optional (C, 3) class centres (the classifier's weight rows), indexed by
            label, drawn as a ray from the origin to the sphere with a marker at its end.
        ax: a 3-D axes (``fig.add_subplot(projection="3d")``); a new figure if None.
        title: the axes title.
        max_points_per_class: at most this many points per class are drawn (the first ones).
        elev, azim: the viewing angles, in degrees.
    """
    x, y = _numpy(embeddings).astype(np.float64), _numpy(labels)
    if x.ndim != 2 or x.shape[1] != 3:
        hint = " (use frbook.viz.features.features_2d for 2-D features)" if x.ndim == 2 and x.shape[1] == 2 else ""
        raise ValueError(f"features_3d draws (N, 3) embeddings, got shape {x.shape}{hint}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"labels must have shape ({x.shape[0]},), one per embedding; got {y.shape}")
    w = None
    if centres is not None:
        w = _numpy(centres).astype(np.float64)
        if w.ndim != 2 or w.shape[1] != 3:
            raise ValueError(f"centres must have shape (C, 3), got {w.shape}")
        if y.size and (y.min() < 0 or y.max() >= len(w)):
            raise ValueError(f"labels must index the {len(w)} centres, got values {y.min()} to {y.max()}")
        w = w / np.linalg.norm(w, axis=1, keepdims=True).clip(1e-12)
    if ax is None:
        fig = Figure(figsize=(5.5, 5.5), layout="constrained")
        ax = fig.add_subplot(projection="3d")
    elif getattr(ax, "name", None) != "3d":
        raise ValueError("features_3d needs a 3-D axes: fig.add_subplot(projection='3d')")
    fig = ax.figure
    x = x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)

    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, 37), np.linspace(0, np.pi, 19))
    ax.plot_wireframe(np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v),
                      color="0.75", linewidth=0.4, alpha=0.5)

    classes = np.unique(y)
    colours = colormaps["tab10" if len(classes) <= 10 else "tab20"]
    for k, c in enumerate(classes):
        colour = colours(k % colours.N)
        pts = x[y == c][:max_points_per_class]
        ax.scatter(pts[:, 0], pts[:, 1], pts[:, 2], s=7, alpha=0.8, color=colour, depthshade=False,
                   label=str(c))
        if w is not None:
            cx, cy, cz = w[int(c)]
            ax.plot([0, cx], [0, cy], [0, cz], color=colour, linewidth=1.8)
            ax.scatter([cx], [cy], [cz], s=160, marker="*", color=colour, edgecolor="black",
                       linewidth=0.5, depthshade=False)

    ax.set_xlim(-1, 1)
    ax.set_ylim(-1, 1)
    ax.set_zlim(-1, 1)
    ax.set_box_aspect((1, 1, 1))
    ax.set_xlabel("feature 1")
    ax.set_ylabel("feature 2")
    ax.set_zlabel("feature 3")
    ax.set_xticks([-1, 0, 1])
    ax.set_yticks([-1, 0, 1])
    ax.set_zticks([-1, 0, 1])
    ax.view_init(elev=elev, azim=azim)
    if len(classes) <= 12:
        ax.legend(title="class", loc="upper right", fontsize="small", markerscale=2, framealpha=0.8)
    if title:
        ax.set_title(title)
    return fig
