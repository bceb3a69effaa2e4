"""Chapter 4's figures (frbook.viz.adaptive) and the training hook (frbook.train.hooks).

The figures are checked through their artists: one line or bar group per input, the data plotted
is the data given, the labels name what the chapter's captions describe.
"""
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from frbook import losses  # noqa: E402
from frbook.train import watching  # noqa: E402
from frbook.viz import adaptive  # noqa: E402


def test_scale_probability_curves_one_line_per_scale_plus_fixed_dashed():
    theta = np.linspace(0, math.pi / 2, 11)
    curves = {4: np.full(11, 0.1), 64: np.linspace(1, 0, 11)}
    fig = adaptive.scale_probability_curves(theta, curves, fixed=(13.1, np.full(11, 0.5)))
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    lines = [ln for ln in ax.get_lines() if ln.get_label().startswith("s =")]
    assert [ln.get_label() for ln in lines][:2] == ["s = 4", "s = 64"]
    assert lines[2].get_linestyle() == "--" and "13.1" in lines[2].get_label()
    np.testing.assert_allclose(lines[1].get_xdata(), np.degrees(theta))
    np.testing.assert_allclose(lines[1].get_ydata(), np.linspace(1, 0, 11))
    assert ax.get_xlim() == (0, 90)


def test_adacos_trace_two_panels_and_a_twin_with_one_legend():
    steps = np.arange(20.0)
    fig = adaptive.adacos_trace(10 + steps, 90 - steps, 0.1 + steps / 100, fixed_scale=5.4)
    left, mid, right = fig.axes
    np.testing.assert_allclose(left.get_lines()[0].get_ydata(), 10 + steps)
    assert left.get_lines()[1].get_ydata()[0] == 5.4  # the fixed scale, a horizontal line
    legend = [t.get_text() for t in mid.get_legend().get_texts()]
    assert legend == ["median target angle θ_med", "spread (std) of the non-target cosines"]
    np.testing.assert_allclose(right.get_lines()[0].get_ydata(), 0.1 + steps / 100)


def test_curricular_negative_logits_identity_line_and_one_curve_per_t():
    cos_j = torch.linspace(-1, 1, 21, dtype=torch.float64)
    fig = adaptive.curricular_negative_logits(cos_j, {0.0: cos_j * 0, 0.5: cos_j / 2}, threshold=0.2)
    ax = fig.axes[0]
    labels = [ln.get_label() for ln in ax.get_lines()]
    assert labels[0].startswith("cos θ_j") and labels[1:3] == ["CurricularFace, t = 0.0", "CurricularFace, t = 0.5"]
    np.testing.assert_allclose(ax.get_lines()[2].get_ydata(), (cos_j / 2).numpy())
    assert ax.get_lines()[3].get_xdata()[0] == 0.2  # the threshold


def test_curricular_trace_nan_steps_are_plotted_as_gaps():
    factor = np.array([np.nan, 0.5, 0.6])
    fig = adaptive.curricular_trace([0, 0.1, 0.2], [0.3, 0.3, 0.3], factor, [0.5, 0.4, 0.3])
    left, mid, right = fig.axes
    assert [ln.get_label() for ln in left.get_lines()] == ["r: batch mean of cos θ_y", "t: its running average"]
    assert np.isnan(mid.get_lines()[0].get_ydata()[0])
    assert mid.get_ylim() == right.get_ylim() == (0, 1.35)


def test_logit_and_gradient_scaling_references_are_grey_and_thick():
    theta = torch.linspace(0, math.pi, 7, dtype=torch.float64)
    inner = theta[1:-1]
    curves = {"ArcFace": (torch.cos(theta + 0.4), torch.ones(5)), "AdaFace": (torch.cos(theta), 2 * torch.ones(5))}
    fig = adaptive.logit_and_gradient_scaling(theta, inner, curves, references=["ArcFace"])
    left, right = fig.axes
    assert [ln.get_label() for ln in left.get_lines()] == ["ArcFace", "AdaFace", "cos θ (no margin)"]
    assert [ln.get_label() for ln in right.get_lines()] == ["ArcFace", "AdaFace"]
    arc = left.get_lines()[0]
    assert arc.get_linewidth() == 3 and arc.get_alpha() == 0.35
    np.testing.assert_allclose(right.get_lines()[1].get_ydata(), 2.0)
    np.testing.assert_allclose(right.get_lines()[0].get_xdata(), np.degrees(inner.numpy()))


def test_norm_study_figure_one_histogram_panel_per_scale_and_the_trace():
    g = torch.Generator().manual_seed(0)
    norms = {64: torch.rand(40, generator=g) * 10, 32: torch.rand(40, generator=g) * 10}
    is_easy = torch.cat([torch.ones(20), torch.zeros(20)])
    fig = adaptive.norm_study_figure(norms, is_easy, {64: 0.3, 32: 0.6}, np.linspace(20, 5, 9),
                                     np.linspace(100, 10, 9), traced_scale=64)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["AdaFace, s = 64: AUC(norm → easy) = 0.30", "AdaFace, s = 32: AUC(norm → easy) = 0.60",
                      "AdaFace's norm statistics, s = 64"]
    first = fig.axes[0]
    assert sum(p.get_height() for p in first.patches) == 40  # both histograms: every image once
    assert fig.axes[2].get_yscale() == "log"


def test_subcenter_noise_figure_bars_add_up_to_one_and_densities_split_by_label():
    angles = torch.tensor([10.0, 20.0, 80.0, 100.0])
    flipped = torch.tensor([False, False, True, True])
    fig = adaptive.subcenter_noise_figure(0.8, 0.3, angles, flipped, cut=75)
    bars, hist = fig.axes
    heights = [p.get_height() for p in bars.patches]
    assert np.allclose(heights[:2], [0.8, 0.3]) and np.allclose(np.add(heights[:2], heights[2:]), 1)
    assert [t.get_text() for t in hist.get_legend().get_texts()] == ["clean labels", "flipped labels"]
    assert hist.get_lines()[0].get_xdata()[0] == 75


def test_watching_records_every_forward_call_and_removes_its_hook():
    loss = losses.get("normface", s=16)
    cos = torch.zeros(3, 4)
    labels = torch.tensor([0, 1, 2])
    with watching(loss, lambda module, c, y: (module.s, tuple(c.shape), y.tolist())) as trace:
        loss(cos, labels)
        loss(cos[:2], labels[:2])
    assert trace == [(16, (3, 4), [0, 1, 2]), (16, (2, 4), [0, 1])]
    loss(cos, labels)  # after the block: not recorded
    assert len(trace) == 2 and not loss._forward_hooks


def test_watching_nothing_registers_nothing_and_an_error_still_removes_the_hook():
    loss = losses.get("normface", s=16)
    with watching(loss, None) as trace:
        loss(torch.zeros(2, 3), torch.tensor([0, 1]))
    assert trace == [] and not loss._forward_hooks
    try:
        with watching(loss, lambda *args: 1):
            raise RuntimeError("training failed")
    except RuntimeError:
        pass
    assert not loss._forward_hooks
