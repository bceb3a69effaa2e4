"""Interactive versions of the margin and gradient figures, for a notebook running in Jupyter.

ipywidgets is imported inside each function, so the rest of :mod:`frbook` works without it.
The figure is rendered to PNG and shown in an ``ipywidgets.Image``: it does not depend on the
matplotlib backend of the notebook, and a saved widget state shows the last drawing in a static
page.
"""
from __future__ import annotations

import html
import io

from matplotlib.figure import Figure

from .. import losses as _losses
from ..losses.arcface import FALLBACKS
from .gradients import gradient_panel
from .margins import margin_panel

__all__ = ["margin_explorer", "gradient_explorer", "MARGIN_LOSSES", "GRADIENT_LOSSES"]

MARGIN_LOSSES = ("normface", "sphereface", "cosface", "arcface", "combined")
_LABELS = {"normface": "NormFace", "sphereface": "SphereFace", "cosface": "CosFace",
           "arcface": "ArcFace", "combined": "Combined (m1, m2, m3)"}

# Each loss's controls: (control key, the loss's parameter name). Keys are distinct where the
# ranges differ (ArcFace's m is an angle in [0, pi), CosFace's a cosine in [0, 2), SphereFace's
# an integer), so switching losses never clamps one loss's value into another's range.
_CONTROLS = {
    "normface": [("s", "s")],
    "sphereface": [("s", "s"), ("sphereface_m", "m"), ("lamb", "lamb")],
    "cosface": [("s", "s"), ("cosface_m", "m")],
    "arcface": [("s", "s"), ("arcface_m", "m"), ("fallback", "fallback")],
    "combined": [("s", "s"), ("m1", "m1"), ("m2", "m2"), ("m3", "m3")],
}
_CONFIDENCE = 0.99  # the dashed line of the boundaries plot: where s shows


def margin_explorer(initial: str = "arcface", confidence: float | None = _CONFIDENCE):
    """A loss dropdown and parameter sliders that redraw :func:`frbook.viz.margins.margin_panel`.

    The controls shown follow the loss: s for all; m (radians) and the fallback for ArcFace;
    m (a cosine) for CosFace; the integer m and lambda for SphereFace; m1, m2, m3 for the combined
    margin. Each change builds the loss with :func:`frbook.losses.get`, so the loss's own checks
    apply; a parameter it rejects is shown as a message, and the last figure stays.

    The dashed lines of the boundaries plot mark where the true class reaches probability
    ``confidence`` (0.99) at the chosen s: the only place where s changes the picture.

    Returns an ``ipywidgets.VBox``, with, for scripts and tests:
    ``controls`` (dict of the widgets by key), ``update(**overrides)`` (redraw now, with the
    current control values and ``overrides``, e.g. ``update(loss="combined", m1=0)``), ``loss``
    (the loss drawn last, or None), ``figure`` (the matplotlib Figure, reused across redraws),
    ``image`` (the Image widget) and ``message`` (an HTML widget holding the last error, or "").
    """
    import ipywidgets as w  # lazily: only the widgets need it

    if initial not in MARGIN_LOSSES:
        raise ValueError(f"initial must be one of {', '.join(MARGIN_LOSSES)}; got {initial!r}")

    style = {"description_width": "80px"}

    def slider(kind, **kwargs):  # a Layout of its own each: hiding one must not hide the others
        return kind(continuous_update=False, style=style, layout=w.Layout(width="330px"), **kwargs)

    controls = {
        "loss": w.Dropdown(options=[(_LABELS[k], k) for k in MARGIN_LOSSES], value=initial,
                           description="loss", style=style, layout=w.Layout()),
        "fallback": w.Dropdown(options=list(FALLBACKS), value="classic",
                               description="fallback", style=style,
                               layout=w.Layout()),
        **_margin_sliders(slider),
        "m1": slider(w.FloatSlider, value=1.0, min=0.5, max=2.0, step=0.01, description="m1"),
        "m2": slider(w.FloatSlider, value=0.3, min=0.0, max=1.5, step=0.01, description="m2 (rad)"),
        "m3": slider(w.FloatSlider, value=0.2, min=0.0, max=1.0, step=0.01, description="m3 (cos)"),
    }
    if initial == "sphereface":
        controls["s"].value = 30.0  # SphereFace's default scale
    message = w.HTML(value="")
    image = w.Image(format="png", layout=w.Layout(width="100%", max_width="1100px"))
    figure = Figure(figsize=(11.5, 5.0), layout="constrained")
    order = ["s", "arcface_m", "cosface_m", "sphereface_m", "lamb", "m1", "m2", "m3"]
    box = w.VBox([
        w.HBox([controls["loss"], controls["fallback"]]),
        w.HBox([w.VBox([controls[k] for k in order[:4]]), w.VBox([controls[k] for k in order[4:]])]),
        message,
        image,
    ])
    box.controls, box.message, box.image, box.figure, box.loss = controls, message, image, figure, None

    def show_controls(name: str) -> None:
        wanted = {key for key, _ in _CONTROLS[name]}
        for key, control in controls.items():
            if key != "loss":
                control.layout.display = None if key in wanted else "none"

    def update(**overrides) -> None:
        name = overrides.pop("loss", controls["loss"].value)
        if name not in _CONTROLS:
            message.value = _error(f"unknown loss {name!r}; choose one of {', '.join(MARGIN_LOSSES)}")
            return
        loss = _build_loss(name, _CONTROLS[name], controls, overrides, message)
        if loss is not None:
            margin_panel(loss, fig=figure, confidence=confidence)
            _show(box, loss)

    _wire(box, controls, show_controls, update, initial)
    return box


GRADIENT_LOSSES = ("normface", "cosface", "arcface", "sphereface")
_GRADIENT_CONTROLS = {
    "normface": [("s", "s")],
    "cosface": [("s", "s"), ("cosface_m", "m")],
    "arcface": [("s", "s"), ("arcface_m", "m")],
    "sphereface": [("s", "s"), ("sphereface_m", "m"), ("lamb", "lamb")],
}


def gradient_explorer(initial: str = "arcface"):
    """A loss dropdown and sliders for s, m and the number of classes C that redraw
    :func:`frbook.viz.gradients.gradient_panel`: the target probability, and the loss's pull
    towards the centre beside P2SGrad's.

    Returns an ``ipywidgets.VBox`` with ``controls``, ``update(**overrides)`` (e.g.
    ``update(loss="cosface", num_classes=100)``), ``loss`` (the loss drawn last), ``figure``,
    ``image`` and ``message``, as :func:`margin_explorer`.
    """
    import ipywidgets as w

    if initial not in GRADIENT_LOSSES:
        raise ValueError(f"initial must be one of {', '.join(GRADIENT_LOSSES)}; got {initial!r}")
    style = {"description_width": "90px"}

    def slider(kind, **kwargs):
        return kind(continuous_update=False, style=style, layout=w.Layout(width="330px"), **kwargs)

    controls = {
        "loss": w.Dropdown(options=[(_LABELS[k], k) for k in GRADIENT_LOSSES], value=initial,
                           description="loss", style=style),
        "num_classes": slider(w.IntText, value=10_000, description="C (classes)"),
        **_margin_sliders(slider),
    }
    message = w.HTML(value="")
    image = w.Image(format="png", layout=w.Layout(width="100%", max_width="1100px"))
    figure = Figure(figsize=(11.5, 4.6), layout="constrained")
    margins = ["arcface_m", "cosface_m", "sphereface_m", "lamb"]
    box = w.VBox([w.HBox([controls["loss"], controls["num_classes"]]),
                  w.HBox([controls["s"], w.VBox([controls[k] for k in margins])]), message, image])
    box.controls, box.message, box.image, box.figure, box.loss = controls, message, image, figure, None

    def show_controls(name: str) -> None:
        wanted = {key for key, _ in _GRADIENT_CONTROLS[name]}
        for key in margins:
            controls[key].layout.display = None if key in wanted else "none"

    def update(**overrides) -> None:
        name = overrides.pop("loss", controls["loss"].value)
        num_classes = overrides.pop("num_classes", controls["num_classes"].value)
        if name not in _GRADIENT_CONTROLS:
            message.value = _error(f"unknown loss {name!r}; choose one of {', '.join(GRADIENT_LOSSES)}")
            return
        if not isinstance(num_classes, int) or num_classes < 2:
            message.value = _error(f"C must be an integer of at least 2, got {num_classes!r}")
            return
        loss = _build_loss(name, _GRADIENT_CONTROLS[name], controls, overrides, message)
        if loss is not None:
            gradient_panel(loss, num_classes, fig=figure)
            _show(box, loss)

    _wire(box, controls, show_controls, update, initial)
    return box


def _margin_sliders(slider) -> dict:
    """The scale and margin controls both explorers share, keyed as in their control maps."""
    import ipywidgets as w

    return {
        "s": slider(w.FloatSlider, value=64.0, min=1.0, max=128.0, step=1.0, description="s (scale)"),
        "arcface_m": slider(w.FloatSlider, value=0.5, min=0.0, max=1.5, step=0.01, description="m (rad)",
                            readout_format=".2f"),
        "cosface_m": slider(w.FloatSlider, value=0.35, min=0.0, max=1.0, step=0.01, description="m (cos)",
                            readout_format=".2f"),
        "sphereface_m": slider(w.IntSlider, value=4, min=1, max=8, step=1, description="m (integer)"),
        "lamb": slider(w.FloatSlider, value=5.0, min=0.0, max=20.0, step=0.5, description="λ"),
    }


def _build_loss(name, control_map, controls, overrides, message):
    """The loss ``name`` with the controls' values (and ``overrides``), or None after showing why
    the loss refused them: its own validation, shown in the widget rather than raised."""
    params = {param: controls[key].value for key, param in control_map}
    params.update(overrides)
    try:
        return _losses.get(name, **params)
    except (ValueError, TypeError) as error:
        message.value = _error(str(error))
        return None


def _show(box, loss) -> None:
    """Put the freshly drawn figure in the image, clear the message, remember the loss."""
    box.image.value = _png(box.figure)
    box.message.value = ""
    box.loss = loss


def _wire(box, controls, show_controls, update, initial) -> None:
    """Redraw on every control change (showing the new loss's controls first); draw once now."""
    def on_change(change) -> None:
        if change["owner"] is controls["loss"]:
            show_controls(change["new"])
        update()

    for control in controls.values():
        control.observe(on_change, names="value")
    box.update = update
    show_controls(initial)
    update()


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def _error(text: str) -> str:
    return f'<span style="color:#b00020">Not drawn: {html.escape(text)}</span>'

