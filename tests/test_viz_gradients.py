"""The gradient figures of chapter 6 and their widget, headless."""
from __future__ import annotations


import numpy as np
import pytest

from frbook import losses
from frbook.losses import gradients
from frbook.viz.gradients import gradient_curves, gradient_panel


def test_curves_draw_the_closed_form_magnitude_one_line_per_loss():
    items = {"CosFace": losses.get("cosface", s=30, m=0.35), "P2SGrad": losses.get("p2sgrad")}
    fig = gradient_curves(items, num_classes=1000)
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2
    theta = np.radians(lines[0].get_xdata())
    import torch
    expected = gradients.target_angle_gradient(items["CosFace"], torch.as_tensor(theta), 1000).numpy()
    np.testing.assert_allclose(lines[0].get_ydata(), expected, rtol=1e-12)
    np.testing.assert_allclose(lines[1].get_ydata(), (1 - np.cos(theta)) * np.sin(theta), rtol=1e-12)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[0].startswith("CosFace (s=30") and "m=0.35" in labels[0]


def test_normalised_curves_peak_at_one_and_bad_c_is_refused():
    fig = gradient_curves(losses.get("arcface", s=64, m=0.5), num_classes=10, normalise=True)
    assert max(fig.axes[0].get_lines()[0].get_ydata()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="num_classes"):
        gradient_curves(losses.get("normface"), num_classes=1)


def test_panel_shows_probability_and_both_pulls_and_reuses_its_figure():
    fig = gradient_panel(losses.get("cosface", s=64, m=0.35), num_classes=10_000)
    left, right = fig.axes
    p = left.get_lines()[0].get_ydata()
    assert 0 <= p.min() and p.max() <= 1 and p[0] > 0.99 and p[-1] < 0.01  # falls from 1 to 0
    assert len(right.get_lines()) == 2 and max(right.get_lines()[1].get_ydata()) == pytest.approx(1.0)
    again = gradient_panel(losses.get("arcface"), num_classes=10, fig=fig)
    assert again is fig and len(fig.axes) == 2


def test_gradient_explorer_redraws_and_shows_errors():
    pytest.importorskip("ipywidgets")
    from frbook.viz.widgets import gradient_explorer

    box = gradient_explorer("arcface")
    assert type(box.loss).__name__ == "ArcFace" and box.image.value[:4] == b"\x89PNG"
    first = box.image.value
    box.controls["loss"].value = "cosface"
    assert type(box.loss).__name__ == "CosFace" and box.image.value != first
    assert box.controls["arcface_m"].layout.display == "none" and box.controls["cosface_m"].layout.display is None
    box.controls["s"].value = 8.0
    assert box.loss.s == 8.0
    box.update(num_classes=1)
    assert "C must be" in box.message.value
    box.update(m=3.0)  # CosFace refuses m >= 2: shown, not raised
    assert "m must be" in box.message.value
    box.update()
    assert box.message.value == ""
    with pytest.raises(ValueError, match="initial"):
        gradient_explorer("p2sgrad")
