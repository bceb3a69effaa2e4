"""The margin figures, the NormFace bound, the margin widget and the 3-D feature plot.

Figures are drawn headless (Agg) and checked through their artists: the decision boundaries are
read back from the plotted lines and compared with the closed forms of the losses.
"""
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from frbook import losses  # noqa: E402
from frbook.viz import margins  # noqa: E402
from frbook.viz.sphere import features_3d  # noqa: E402


def line(ax, gid):
    (found,) = [ln for ln in ax.get_lines() if ln.get_gid() == gid]
    return found


def boundary_points(fig, gid, degrees=True):
    ax = fig.axes[0]
    x, y = (np.asarray(v, dtype=float) for v in line(ax, gid).get_data())
    if degrees:
        x, y = np.radians(x), np.radians(y)
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


# ---------------------------------------------------------------- target logit curves

def test_curves_one_line_per_loss_plus_cosine_and_legend_parameters():
    named = {"CosFace": losses.get("cosface", m=0.35), "ArcFace": losses.get("arcface", m=0.5)}
    fig = margins.target_logit_curves(named)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    curves = [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]
    assert len(curves) == 1 + len(named)
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts[0].startswith("cos θ")
    assert "m=0.35" in texts[1] and "ArcFace" in texts[2] and "fallback=classic" in texts[2]
    assert ax.get_xlim() == (0, 180)


def test_curves_follow_target_logit_and_break_at_fallback_jump():
    arc = losses.get("arcface", m=0.5)
    fig = margins.target_logit_curves([("arc", arc)], degrees=False)
    x, y = fig.axes[0].get_lines()[1].get_data()
    x, y = np.asarray(x), np.asarray(y)
    ok = x < math.pi - 0.5 - 1e-3
    assert np.allclose(y[ok], np.cos(x[ok] + 0.5), atol=1e-12)
    assert np.isnan(y).sum() == 1  # the classic fallback's one jump, at pi - m, is a gap


def test_curves_into_given_axes():
    fig = Figure()
    ax = fig.add_subplot()
    assert margins.target_logit_curves(losses.get("sphereface", lamb=0), ax=ax) is fig


# ---------------------------------------------------------------- decision boundaries

def test_arcface_boundaries_are_parallel_lines_a_constant_angle_m_from_the_diagonal():
    m = 0.5
    fig = margins.decision_boundaries(losses.get("arcface", m=m))
    for gid, (i, j) in (("boundary-1", (0, 1)), ("boundary-2", (1, 0))):
        pts = boundary_points(fig, gid)
        t1, t2 = pts[i], pts[j]  # class 2's line is the mirror image: swap the roles
        away = t1 < math.pi - m - 0.05  # before the fallback takes over
        assert away.sum() > 1000
        np.testing.assert_allclose(t2[away] - t1[away], m, atol=1e-6)


def test_arcface_fallbacks_follow_the_losses_own_target_logit():
    m = 0.5
    # "easy": past 90 degrees the target is plain cos, so class 1's boundary is the diagonal
    t1, t2 = boundary_points(margins.decision_boundaries(losses.get("arcface", m=m, fallback="easy")), "boundary-1")
    late = t1 > math.pi / 2 + 0.01
    np.testing.assert_allclose(t2[late], t1[late], atol=1e-6)
    # "none": cos(t + m) past pi - m equals cos(2 pi - t - m): the boundary turns back down
    t1, t2 = boundary_points(margins.decision_boundaries(losses.get("arcface", m=m, fallback="none")), "boundary-1")
    late = t1 > math.pi - m + 0.01
    np.testing.assert_allclose(t2[late], 2 * math.pi - t1[late] - m, atol=1e-6)
    # "classic": f < -1 past pi - m, no boundary there
    t1, _ = boundary_points(margins.decision_boundaries(losses.get("arcface", m=m)), "boundary-1")
    assert t1.max() <= math.pi - m + 1e-3


def test_normface_boundaries_on_the_diagonal_and_no_margin_region():
    fig = margins.decision_boundaries(losses.get("normface", s=16))
    for gid in ("boundary-1", "boundary-2"):
        t1, t2 = boundary_points(fig, gid)
        np.testing.assert_allclose(t2, t1, atol=1e-6)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert not any(t.startswith("margin") for t in legend)  # no grey region drawn


def test_cosface_gap_is_constant_in_cosine_not_in_angle():
    fig = margins.decision_boundaries(losses.get("cosface", m=0.35), degrees=False)
    t1, t2 = boundary_points(fig, "boundary-1", degrees=False)
    np.testing.assert_allclose(np.cos(t1) - np.cos(t2), 0.35, atol=1e-9)
    gap = t2 - t1
    assert gap.max() - gap.min() > 0.1


def test_boundaries_artists_and_confidence_lines():
    fig = margins.decision_boundaries(losses.get("arcface", s=64, m=0.5), confidence=0.99)
    ax = fig.axes[0]
    gids = {ln.get_gid() for ln in ax.get_lines()}
    assert {"boundary-1", "boundary-2", "confidence-1", "confidence-2"} <= gids
    assert len(ax.get_images()) == 1
    # the dashed line: s (f(t1) - cos t2) = log(99)
    t1, t2 = boundary_points(fig, "confidence-1")
    f = losses.get("arcface", m=0.5).target_logit(torch.as_tensor(t1)).numpy()
    np.testing.assert_allclose(64 * (f - np.cos(t2)), math.log(99), atol=1e-6)
    with pytest.raises(ValueError, match="confidence"):
        margins.decision_boundaries(losses.get("arcface"), confidence=1.5)


def test_margin_panel_two_axes_and_reuses_figure():
    fig = margins.margin_panel(losses.get("combined"))
    assert len(fig.axes) == 2
    again = margins.margin_panel(losses.get("cosface"), fig=fig)
    assert again is fig and len(fig.axes) == 2
    assert "CosFace" in fig._suptitle.get_text()


# ---------------------------------------------------------------- NormFace's bound

def simplex(C):
    """C unit vectors in R^C with pairwise cosine -1/(C-1)."""
    w = torch.eye(C, dtype=torch.float64) - 1.0 / C
    return w / w.norm(dim=1, keepdim=True)


@pytest.mark.parametrize("C", [2, 3, 7])
@pytest.mark.parametrize("s", [1.0, 8.0, 30.0])
def test_bound_equals_loss_of_features_on_a_regular_simplex(C, s):
    w = simplex(C)
    cos = w @ w.T  # each feature exactly on its centre
    off = cos[~torch.eye(C, dtype=torch.bool)]
    assert torch.allclose(off, torch.full_like(off, -1 / (C - 1)))
    loss = losses.get("normface", s=s)(cos, torch.arange(C))
    assert margins.normface_loss_lower_bound(s, C) == pytest.approx(float(loss), rel=1e-9, abs=1e-14)


def test_bound_is_below_the_loss_of_other_configurations():
    g = torch.Generator().manual_seed(0)
    C, s = 5, 10.0
    w = torch.nn.functional.normalize(torch.randn(C, 8, generator=g, dtype=torch.float64), dim=1)
    loss = float(losses.get("normface", s=s)(w @ w.T, torch.arange(C)))
    assert loss > margins.normface_loss_lower_bound(s, C)


def test_bound_decreases_in_s_from_log_c():
    s = np.linspace(0, 64, 200)
    for C in (2, 10, 10_000):
        b = margins.normface_loss_lower_bound(s, C)
        assert b[0] == pytest.approx(math.log(C))
        assert np.all(np.diff(b) < 0)
    assert isinstance(margins.normface_loss_lower_bound(16, 10), float)
    with pytest.raises(ValueError, match="C"):
        margins.normface_loss_lower_bound(16, 1)
    with pytest.raises(ValueError, match="s"):
        margins.normface_loss_lower_bound(-1, 10)


def test_bound_plot_one_line_per_c_log_axis():
    fig = margins.softmax_lower_bound(np.linspace(1, 64, 50), [2, 100, 10_000])
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 3 and ax.get_yscale() == "log"


# ---------------------------------------------------------------- the widget

def test_margin_explorer_redraws_and_shows_errors():
    pytest.importorskip("ipywidgets")
    from frbook.viz.widgets import margin_explorer

    box = margin_explorer("arcface")
    assert type(box.loss).__name__ == "ArcFace" and box.image.value[:4] == b"\x89PNG"
    shown = lambda: {k for k, c in box.controls.items() if c.layout.display != "none"}  # noqa: E731
    assert shown() == {"loss", "fallback", "s", "arcface_m"}

    first = box.image.value
    box.controls["loss"].value = "sphereface"  # the observer redraws
    assert type(box.loss).__name__ == "SphereFace" and box.image.value != first
    assert shown() == {"loss", "s", "sphereface_m", "lamb"}
    box.controls["sphereface_m"].value = 2
    assert box.loss.m == 2 and isinstance(box.loss.m, int)
    box.controls["loss"].value = "arcface"
    box.controls["fallback"].value = "none"
    assert box.loss.fallback == "none"

    drawn = box.loss
    box.update(loss="combined", m1=0.0)  # rejected by the loss itself: shown, not raised
    assert "m1 must be" in box.message.value and box.loss is drawn
    box.update()
    assert box.message.value == ""


def test_margin_explorer_rejects_unknown_initial():
    pytest.importorskip("ipywidgets")
    from frbook.viz.widgets import margin_explorer

    with pytest.raises(ValueError, match="initial"):
        margin_explorer("softmax")


# ---------------------------------------------------------------- 3-D features

def test_features_3d_draws_on_the_unit_sphere():
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(60, 3, generator=g) * 5
    labels = torch.arange(60) % 3
    centres = torch.randn(3, 3, generator=g)
    fig = features_3d(emb, labels, centres=centres, title="t")
    ax = fig.axes[0]
    assert ax.name == "3d" and ax.get_title() == "t"
    assert len(ax.get_lines()) == 3  # one ray per centre
    points = [c for c in ax.collections if getattr(c, "_offsets3d", None) is not None]
    xs, ys, zs = (np.asarray(v, dtype=float) for v in points[0]._offsets3d)
    np.testing.assert_allclose(np.sqrt(xs**2 + ys**2 + zs**2), 1.0, atol=1e-6)


def test_features_3d_rejects_2d_features_and_2d_axes():
    with pytest.raises(ValueError, match=r"\(N, 3\).*features_2d"):
        features_3d(np.zeros((5, 2)), np.zeros(5))
    fig = Figure()
    with pytest.raises(ValueError, match="3-D axes"):
        features_3d(np.ones((5, 3)), np.zeros(5), ax=fig.add_subplot())
