"""Figures of the adaptive and sub-center losses (chapter 4): what a scale does to P_y, how
AdaCos's scale, CurricularFace's t and AdaFace's norm statistics move while a model trains, and
where sub-center ArcFace puts mislabelled images.

Pure functions: arrays the chapter computed in, a matplotlib ``Figure`` out (built without pyplot,
so nothing accumulates in its global state). They plot and label; they compute nothing that a
chapter's text or checks rely on, so every number stays in the chapter where it is asserted.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

__all__ = [
    "scale_probability_curves", "adacos_trace", "curricular_negative_logits", "curricular_trace",
    "logit_and_gradient_scaling", "norm_study_figure", "subcenter_noise_figure",
]


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().double()
    return np.asarray(x, dtype=float)


def _degrees(theta) -> np.ndarray:
    return np.degrees(_np(theta))


def _training_axes(ax, ylabel: str) -> None:
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def _twin_legend(ax, right, **kwargs) -> None:
    """One legend for a left axis' first line and every line of its twin on the right."""
    ax.legend(handles=ax.get_lines()[:1] + right.get_lines(), **kwargs)


def scale_probability_curves(theta, curves: Mapping[float, object], fixed: tuple | None = None) -> Figure:
    """P_y against the target angle, one curve per scale s (``curves``: s -> P_y at ``theta``, in
    radians); ``fixed = (s, P_y)`` adds AdaCos's fixed scale dashed. The grey line marks 45°, where
    the fixed scale puts P_y = 1/2."""
    fig = Figure(figsize=(9.5, 4.2), layout="constrained")
    ax = fig.add_subplot()
    x = _degrees(theta)
    for s, p in curves.items():
        ax.plot(x, _np(p), label=f"s = {s}")
    if fixed is not None:
        s, p = fixed
        ax.plot(x, _np(p), "k--", label=f"s = {s:.1f} = √2 log(C−1)\n(AdaCos, fixed)")
    ax.axvline(45, color="0.7", linewidth=0.8)
    ax.set_xlabel("angle θ_y to the class centre (degrees)")
    ax.set_ylabel("P_y")
    ax.set_xlim(0, 90)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3)
    return fig


def adacos_trace(s_trace, median_angle, other_spread, fixed_scale: float) -> Figure:
    """AdaCos during training, one value per step. Left: the dynamic scale against the fixed one.
    Right: what drives it, the batch's median target angle and the spread of the other cosines."""
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    left, mid = fig.subplots(1, 2)
    left.plot(_np(s_trace), label="dynamic s")
    left.axhline(fixed_scale, color="k", linestyle="--", label="fixed s = √2 log(C−1)")
    _training_axes(left, "scale s")
    left.legend()
    mid.plot(_np(median_angle), color="tab:green", label="median target angle θ_med")
    mid.axhline(45, color="0.6", linewidth=0.8)
    _training_axes(mid, "degrees")
    right = mid.twinx()
    right.plot(_np(other_spread), color="tab:red", label="spread (std) of the non-target cosines")
    right.set_ylabel("standard deviation of cos θ_j")
    _twin_legend(mid, right, loc="upper right")
    return fig


def curricular_negative_logits(cos_j, curves: Mapping[float, object], threshold: float) -> Figure:
    """CurricularFace's negative logit N ÷ s against cos θ_j, one curve per t (``curves``: t -> N/s
    at ``cos_j``), over ArcFace's identity line; the vertical line is cos(θ_y + m), the border
    between easy negatives (left, unchanged) and hard ones (right, modulated)."""
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.add_subplot()
    x = _np(cos_j)
    ax.plot(x, x, "k--", linewidth=1.2, zorder=5, label="cos θ_j (ArcFace, every negative)")
    for t, n in curves.items():
        ax.plot(x, _np(n), label=f"CurricularFace, t = {t}")
    ax.axvline(threshold, color="0.6", linewidth=0.8)
    ax.text(threshold + 0.02, -0.9, "cos(θ_y + m):\neasy | hard", fontsize="small")
    ax.set_xlabel("cos θ_j (a negative class)")
    ax.set_ylabel("negative logit N ÷ s")
    ax.legend(fontsize="small", loc="upper left")
    ax.grid(alpha=0.3)
    return fig


def curricular_trace(t_trace, r_trace, hard_factor, hard_share) -> Figure:
    """CurricularFace during training. Left: the running t and the batch mean target cosine r it
    averages. Right: the mean modulation factor t + cos θ_j of the hard negatives (a line at 1:
    below it they are down-weighted) and the share of negatives that are hard."""
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    left, mid = fig.subplots(1, 2)
    left.plot(_np(r_trace), color="0.6", label="r: batch mean of cos θ_y")
    left.plot(_np(t_trace), color="tab:blue", linewidth=2, label="t: its running average")
    _training_axes(left, "cosine")
    left.legend()
    mid.plot(_np(hard_factor), color="tab:purple", label="mean t + cos θ_j of hard negatives")
    mid.axhline(1.0, color="k", linewidth=0.8)
    _training_axes(mid, "modulation factor")
    right = mid.twinx()
    right.plot(_np(hard_share), color="tab:orange", label="share of negatives that are hard")
    right.set_ylabel("share")
    mid.set_ylim(0, 1.35)  # room above the line at 1 for the legend
    right.set_ylim(0, 1.35)
    _twin_legend(mid, right, loc="upper right", fontsize="small")
    return fig


def logit_and_gradient_scaling(theta, inner, curves: Mapping[str, tuple], references=()) -> Figure:
    """Left: target logits f(θ) at ``theta``; right: their gradient scaling terms ∂f/∂cos θ at
    ``inner`` (``curves``: name -> (f, scaling)). Names in ``references`` are drawn as thick grey
    lines (solid, then dashed) for the others to be read against; the plain cosine is added left."""
    fig = Figure(figsize=(12, 4.4), layout="constrained")
    left, right = fig.subplots(1, 2)
    x, x_inner = _degrees(theta), _degrees(inner)
    styles = iter(["k-", "k--", "k:"])
    colours = iter(["tab:red", "tab:green", "tab:blue", "tab:purple", "tab:brown"])
    for name, (f, scaling) in curves.items():
        if name in references:
            style = dict(fmt=next(styles), linewidth=3, alpha=0.35)
        else:
            style = dict(fmt="-", color=next(colours))
        fmt = style.pop("fmt")
        left.plot(x, _np(f), fmt, label=name, **style)
        right.plot(x_inner, _np(scaling), fmt, label=name, **style)
    left.plot(x, np.cos(_np(theta)), color="0.6", linewidth=0.8, label="cos θ (no margin)")
    left.set_ylabel("target logit f(θ)")
    right.set_ylabel("gradient scaling term ∂f/∂cos θ")
    right.set_ylim(0, 2)
    for ax in (left, right):
        ax.set_xlabel("target angle θ (degrees)")
        ax.set_xlim(0, 180)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return fig


def norm_study_figure(norms: Mapping[float, object], is_easy, aucs: Mapping[float, float],
                      mu_trace, sigma_trace, traced_scale: float) -> Figure:
    """Top: histograms of feature norms of easy and hard images, one panel per scale (``norms``:
    s -> norms, ``aucs``: s -> AUC of the norm as an easy-image detector). Bottom: AdaFace's running
    norm statistics μ and σ during the training at ``traced_scale`` (log scale: σ starts at 100)."""
    fig = Figure(figsize=(11, 7.5), layout="constrained")
    scales = list(norms)
    axes = fig.subplot_mosaic([[str(s) for s in scales], ["stats"] * len(scales)])
    easy = _np(is_easy) == 1
    everything = np.concatenate([_np(n) for n in norms.values()])
    bins = np.linspace(0, float(np.quantile(everything, 0.99)), 40)
    for s in scales:
        ax, n = axes[str(s)], _np(norms[s])
        ax.hist(n[easy], bins=bins, alpha=0.6, label="difficulty 0 (easy)")
        ax.hist(n[~easy], bins=bins, alpha=0.6, label="difficulty 1 (hard)")
        ax.set_title(f"AdaFace, s = {s}: AUC(norm → easy) = {aucs[s]:.2f}", fontsize="medium")
        ax.set_xlabel("feature norm ‖x‖")
        ax.set_ylabel("images")
        ax.legend()
    ax = axes["stats"]
    ax.plot(_np(mu_trace), label="μ (running mean of the norms)")
    ax.plot(_np(sigma_trace), label="σ (running std of the norms)")
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_title(f"AdaFace's norm statistics, s = {traced_scale}")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def subcenter_noise_figure(share_clean: float, share_noisy: float, to_dominant, flipped,
                           cut: float = 75) -> Figure:
    """Sub-center ArcFace on noisy labels. Left: the share of clean and of flipped images whose
    nearest sub-centre is the dominant one of their labelled class. Right: densities of each image's
    angle (degrees) to that dominant sub-centre, clean against flipped, with the cut at ``cut``."""
    fig = Figure(figsize=(12, 4), layout="constrained")
    left, right = fig.subplots(1, 2)
    groups = ["clean labels", "flipped labels"]
    left.bar(groups, [share_clean, share_noisy], color="tab:blue", label="at the dominant sub-centre")
    left.bar(groups, [1 - share_clean, 1 - share_noisy], bottom=[share_clean, share_noisy],
             color="tab:orange", label="at one of the other two")
    left.set_ylabel("share of the images")
    left.legend(loc="upper right")
    angles, noisy = _np(to_dominant), _np(flipped).astype(bool)
    bins = np.linspace(0, 120, 49)
    right.hist(angles[~noisy], bins=bins, alpha=0.6, density=True, label="clean labels")
    right.hist(angles[noisy], bins=bins, alpha=0.6, density=True, label="flipped labels")
    right.axvline(cut, color="k", linewidth=0.8)
    right.set_xlabel("angle to the dominant sub-centre of the labelled class (degrees)")
    right.set_ylabel("density")
    right.legend()
    return fig
