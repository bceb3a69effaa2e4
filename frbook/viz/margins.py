r"""Margins drawn: target logit curves, two-class decision boundaries, NormFace's loss bound.

Every margin loss of :mod:`frbook.losses` changes one number, the target logit, which it
computes from the target angle theta as ``s f(theta)`` (the other classes keep ``s cos``). These
plots read ``f`` from the loss itself (``loss.target_logit``), never from a formula written
again here, so a figure shows exactly what training uses, fallbacks included.

Pure functions: a loss (or numbers) in, a matplotlib ``Figure`` out. Figures are built with
``matplotlib.figure.Figure`` rather than pyplot, so nothing accumulates in pyplot's global
state (a widget redraws many times) and a Figure returned as the last expression of a notebook
cell is shown once. Pass ``ax=`` to draw into axes of your own; the axes' figure is returned.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

__all__ = [
    "target_logit_curves", "decision_boundaries", "margin_panel", "softmax_lower_bound",
    "normface_loss_lower_bound", "describe_loss",
]

CLASS1_COLOUR = "tab:blue"
CLASS2_COLOUR = "tab:orange"
# Region fills of decision_boundaries: margin (neither class wins with its margin), class 1,
# class 2, and both (possible only with a negative margin, f(theta) > cos(theta)).
REGION_COLOURS = ("#e6e6e6", "#c6dbef", "#fdd9b5", "#d4b9da")
_GRID = 480      # pixels per side of the region image
_SAMPLES = 2001  # samples of theta in [0, pi] for the curves

# Parameters that do not change f(theta), left out of the legends: the scale multiplies f
# (the plots are per unit of s), the others act on gradients or statistics only.
_NOT_IN_F = {"s", "grad", "learn_scale", "dynamic", "num_classes", "t_alpha", "h", "sub_centers"}
_ANGULAR = {("ArcFace", "m"), ("SubCenterArcFace", "m"), ("CurricularFace", "m"), ("CombinedMargin", "m2")}
_NAMES = {"CombinedMargin": "Combined", "SubCenterArcFace": "Sub-center ArcFace"}


# ---------------------------------------------------------------- helpers

def _new_axes(ax, figsize):
    if ax is None:
        fig = Figure(figsize=figsize, layout="constrained")
        return fig, fig.add_subplot()
    return ax.figure, ax


def _target_logit(loss, theta: np.ndarray) -> np.ndarray:
    """f(theta) from the loss's own ``target_logit``, in float64, as numpy."""
    with torch.no_grad():
        f = loss.target_logit(torch.as_tensor(theta, dtype=torch.float64))
    return f.detach().cpu().to(torch.float64).numpy()


def _scale(loss) -> float | None:
    """The loss's scale s as a float, or None if it has none (or it is not known yet)."""
    s = getattr(loss, "s", None)
    if s is None:
        return None
    s = float(s.detach()) if isinstance(s, torch.Tensor) else float(s)
    return s if math.isfinite(s) and s > 0 else None


def _number(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _loss_parts(loss, with_scale: bool = False) -> tuple[str, str]:
    kind = type(loss).__name__
    parts = []
    for key, value in loss.hparams().items():
        if key in _NOT_IN_F or (value is None and key != "lamb"):
            continue
        if key == "lamb":
            lamb = getattr(loss, "lamb", value)
            parts.append(f"λ={_number(float(lamb))}" + (" annealed" if value is None else ""))
        elif (kind, key) in _ANGULAR and value:
            parts.append(f"{key}={_number(float(value))} = {math.degrees(value):.1f}°")
        else:
            parts.append(f"{key}={_number(value)}")
    if with_scale and _scale(loss) is not None:
        parts.insert(0, f"s={_number(_scale(loss))}")
    return _NAMES.get(kind, kind), ", ".join(parts)


def describe_loss(loss, with_scale: bool = False) -> str:
    """A short legend text: the loss's name and the parameters that shape f(theta).

    ``"ArcFace (m=0.5 = 28.6°, fallback=classic)"``; SphereFace's annealed lambda is shown with
    its current value. ``with_scale`` adds s (which scales the logits but not f).
    """
    name, params = _loss_parts(loss, with_scale)
    return f"{name} ({params})" if params else name


def _items(losses):
    if hasattr(losses, "target_logit"):  # a single loss
        return [(None, losses)]
    if isinstance(losses, Mapping):
        return list(losses.items())
    items = list(losses)
    if not all(isinstance(i, tuple) and len(i) == 2 for i in items):
        raise TypeError("losses must be a dict {label: loss}, a list of (label, loss) pairs, or one loss")
    return items


def _break_jumps(f: np.ndarray, threshold: float = 0.03) -> np.ndarray:
    """A copy of ``f`` with NaN inserted after each jump, so a discontinuity is not drawn as a wall.

    With 2001 samples on [0, pi] a continuous f of slope up to 19 moves less than ``threshold``
    per sample; the jumps of ArcFace's "classic" (0.12 at m = 0.5) and "easy" fallbacks are larger.
    """
    out = f.copy()
    out[1:][np.abs(np.diff(f)) > threshold] = np.nan
    return out


# ---------------------------------------------------------------- target logit curves

def target_logit_curves(losses, ax=None, degrees: bool = True) -> Figure:
    """The target logit f(theta) of each loss against the target angle theta in [0, pi].

    The classic figure of the ArcFace paper ("target logit curves"): every margin loss bends
    ``cos theta`` (drawn dashed, the no-margin reference of softmax and NormFace) downwards, so
    a sample must be closer to its centre to reach the same logit. Curves are per unit of scale
    (the logit is ``s f(theta)``), computed by each loss's own ``target_logit``; jumps of a
    fallback (ArcFace's "classic", "easy") are left as gaps.

    Args:
        losses: ``{label: loss}``, a list of ``(label, loss)`` pairs, or one loss. The legend
            shows each label with the loss's parameters (:func:`describe_loss`).
        ax: axes to draw into; a new figure if None.
        degrees: theta axis in degrees (default) or radians.
    """
    items = _items(losses)
    fig, ax = _new_axes(ax, (6.4, 4.6))
    theta = np.linspace(0.0, math.pi, _SAMPLES)
    x = np.degrees(theta) if degrees else theta
    ax.plot(x, np.cos(theta), color="black", linestyle="--", linewidth=1.3, zorder=3,
            label="cos θ (no margin: softmax, NormFace)")
    for label, loss in items:
        name, params = _loss_parts(loss)
        text = name if label is None else str(label)
        if params:
            text += f" ({params})"
        ax.plot(x, _break_jumps(_target_logit(loss, theta)), linewidth=1.8, label=text)
    ax.axhline(0.0, color="0.8", linewidth=0.7, zorder=0)
    _angle_axis(ax, "x", degrees)
    ax.set_xlabel("target angle θ" + (" (degrees)" if degrees else " (radians)"))
    ax.set_ylabel("target logit f(θ)  (logit ÷ s)")
    ax.set_title("Target logit curves")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left", fontsize="small", framealpha=0.9)
    return fig


def _angle_axis(ax, which: str, degrees: bool) -> None:
    """Limits [0, pi] and ticks in degrees (every 30) or in fractions of pi on axis ``which``."""
    set_lim, set_ticks = (ax.set_xlim, ax.set_xticks) if which == "x" else (ax.set_ylim, ax.set_yticks)
    if degrees:
        set_lim(0, 180)
        set_ticks(np.arange(0, 181, 30))
    else:
        set_lim(0, math.pi)
        set_ticks([0, math.pi / 4, math.pi / 2, 3 * math.pi / 4, math.pi], ["0", "π/4", "π/2", "3π/4", "π"])


# ---------------------------------------------------------------- decision boundaries

def _boundary(f: np.ndarray) -> np.ndarray:
    """theta_2 on the boundary f(theta_1) = cos(theta_2): arccos f, NaN where |f| > 1 (no boundary)."""
    tol = 1e-9  # f(pi - m) = cos(pi) may round to -1 - 1e-16; keep that end point
    g = np.arccos(np.clip(f, -1.0, 1.0))
    g[(f < -1 - tol) | (f > 1 + tol)] = np.nan
    return g


def decision_boundaries(loss, ax=None, degrees: bool = True, confidence: float | None = None,
                        annotate: bool = True) -> Figure:
    r"""Two-class decision boundaries of a margin loss in angle space.

    A feature at angle theta_1 from class 1's centre and theta_2 from class 2's has training
    logits ``s f(theta_1)`` and ``s cos(theta_2)`` when its label is 1. It meets class 1's
    margin when ``f(theta_1) > cos(theta_2)``; the boundary is ``f(theta_1) = cos(theta_2)``,
    i.e. ``theta_2 = arccos f(theta_1)`` (exact: cos is one-to-one on [0, pi]; where f jumps,
    the boundary has a vertical piece). Class 2's boundary is the mirror image,
    ``theta_1 = arccos f(theta_2)``. Shaded: where each class meets its margin, and between
    the boundaries the *margin* where neither does (a negative margin, f > cos, would make them
    overlap; that is shaded too).

    NormFace: both boundaries on the diagonal, no margin. CosFace: the gap is constant in cosine,
    so in angle it narrows towards 90° and widens again. ArcFace: ``theta_2 = theta_1 + m``, two
    lines parallel to the diagonal, a constant angular (geodesic) gap m, up to theta_1 = pi - m
    where the loss's fallback takes over. Arrows measure the gap ``theta_2 - theta_1`` on class
    1's boundary at a few angles.

    (Not every point of the square is reachable: for centres an angle phi apart,
    ``|theta_1 - theta_2| <= phi <= theta_1 + theta_2``. The square shows the loss's rule, which is
    the same for every phi.)

    Args:
        loss: a loss from :func:`frbook.losses.get` (anything with ``target_logit``).
        ax: axes to draw into; a new figure if None.
        degrees: axes in degrees (default) or radians.
        confidence: if given (e.g. 0.99) and the loss has a scale s, also draw, dashed, where the
            training softmax gives the true class this probability:
            ``s (f(theta_1) - cos theta_2) = log(p / (1 - p))``. This is where s shows: the smaller
            s, the further this line lies beyond the boundary.
        annotate: write the region names and the gap arrows.
    """
    if confidence is not None and not 0 < confidence < 1:
        raise ValueError(f"confidence must be a probability in (0, 1), got {confidence!r}")
    fig, ax = _new_axes(ax, (5.2, 5.4))
    unit = 180 / math.pi if degrees else 1.0
    top = math.pi * unit

    # Regions, on a pixel grid: A[i, j] is "class 1 meets its margin" at theta_1 = grid[j],
    # theta_2 = grid[i]; class 2's condition at the same point is A[j, i], the transpose.
    grid = (np.arange(_GRID) + 0.5) * math.pi / _GRID
    diff = _target_logit(loss, grid)[None, :] - np.cos(grid)[:, None]
    tie = np.abs(diff) <= 1e-12  # on a boundary (NormFace's diagonal): not a margin of its own
    one = (diff > 0) | (tie & ~(diff.T > 0))
    two = (diff.T > 0) | (tie.T & ~one)
    regions = np.where(one & two, 3, np.where(one, 1, np.where(two, 2, 0)))
    ax.imshow(regions, origin="lower", extent=(0, top, 0, top), cmap=ListedColormap(REGION_COLOURS),
              vmin=-0.5, vmax=3.5, interpolation="nearest", zorder=0)

    theta = np.linspace(0.0, math.pi, _SAMPLES)
    f = _target_logit(loss, theta)
    g = _boundary(f)
    ax.plot([0, top], [0, top], color="black", linestyle=":", linewidth=1, label="θ1 = θ2 (no margin)")
    b1, = ax.plot(theta * unit, g * unit, color=CLASS1_COLOUR, linewidth=2,
                  label="class 1 boundary: f(θ1) = cos θ2")
    # Without a margin both boundaries are the diagonal: draw class 2's dashed over class 1's.
    no_margin = bool(np.nanmax(np.abs(g - theta)) < 1e-6) if np.isfinite(g).any() else False
    b2, = ax.plot(g * unit, theta * unit, color=CLASS2_COLOUR, linewidth=2,
                  linestyle=(0, (4, 4)) if no_margin else "-", label="class 2 boundary: f(θ2) = cos θ1")
    b1.set_gid("boundary-1")
    b2.set_gid("boundary-2")

    s = _scale(loss)
    if confidence is not None and s is not None:
        shift = math.log(confidence / (1 - confidence)) / s
        gc = _boundary(f - shift)
        c1, = ax.plot(theta * unit, gc * unit, color=CLASS1_COLOUR, linestyle="--", linewidth=1.1,
                      label=f"p(true class) = {confidence:g} at s = {s:g}")
        c2, = ax.plot(gc * unit, theta * unit, color=CLASS2_COLOUR, linestyle="--", linewidth=1.1)
        c1.set_gid("confidence-1")
        c2.set_gid("confidence-2")

    if annotate:
        _annotate_gaps(ax, theta, g, unit, degrees)
        text = dict(ha="center", va="center", fontsize=9, color="0.15",
                    bbox=dict(boxstyle="round,pad=0.25", fc="white", ec="none", alpha=0.7))
        if one.any():
            ax.text(0.2 * top, 0.88 * top, "class 1\nf(θ1) > cos θ2", **text)
        if two.any():
            ax.text(0.8 * top, 0.12 * top, "class 2\nf(θ2) > cos θ1", **text)
        if no_margin:
            ax.text(0.62 * top, 0.45 * top, "both boundaries on the diagonal:\nno margin", rotation=45,
                    rotation_mode="anchor", **text)

    _angle_axis(ax, "x", degrees)
    _angle_axis(ax, "y", degrees)
    unit_name = " (degrees)" if degrees else " (radians)"
    ax.set_xlabel("θ1: angle to class 1's centre" + unit_name)
    ax.set_ylabel("θ2: angle to class 2's centre" + unit_name)
    ax.set_aspect("equal")
    ax.set_title("Decision boundaries, two classes", fontsize="medium")
    present = [k for k in range(4) if (regions == k).any()]
    names = ("margin: neither class", "class 1 meets its margin", "class 2 meets its margin",
             "both: the margins overlap")
    handles, _ = ax.get_legend_handles_labels()
    handles += [Patch(facecolor=REGION_COLOURS[k], edgecolor="0.6", label=names[k]) for k in present]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2,
              fontsize="small", frameon=False, handlelength=1.6, columnspacing=1.0)
    return fig


def _annotate_gaps(ax, theta, g, unit, degrees):
    """Vertical arrows from the diagonal to class 1's boundary, labelled theta_2 - theta_1."""
    for at in (20.0, 60.0, 100.0):
        t = math.radians(at)
        i = int(np.argmin(np.abs(theta - t)))
        if not np.isfinite(g[i]) or g[i] >= math.pi - 1e-6 or abs(g[i] - theta[i]) < 1e-3:
            continue
        x, y0, y1 = theta[i] * unit, theta[i] * unit, g[i] * unit
        ax.annotate("", xy=(x, y1), xytext=(x, y0),
                    arrowprops=dict(arrowstyle="<->", color="0.2", linewidth=1, shrinkA=0, shrinkB=0))
        gap = (g[i] - theta[i]) * unit
        label = f"{gap:.1f}°" if degrees else f"{gap:.3f} rad"
        ax.text(x + 0.012 * math.pi * unit, (y0 + y1) / 2, label, ha="left", va="center",
                fontsize=8, color="0.1",
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.75))


# ---------------------------------------------------------------- the two together

def margin_panel(loss, fig=None, degrees: bool = True, confidence: float | None = None) -> Figure:
    """One loss, two views side by side: its target logit curve and its decision boundaries.

    The static figure of the margin chapter and what :func:`frbook.viz.widgets.margin_explorer`
    redraws on every change. ``fig``: a Figure to clear and reuse (the widget keeps one);
    a new one if None. ``confidence``: passed to :func:`decision_boundaries`.
    """
    if fig is None:
        fig = Figure(figsize=(11.5, 5.0), layout="constrained")
    else:
        fig.clear()
    left, right = fig.subplots(1, 2, width_ratios=[1.25, 1])
    target_logit_curves([(None, loss)], ax=left, degrees=degrees)
    decision_boundaries(loss, ax=right, degrees=degrees, confidence=confidence)
    fig.suptitle(describe_loss(loss, with_scale=True))
    return fig


# ---------------------------------------------------------------- NormFace's bound

def normface_loss_lower_bound(s, C):
    r"""NormFace's lower bound on the normalised softmax loss: ``log(1 + (C-1) exp(-s C/(C-1)))``.

    Wang et al., "NormFace: L2 Hypersphere Embedding for Face Verification" (ACM MM 2017),
    Proposition 2, with their ``l^2`` (the squared norm of features and weights) as the scale s.

    Derivation (features on their centres, balanced classes). With unit features x and unit
    centres W_j, the loss of a sample of class y is
    ``L_y = log(1 + sum_{j != y} exp(s (x.W_j - x.W_y)))``. Put x on its centre, x = W_y:

    1. exp is convex, so (Jensen) ``sum_{j != y} exp(a_j) >= (C-1) exp(mean_{j != y} a_j)``, and
       ``L_y >= log(1 + (C-1) exp(s u_y))`` with ``u_y = mean_{j != y} W_y.W_j - 1``.
    2. ``u -> log(1 + (C-1) e^{s u})`` is convex and increasing, so the mean over the C classes
       is at least its value at ``u = mean_y u_y = (|sum_j W_j|^2 - C) / (C (C-1)) - 1``.
    3. ``|sum_j W_j|^2 >= 0``, so ``u >= -1/(C-1) - 1 = -C/(C-1)``.

    Equality holds throughout when ``sum_j W_j = 0`` and all pairwise cosines are equal, i.e. the
    centres form a regular simplex, ``W_i.W_j = -1/(C-1)`` (which needs a dimension >= C-1). The
    bound decreases in s towards 0; at s = 0 it is log C, chance. With a small s the loss cannot
    go low however well the features are separated: the reason for s >= 16 at large C.

    Args:
        s: the scale, >= 0; a float or an array (the result then has its shape).
        C: the number of classes, an integer >= 2.
    Returns:
        the bound in nats (float, or numpy array for array ``s``).
    """
    if isinstance(C, bool) or not float(C).is_integer() or C < 2:
        raise ValueError(f"C (the number of classes) must be an integer >= 2, got {C!r}")
    s_arr = np.asarray(s, dtype=np.float64)
    if np.any(~np.isfinite(s_arr)) or np.any(s_arr < 0):
        raise ValueError(f"s (the scale) must be finite and >= 0, got {s!r}")
    bound = np.log1p((C - 1) * np.exp(-s_arr * C / (C - 1)))
    return float(bound) if bound.ndim == 0 else bound


def softmax_lower_bound(s_values, num_classes_values, ax=None) -> Figure:
    """NormFace's lower bound on the loss against the scale s, one curve per number of classes C.

    See :func:`normface_loss_lower_bound`. Log y axis: the bound falls exponentially in s once
    ``s C/(C-1) > log(C-1)``, and more classes need a larger s for the same floor.
    """
    s = np.asarray(s_values, dtype=np.float64).ravel()
    if s.size == 0:
        raise ValueError("s_values is empty")
    cs = list(num_classes_values)
    if not cs:
        raise ValueError("num_classes_values is empty")
    fig, ax = _new_axes(ax, (6.4, 4.6))
    for C in cs:
        ax.plot(s, normface_loss_lower_bound(s, C), linewidth=1.8, label=f"C = {int(C):,}")
    ax.set_yscale("log")
    ax.set_xlim(s.min(), s.max())
    ax.set_xlabel("scale s")
    ax.set_ylabel("lower bound on the loss (nats, log scale)")
    ax.set_title("NormFace's bound: $\\log(1 + (C-1)\\,e^{-sC/(C-1)})$", fontsize="medium")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower left", fontsize="small", title="classes", framealpha=0.9)
    return fig
