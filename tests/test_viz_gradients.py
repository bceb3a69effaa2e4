"""The gradient figures of chapter 6 and their widget, headless."""
from __future__ import annotations

import math

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


def test_softmax_pull_panels_one_panel_per_setting_and_p2sgrad_dashed():
    import torch

    from frbook.viz.gradients import softmax_pull_panels

    theta = torch.linspace(0.0, math.pi, 181, dtype=torch.float64)
    panels = {"scale": [("s = 16", losses.get("cosface", s=16, m=0.35), 100),
                        ("s = 64", losses.get("cosface", s=64, m=0.35), 100)],
              "classes": [("C = 10", losses.get("arcface", s=64, m=0.5), 10)]}
    fig = softmax_pull_panels(panels, theta)
    first, second = fig.axes
    assert [ax.get_title() for ax in fig.axes] == ["scale", "classes"]
    assert [ln.get_label() for ln in first.get_lines()] == ["s = 16", "s = 64", "P2SGrad: 1 − cos θ"]
    expected = 1 - gradients.target_probability(panels["scale"][1][1], theta, 100).numpy()
    np.testing.assert_allclose(first.get_lines()[1].get_ydata(), expected)
    assert second.get_lines()[-1].get_linestyle() == "--"


def test_probability_and_pull_two_panels_one_curve_per_scale_pull_on_a_log_axis():
    from frbook.viz.gradients import probability_and_pull

    theta = np.linspace(0, math.pi / 2, 7)
    p = 1 / (1 + 149 * np.exp(16 * (0 - np.cos(theta))))
    fig = probability_and_pull(theta, {4.0: (p / 2, 4 * (1 - p / 2)), 16.0: (p, 16 * (1 - p))})
    left, right = fig.axes
    assert [ln.get_label() for ln in left.get_lines()] == ["s = 4", "s = 16"]
    np.testing.assert_allclose(right.get_lines()[1].get_ydata(), 16 * (1 - p))
    np.testing.assert_allclose(left.get_lines()[0].get_xdata(), np.degrees(theta))
    assert right.get_yscale() == "log" and left.get_xlim() == (0, 90)
