"""Plots of evaluation results: score histograms, ROC curves, CMC curves.

Pure functions: data in, a matplotlib ``Figure`` out; nothing is computed here that
``frbook.eval`` does not compute. Pass ``ax=`` to draw into an existing axes (to overlay
several models, call again with the same ``ax``); otherwise a new Figure is made without
touching pyplot's global state. In Jupyter, a returned Figure displays when it is the last
expression of a cell; elsewhere use ``fig.savefig(...)``.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

__all__ = ["score_histogram", "roc_curve_plot", "cmc_plot"]

GENUINE_COLOR = "tab:green"
IMPOSTOR_COLOR = "tab:red"


def _array(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().float()
    return np.asarray(x)


def _axes(ax, figsize=(5.5, 4)):
    if ax is None:
        fig = Figure(figsize=figsize, layout="constrained")
        ax = fig.add_subplot()
    return ax


def score_histogram(scores, issame, threshold=None, ax=None):
    """Histograms of genuine and impostor pair scores on shared bins, with an optional threshold.

    The overlap of the two histograms is where a verifier errs: impostors to the right of the
    threshold are false accepts, genuine pairs to its left false rejects. Scores are cosine
    similarities; densities are plotted so that unequal pair counts compare fairly.
    """
    s = _array(scores).astype(np.float64).ravel()
    same = _array(issame).astype(bool).ravel()
    if s.size != same.size:
        raise ValueError(f"{s.size} scores but {same.size} issame labels")
    ax = _axes(ax)
    bins = np.histogram_bin_edges(s, bins=min(60, max(10, s.size // 20)))
    common = dict(bins=bins, density=True, alpha=0.55, histtype="stepfilled")
    if same.any():
        ax.hist(s[same], color=GENUINE_COLOR, label=f"genuine ({int(same.sum())})", **common)
    if (~same).any():
        ax.hist(s[~same], color=IMPOSTOR_COLOR, label=f"impostor ({int((~same).sum())})", **common)
    if threshold is not None:
        ax.axvline(float(threshold), color="black", linestyle="--", linewidth=1.2,
                   label=f"threshold {float(threshold):.3f}")
    ax.set_xlabel("cosine similarity of the pair")
    ax.set_ylabel("density")
    ax.set_title("Genuine vs impostor scores")
    ax.legend(loc="upper left", fontsize="small")
    return ax.figure


def roc_curve_plot(fpr, tpr, label=None, ax=None, log_far=True):
    """The ROC curve: true accept rate (TAR) against false accept rate (FAR).

    With ``log_far=True`` the FAR axis is logarithmic, because the operating points that matter
    for face recognition (FAR = 1e-3 ... 1e-6) are squeezed into the left edge of a linear plot.
    Points with FAR = 0 have no place on a log axis and are left out there.
    """
    f = _array(fpr).astype(np.float64).ravel()
    t = _array(tpr).astype(np.float64).ravel()
    if f.size != t.size:
        raise ValueError(f"fpr has {f.size} points but tpr has {t.size}")
    ax = _axes(ax)
    if log_far:
        keep = f > 0
        ax.plot(f[keep], t[keep], label=label, linewidth=1.6)
        ax.set_xscale("log")
        if keep.any():
            ax.set_xlim(left=min(ax.get_xlim()[0], f[keep].min()), right=1.0)
    else:
        ax.plot(f, t, label=label, linewidth=1.6)
        ax.plot([0, 1], [0, 1], color="gray", linestyle=":", linewidth=1)  # chance
        ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("FAR (false accept rate)" + (", log scale" if log_far else ""))
    ax.set_ylabel("TAR (true accept rate)")
    ax.set_title("ROC")
    ax.grid(True, which="both", alpha=0.3)
    if label is not None:
        ax.legend(loc="lower right", fontsize="small")
    return ax.figure


def cmc_plot(cmc, ax=None, label=None):
    """The cumulative match characteristic: identification rate against rank (1, 2, ...)."""
    c = _array(cmc).astype(np.float64).ravel()
    if c.size == 0:
        raise ValueError("cmc is empty")
    ax = _axes(ax)
    ranks = np.arange(1, c.size + 1)
    ax.plot(ranks, c, marker="o" if c.size <= 30 else None, markersize=4, label=label)
    ax.set_xlim(0.5, c.size + 0.5)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("rank r")
    ax.set_ylabel("identification rate (true identity in top r)")
    ax.set_title(f"CMC: rank-1 = {100 * c[0]:.2f}%" if label is None else "CMC")
    ax.grid(True, alpha=0.3)
    if label is not None:
        ax.legend(loc="lower right", fontsize="small")
    return ax.figure
