"""Figures of a comparison of losses: the matrix of paired differences between every two losses
and accuracy against training time (chapter 9), accuracy against a loss's hyperparameters beside a
loss that has none (chapter 6).

Pure functions: summaries that :mod:`frbook.results` computed in, a matplotlib ``Figure`` out
(built without pyplot). The difference matrix is a statistical heat map, drawn with seaborn: a
diverging palette centred on zero, so that the sign of a difference is its colour.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, ScalarFormatter

__all__ = ["difference_heatmaps", "accuracy_against_time", "hyperparameter_sweeps"]

# Round numbers for a log axis of seconds: readable ticks instead of powers of ten.
_SECONDS_TICKS = (10, 20, 30, 50, 100, 200, 300, 500, 1000, 2000)


def difference_heatmaps(matrices: Mapping[str, tuple], labels: list[str], name: Callable[[str], str] = str,
                        scale: float = 100, unit: str = "accuracy points") -> Figure:
    """One heat map per panel title of ``matrices`` (title -> ``(mean, decided)`` as
    :func:`frbook.results.difference_matrix` returns them for ``labels``): row minus column times
    ``scale``, blue where the row is better, red where worse, on a colour range symmetric about 0;
    a black dot on every pair the verdict tells apart."""
    import seaborn as sns  # imported on use: only this figure needs it

    fig = Figure(figsize=(12.5, 6), layout="constrained")
    axes = fig.subplots(1, len(matrices))
    axes = np.atleast_1d(axes)
    ticks = [name(label) for label in labels]
    for ax, (title, (mean, decided)) in zip(axes, matrices.items()):
        values = scale * np.asarray(mean, dtype=float)
        limit = float(np.abs(values).max()) or 1.0
        with warnings.catch_warnings():  # seaborn 0.13 with matplotlib >= 3.10: Colormap.set_bad's notice
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            sns.heatmap(values, ax=ax, cmap="RdBu", vmin=-limit, vmax=limit, center=0, square=True,
                        xticklabels=ticks, yticklabels=ticks, linewidths=0.5, linecolor="white",
                        cbar_kws={"shrink": 0.7, "label": f"row − column ({unit})"})
        rows, cols = np.nonzero(np.asarray(decided, dtype=bool))
        ax.scatter(cols + 0.5, rows + 0.5, s=10, c="black")  # heat map cells are centred on i + 0.5
        ax.tick_params(axis="both", labelsize=8)
        ax.set_title(title)
    return fig


def accuracy_against_time(panels: Mapping[str, Mapping[str, tuple]], name: Callable[[str], str] = str,
                          markers: Mapping[str, str] | None = None) -> Figure:
    """Mean accuracy (%) against mean training time (s, log axis), with standard deviations as
    error bars. ``panels``: title -> {label: (seconds, accuracy)}, each a ``{"mean", "std"}`` of
    :func:`frbook.results.summarise` (accuracy as a fraction); ``markers``: label -> marker
    (default a circle). A label keeps its colour in every panel; one legend serves them all."""
    markers = markers or {}
    fig = Figure(figsize=(12.5, 5.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    every = list(dict.fromkeys(label for points in panels.values() for label in points))
    colours = {label: f"C{i}" if len(every) <= 10 else _tab20(i) for i, label in enumerate(every)}
    for ax, (title, points) in zip(axes, panels.items()):
        for label, (sec, acc) in points.items():
            ax.errorbar(sec["mean"], 100 * acc["mean"], xerr=sec["std"], yerr=100 * acc["std"],
                        fmt=markers.get(label, "o"), capsize=3, markersize=7, color=colours[label],
                        label=name(label))
        ax.set_xscale("log")
        lo, hi = ax.get_xlim()
        ax.set_xticks([t for t in _SECONDS_TICKS if lo <= t <= hi])
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("training time per seed (s, log axis)")
        ax.set_ylabel("verification accuracy (%)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    handles, texts = [], []
    for ax in axes:  # one entry per label, whichever panel has it
        for handle, text in zip(*ax.get_legend_handles_labels()):
            if text not in texts:
                handles.append(handle)
                texts.append(text)
    fig.legend(handles, texts, loc="outside right center", fontsize=8)
    return fig


def hyperparameter_sweeps(panels: Mapping[str, Mapping[str, tuple]], bands: Mapping[str, dict],
                          log2: tuple = ()) -> Figure:
    """Accuracy (%) against a hyperparameter, one panel per x label of ``panels`` (x label ->
    {name: (values, stats)}, ``stats`` one ``{"mean", "std"}`` fraction per value), with error bars.
    Each of ``bands`` (name -> ``{"mean", "std"}``), a loss without that hyperparameter, is a line
    with a ± one standard deviation band in every panel. Panels named in ``log2`` get a base-2 log
    axis ticked at the values. The n-th sweep of a panel and each band keep one colour throughout."""
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    first_band = max(len(sweeps) for sweeps in panels.values())
    for ax, (xlabel, sweeps) in zip(axes, panels.items()):
        for k, (name, (values, stats)) in enumerate(sweeps.items()):
            ax.errorbar(values, [100 * st["mean"] for st in stats], yerr=[100 * st["std"] for st in stats],
                        marker="o", capsize=3, color=f"C{k}", label=name)
        for k, (name, st) in enumerate(bands.items(), start=first_band):
            mean, std = 100 * st["mean"], 100 * st["std"]
            ax.axhspan(mean - std, mean + std, color=f"C{k}", alpha=0.2)
            ax.axhline(mean, color=f"C{k}", linewidth=1.2, label=name)
        if xlabel in log2:
            ticks = sorted({v for values, _ in sweeps.values() for v in values})
            ax.set_xscale("log", base=2)
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_xlabel(xlabel)
        ax.set_ylabel("verification accuracy (%)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    return fig


def _tab20(i: int):
    from matplotlib import colormaps

    return colormaps["tab20"](i % 20)
