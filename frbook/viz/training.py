"""Curves of what a training logged, step by step: one line per run or loss, on shared axes.

Pure functions: ``(steps, values)`` pairs in (for a result file's history averaged over seeds, see
:func:`frbook.results.mean_history`), a matplotlib ``Figure`` out, built without pyplot. Pass
``ax=`` to draw into a panel of a figure of your own; that axes' figure is returned.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

__all__ = ["training_curves"]


def training_curves(curves: Mapping[str, tuple], ylabel: str, ax=None, scale: float = 1.0,
                    marker: str | None = None, figsize=(6, 3.4)) -> Figure:
    """One line per name of ``curves`` (name -> ``(steps, values)``), values times ``scale``
    (100 for a fraction shown in percent), against the training step; ``marker`` marks the logged
    steps, useful when they are few."""
    if ax is None:
        ax = Figure(figsize=figsize, layout="constrained").add_subplot()
    style = dict(marker=marker, markersize=3) if marker else {}
    for name, (steps, values) in curves.items():
        ax.plot(np.asarray(steps), scale * np.asarray(values, dtype=float), label=name, linewidth=1.6, **style)
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return ax.figure
