"""Figures of the unified gradient (chapter 6): how hard each loss pulls a sample to its centre.

Both functions plot :func:`frbook.losses.gradients.target_angle_gradient`, the magnitude
|d loss / d theta_y| of one sample whose C - 1 other cosines all equal ``other_cos``, against its
target angle theta_y, and the probability P_y behind it. Pure functions: they return a matplotlib
Figure and draw nothing on screen.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from matplotlib.figure import Figure

from ..losses import gradients as _gradients
from ..losses.p2sgrad import P2SGrad
from .margins import _angle_axis, _items, _loss_parts, _new_axes

_SAMPLES = 721  # a quarter of a degree


def _curves(loss, num_classes: int, other_cos: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(theta, P_y, |d loss / d theta_y|) on a grid of target angles in (0, pi)."""
    theta = torch.linspace(0.0, math.pi, _SAMPLES, dtype=torch.float64)[1:-1]
    magnitude = _gradients.target_angle_gradient(loss, theta, num_classes, other_cos)
    if isinstance(loss, P2SGrad):
        probability = torch.full_like(theta, float("nan"))  # no softmax, no probability
    else:
        probability = _gradients.target_probability(loss, theta, num_classes, other_cos)
    return theta.numpy(), probability.numpy(), magnitude.numpy()


def _label(label, loss) -> str:
    name, params = _loss_parts(loss, with_scale=True)
    text = name if label is None else str(label)
    return f"{text} ({params})" if params else text


def gradient_curves(losses, num_classes: int, other_cos: float = 0.0, ax=None, degrees: bool = True,
                    normalise: bool = False) -> Figure:
    """|d loss / d theta_y| against the target angle, one curve per loss.

    Args:
        losses: ``{label: loss}``, a list of ``(label, loss)`` pairs, or one loss; P2SGrad included.
        num_classes: C, which sets P_y through the C - 1 competing logits.
        other_cos: the cosine of every non-target class (0: orthogonal, typical in high dimension).
        normalise: divide each curve by its maximum, to compare shapes across scales.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    fig, ax = _new_axes(ax, (6.4, 4.6))
    for label, loss in _items(losses):
        theta, _, magnitude = _curves(loss, num_classes, other_cos)
        if normalise:
            magnitude = magnitude / magnitude.max()
        ax.plot(np.degrees(theta) if degrees else theta, magnitude, linewidth=1.8, label=_label(label, loss))
    _angle_axis(ax, "x", degrees)
    if normalise:
        ax.set_ylim(-0.03, 1.2 + 0.07 * len(ax.get_lines()))  # headroom for the legend
    ax.set_xlabel("target angle θ" + (" (degrees)" if degrees else " (radians)"))
    ax.set_ylabel("|∂L/∂θ|" + (" ÷ its maximum" if normalise else ""))
    ax.set_title(f"Pull towards the centre, C = {num_classes:,}, other cosines {other_cos:g}")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize="small", framealpha=0.9)
    return fig


def gradient_panel(loss, num_classes: int, other_cos: float = 0.0, fig=None, degrees: bool = True) -> Figure:
    """Two panels for one softmax loss: P_y against theta_y, and its pull beside P2SGrad's.

    Right: both curves divided by their maximum, so the *shape* (where the loss pulls hardest,
    where it stops) compares across any s; the legend gives the maxima.
    """
    if fig is None:
        fig = Figure(figsize=(11.5, 4.6), layout="constrained")
    fig.clear()
    left, right = fig.subplots(1, 2)
    theta, probability, magnitude = _curves(loss, num_classes, other_cos)
    _, _, p2s = _curves(P2SGrad(), num_classes, other_cos)
    x = np.degrees(theta) if degrees else theta
    left.plot(x, probability, linewidth=1.8, color="C0")
    left.set_ylim(-0.02, 1.02)
    left.set_ylabel("target probability P_y")
    left.set_title(_label(None, loss), fontsize="medium")
    right.plot(x, magnitude / magnitude.max(), linewidth=1.8, color="C0",
               label=f"{_label(None, loss)}, max {magnitude.max():.3g}")
    right.plot(x, p2s / p2s.max(), linewidth=1.8, color="C3", linestyle="--",
               label=f"P2SGrad, max {p2s.max():.3g}")
    right.set_ylim(-0.03, 1.3)  # headroom for the legend above the curves
    right.set_ylabel("|∂L/∂θ| ÷ its maximum")
    right.set_title(f"C = {num_classes:,}, other cosines {other_cos:g}", fontsize="medium")
    right.legend(loc="upper left", fontsize="small", framealpha=0.9)
    for ax in (left, right):
        _angle_axis(ax, "x", degrees)
        ax.set_xlabel("target angle θ" + (" (degrees)" if degrees else " (radians)"))
        ax.grid(True, alpha=0.3)
    return fig
