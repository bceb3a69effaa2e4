"""frbook.viz.images.alignment_figure: one column per face, three rows, the overlays drawn."""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from frbook.viz.images import alignment_figure  # noqa: E402


def _inputs(n):
    frames = [torch.randint(0, 256, (3, 100, 90), dtype=torch.uint8) for _ in range(n)]
    points = np.array([[30, 40], [60, 40], [45, 55], [35, 70], [55, 70]], float)
    detections = [(np.array([20.0, 25.0, 70.0, 85.0]), 0.99, points)] * (n - 1) + [None]
    small = [torch.randint(0, 256, (1, 16, 16), dtype=torch.uint8) for _ in range(n)]
    return frames, detections, small


def test_alignment_figure_draws_three_rows_and_the_overlays():
    frames, detections, small = _inputs(3)
    fig = alignment_figure(frames, detections, 64, small, small, ["a", "b", "c"])
    axes = np.array(fig.axes).reshape(3, 3)
    assert [ax.get_title() for ax in axes[0]] == ["a", "b", "c"]
    assert [axes[r, 0].get_ylabel() for r in range(3)] == ["frame, box, landmarks", "centre crop", "aligned"]
    # A detected face: the crop square and the box; landmarks as five points. A missed face: the square only.
    assert [sum(isinstance(p, Rectangle) for p in ax.patches) for ax in axes[0]] == [2, 2, 1]
    assert len(axes[0, 0].lines) == 1 and len(axes[0, 0].lines[0].get_xdata()) == 5
    assert not axes[0, 2].lines
    square = axes[0, 0].patches[0]
    assert (square.get_width(), square.get_height()) == (64, 64)
    assert square.get_xy() == ((90 - 64) / 2 - 0.5, (100 - 64) / 2 - 0.5)


def test_alignment_figure_needs_one_of_each_per_frame():
    frames, detections, small = _inputs(2)
    with pytest.raises(ValueError, match="one detection, centre crop, aligned face and title per frame"):
        alignment_figure(frames, detections, 64, small, small[:1], ["a", "b"])
