"""Chapter 9's comparison figures (frbook.viz.comparison): the difference heat maps and accuracy
against training time, checked through their artists."""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("seaborn")

from frbook.viz.comparison import accuracy_against_time, difference_heatmaps  # noqa: E402


def test_difference_heatmaps_one_panel_per_level_symmetric_colours_and_dots_on_decided_pairs():
    mean = np.array([[0.0, 0.02, 0.01], [-0.02, 0.0, -0.005], [-0.01, 0.005, 0.0]])
    decided = np.array([[False, True, False], [True, False, False], [False, False, False]])
    fig = difference_heatmaps({"easy": (mean, decided), "hard": (-mean, decided)}, ["a", "b", "c"],
                              name=str.upper)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["easy", "hard"]
    ax = panels[0]
    mesh = ax.collections[0]
    assert mesh.get_clim() == pytest.approx((-2.0, 2.0))  # points, symmetric about 0
    assert np.allclose(np.asarray(mesh.get_array()).reshape(3, 3), 100 * mean)
    dots = ax.collections[1].get_offsets()
    assert sorted(map(tuple, np.asarray(dots))) == [(0.5, 1.5), (1.5, 0.5)]  # centres of (1, 0) and (0, 1)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["A", "B", "C"]


def test_accuracy_against_time_markers_colours_and_one_legend_entry_per_label():
    def stats(mean, std):
        return {"mean": mean, "std": std}

    panels = {"easy": {"arcface": (stats(40, 2), stats(0.9, 0.01)), "search": (stats(150, 5), stats(0.88, 0.02))},
              "hard": {"arcface": (stats(41, 2), stats(0.7, 0.01))}}
    fig = accuracy_against_time(panels, name=str.title, markers={"search": "s"})
    easy, hard = fig.axes
    assert easy.get_xscale() == "log" and easy.get_title() == "easy"
    points = [line for line in easy.get_lines() if line.get_marker() in ("o", "s")]  # not the caps
    assert [line.get_marker() for line in points] == ["o", "s"]
    assert points[0].get_ydata()[0] == pytest.approx(90.0)
    (arc_hard,) = [line for line in hard.get_lines() if line.get_marker() == "o"]
    assert arc_hard.get_color() == points[0].get_color()  # a label keeps its colour across panels
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["Arcface", "Search"]
    assert all(t in (10, 20, 30, 50, 100, 200, 300, 500, 1000, 2000) for t in easy.get_xticks())


def test_hyperparameter_sweeps_error_bars_per_sweep_and_a_band_per_reference():
    from frbook.viz.comparison import hyperparameter_sweeps

    st = [{"mean": 0.80, "std": 0.01}, {"mean": 0.85, "std": 0.02}, {"mean": 0.82, "std": 0.01}]
    panels = {"scale s": {"CosFace": ([8, 16, 32], st), "ArcFace": ([8, 16, 32], st[::-1])},
              "margin m": {"CosFace": ([0.1, 0.35, 0.5], st)}}
    fig = hyperparameter_sweeps(panels, {"P2SGrad": {"mean": 0.70, "std": 0.03}}, log2=("scale s",))
    left, right = fig.axes
    assert left.get_xscale() == "log" and right.get_xscale() == "linear"
    assert [t.get_text() for t in left.get_xticklabels()] == ["8", "16", "32"]
    assert [t.get_text() for t in left.get_legend().get_texts()] == ["P2SGrad", "CosFace", "ArcFace"]
    (band,) = [p for p in right.patches]  # the ± std band of the reference
    assert band.get_y() == pytest.approx(67.0) and band.get_height() == pytest.approx(6.0)
    means = [ln for ln in left.get_lines() if ln.get_marker() == "o"]
    np.testing.assert_allclose(np.asarray(means[0].get_ydata(), dtype=float), [80, 85, 82])
