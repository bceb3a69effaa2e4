"""Training curves (frbook.viz.training) and the mean history they are usually fed
(frbook.results.mean_history)."""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from frbook.results import mean_history  # noqa: E402
from frbook.viz.training import training_curves  # noqa: E402


def test_training_curves_one_line_per_name_scaled_and_marked():
    fig = training_curves({"a": ([10, 20], [0.5, 0.6]), "b": ([10, 20, 30], [0.1, 0.2, 0.3])}, "accuracy (%)",
                          scale=100, marker="o")
    ax = fig.axes[0]
    assert [ln.get_label() for ln in ax.get_lines()] == ["a", "b"]
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [50, 60])
    assert ax.get_lines()[1].get_marker() == "o" and ax.get_ylabel() == "accuracy (%)"


def test_training_curves_draw_into_a_given_axes():
    fig = Figure()
    left, right = fig.subplots(1, 2)
    assert training_curves({"a": ([1, 2], [3, 4])}, "angle", ax=right) is fig
    assert not left.get_lines() and right.get_lines()[0].get_marker() in ("None", None, "")


def history(label, seed, rows):
    return {"label": label, "seed": seed, "history": rows}


def test_mean_history_averages_runs_on_the_steps_they_share():
    results = [history("a", 0, [{"step": 10, "x": 1.0}, {"step": 20, "x": 2.0}, {"step": 30, "x": 3.0}]),
               history("a", 1, [{"step": 10, "x": 3.0}, {"step": 20, "loss": 1.0}, {"step": 30, "x": 5.0}]),
               history("b", 0, [{"step": 10, "x": 100.0}])]
    steps, mean = mean_history(results, "a", "x")
    assert steps.tolist() == [10, 30] and mean.tolist() == [2.0, 4.0]  # step 20: seed 1 did not log x
    with pytest.raises(ValueError, match="no results labelled 'c'; the labels are a, b"):
        mean_history(results, "c", "x")
    with pytest.raises(ValueError, match="share no step that logged 'y'"):
        mean_history(results, "a", "y")
