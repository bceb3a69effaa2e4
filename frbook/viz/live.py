"""Live figures that need no kernel: the margin and gradient explorers and Search-Softmax's
probability reduction h(a, p), drawn by the browser.

The target logits and h(a, p) are closed-form, so a page can evaluate them itself. Each function
here returns an ``IPython.display.HTML`` holding a ``<div class="frbook-live">`` with the figure's starting
parameters (JSON) and the script ``static/live.js``, inlined, which draws the figure in SVG and
redraws it as its sliders move: in the static HTML book (offline, no kernel) and in JupyterLab
alike. The script mirrors :mod:`frbook.losses` (and :mod:`frbook.losses.search_softmax`);
``tests/test_live.py`` checks it against them.

The ipywidgets explorers of :mod:`frbook.viz.widgets` stay for readers with a kernel: they build
the library's losses themselves and take any parameter the loss takes.
"""
from __future__ import annotations

import html
import json
from functools import lru_cache
from pathlib import Path

from .. import losses as _losses
from ..losses.angles import check_number
from ..losses.search_softmax import cosface_margin

__all__ = ["margin_figure", "gradient_figure", "reduction_figure", "LIVE_LOSSES", "script"]

SCRIPT = Path(__file__).with_name("static") / "live.js"
# The losses the browser knows, with the parameters its sliders set.
LIVE_LOSSES = {
    "normface": ("s",),
    "cosface": ("s", "m"),
    "arcface": ("s", "m", "fallback"),
    "sphereface": ("s", "m", "lamb"),
    "combined": ("s", "m1", "m2", "m3"),
}
GRADIENT_LIVE_LOSSES = ("normface", "cosface", "arcface", "sphereface")


@lru_cache(maxsize=1)
def script() -> str:
    """The JavaScript of the live figures (read once)."""
    return SCRIPT.read_text(encoding="utf-8")


def _params(loss: str, allowed, params: dict) -> dict:
    """Check ``loss`` and ``params`` by building the library's loss; return its hyper-parameters."""
    if loss not in allowed:
        raise ValueError(f"live figures draw {', '.join(allowed)}; got loss {loss!r}")
    unknown = set(params) - set(LIVE_LOSSES[loss])
    if unknown:
        raise ValueError(
            f"{loss}: the live figure sets only {', '.join(LIVE_LOSSES[loss])}; "
            f"got {', '.join(sorted(unknown))}"
        )
    if loss == "sphereface":
        params = {"s": 30.0, "lamb": 5.0, **params}  # a fixed lambda: the page has no training step
    built = _losses.get(loss, **params)  # the loss's own checks and messages
    hp = built.hparams()
    return {key: hp[key] for key in LIVE_LOSSES[loss]}


def _figure(config: dict, description: str):
    from IPython.display import HTML  # lazily: the rest of frbook needs no IPython

    attrs = html.escape(json.dumps(config), quote=True)
    # The figure's text stands in until the script runs (and for a reader without JavaScript).
    return HTML(
        f'<div class="frbook-live" data-config="{attrs}">{html.escape(description)}</div>'
        f"<script>{script()}</script>"
    )


def margin_figure(loss: str = "arcface", confidence: float = 0.99, **params):
    """The margin explorer, live: the loss's target logit f(theta) beside its two-class decision
    boundaries, with a loss menu and sliders for s and the margins.

    ``params`` are the loss's starting parameters (``s``, ``m``, ``fallback`` ...), checked by
    :func:`frbook.losses.get`. The dashed line of the boundaries is where the true class reaches
    probability ``confidence`` at the chosen s, as in :func:`frbook.viz.margins.margin_panel`.
    """
    if not (isinstance(confidence, (int, float)) and 0.5 < confidence < 1):
        raise ValueError(f"confidence must be a probability in (0.5, 1); got {confidence!r}")
    config = {"kind": "margin", "loss": loss, "params": _params(loss, tuple(LIVE_LOSSES), params),
              "losses": list(LIVE_LOSSES), "confidence": float(confidence)}
    return _figure(config, f"Live margin figure ({loss}): it needs JavaScript.")


def gradient_figure(loss: str = "arcface", num_classes: int = 10_000, **params):
    """The gradient explorer, live: the target probability P_y against the target angle, and the
    loss's pull |dL/dtheta| beside P2SGrad's (each divided by its maximum), with sliders for s,
    the margin and the number of classes C (other cosines 0), as
    :func:`frbook.viz.gradients.gradient_panel`.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes (C) must be an integer >= 2; got {num_classes!r}")
    config = {"kind": "gradient", "loss": loss, "params": _params(loss, GRADIENT_LIVE_LOSSES, params),
              "losses": list(GRADIENT_LIVE_LOSSES), "num_classes": num_classes}
    return _figure(config, f"Live gradient figure ({loss}): it needs JavaScript.")


def reduction_figure(a: float = -100.0, s: float = 30.0):
    """Search-Softmax's reduction, live: h(a, p) = p / (a p + 1 - a) against the softmax
    probability p, beside the identity (a = 0), as :func:`frbook.losses.search_softmax.reduce_probability`.

    A slider sets ``a`` through log10(1 - a), from 0 to 6 (a from 0 to -999999), another the
    scale ``s``; the line under the figure gives the CosFace margin that a constant ``a`` is at
    that scale, m = log(1 - a) / s (:func:`frbook.losses.search_softmax.cosface_margin`).
    """
    a = check_number("a", a, lambda v: v <= 0, "<= 0 (a > 0 would raise the target probability)")
    s = check_number("s", s, lambda v: v > 0, "> 0 (the scale of the logits)")
    config = {"kind": "reduction", "params": {"a": a, "s": s}}
    return _figure(config, f"Live figure of h(a, p) at a = {a:g}, the CosFace margin "
                           f"m = {cosface_margin(a, s):.3f} at s = {s:g}: it needs JavaScript.")
