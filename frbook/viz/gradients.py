"""Figures of the unified gradient (chapter 6): how hard each loss pulls a sample to its centre.

:func:`gradient_curves` and :func:`gradient_panel` plot
:func:`frbook.losses.gradients.target_angle_gradient`, the magnitude |d loss / d theta_y| of one
sample whose C - 1 other cosines all equal ``other_cos``, against its target angle theta_y, and the
probability P_y behind it; :func:`probability_and_pull` draws, for NormFace at several scales
(chapter 2), P_y and the pull s(1 - P_y) on the target cosine; :func:`softmax_pull_panels` plots
the factor 1 - P_y of that pull for several scales, margins and class counts beside P2SGrad's
1 - cos theta. Pure functions: they return a matplotlib Figure and draw nothing on screen.
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


def softmax_pull_panels(panels, theta) -> Figure:
    """1 − P_y against the target angle, the factor by which a softmax loss pulls a sample to its
    centre, beside P2SGrad's 1 − cos θ (dashed), in one panel per setting that varies.

    ``panels``: title -> rows of ``(label, loss, num_classes)``; ``theta``: target angles in
    radians (float64 tensor). The other C − 1 cosines are 0, as in :func:`target_probability`.
    """
    fig = Figure(figsize=(12.5, 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels), sharey=True))
    degrees = np.degrees(theta.numpy())
    for ax, (title, rows) in zip(axes, panels.items()):
        for label, loss, num_classes in rows:
            p = _gradients.target_probability(loss, theta, num_classes).numpy()
            ax.plot(degrees, 1 - p, label=label, linewidth=1.8)
        ax.plot(degrees, 1 - np.cos(theta.numpy()), color="black", linestyle="--", linewidth=1.3,
                label="P2SGrad: 1 − cos θ")
        ax.set_title(title, fontsize="medium")
        ax.set_xlabel("target angle θ (degrees)")
        ax.set_xticks(range(0, 181, 30))
        ax.set_ylim(-0.03, 2.03)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small", loc="upper left")
    axes[0].set_ylabel("1 − P_y  (and 1 − cos θ)")
    return fig


def probability_and_pull(theta, curves) -> Figure:
    """Left: the probability P_y of a sample's class against its angle θ to its centre (0 to 90
    degrees); right: the pull on its target cosine, s(1 − P_y), on a log scale. ``curves``: scale
    s -> ``(P_y, pull)`` at ``theta`` (radians), as a chapter computes them, e.g. by autograd."""
    fig = Figure(figsize=(9.5, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    degrees = np.degrees(np.asarray(theta, dtype=float))
    for s, (p, pull) in curves.items():
        left.plot(degrees, np.asarray(p, dtype=float), label=f"s = {s:g}")
        right.plot(degrees, np.asarray(pull, dtype=float), label=f"s = {s:g}")
    left.set_ylabel("probability of the right class $p_y$")
    right.set_ylabel("pull on the target cosine, $s(1-p_y)$")
    right.set_yscale("log")
    right.set_ylim(1e-4, 100)
    for ax in (left, right):
        ax.set_xlabel("angle θ between the sample and its centre (degrees)")
        ax.set_xlim(0, 90)
        ax.set_xticks(range(0, 91, 15))
        ax.grid(True, alpha=0.3)
        ax.legend()
    return fig
