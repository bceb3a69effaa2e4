"""The plane's wedges won by each class weight (frbook.viz.features.winning_wedges), headless."""
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from frbook.viz.features import winning_wedges  # noqa: E402


def test_winning_wedges_dots_in_the_winners_colour_arrows_and_the_angles_won():
    phi = torch.linspace(0, 2 * math.pi, 3601)[:-1]  # as chapter 2: 0.1 degree apart
    circle = torch.stack([phi.cos(), phi.sin()], 1)
    directions = torch.tensor([90.0, 210.0, 330.0]).deg2rad()
    w = torch.stack([directions.cos(), directions.sin()], 1)
    longer = w * torch.tensor([1.5, 1.0, 1.0])[:, None]
    panels = {"equal": (w, (circle @ w.t()).argmax(1)), "longer": (longer, (circle @ longer.t()).argmax(1))}
    fig = winning_wedges(circle, panels)
    equal, wide = fig.axes
    assert [ax.get_title() for ax in fig.axes] == ["equal", "longer"]
    dots = [len(c.get_offsets()) for c in equal.collections]
    assert sum(dots) == 3600 and all(abs(n - 1200) <= 2 for n in dots)  # one dot per direction; ties at borders
    labels = [t.get_text() for t in equal.texts if t.get_text()]
    arrows = [t for t in wide.texts if not t.get_text()]  # annotate() with an arrow and no text
    assert labels == ["120°", "120°", "120°"] and len(arrows) == 3
    won = [int(t.get_text()[:-1]) for t in wide.texts if t.get_text()]
    assert won[0] > 130 and abs(won[1] - won[2]) <= 1 and abs(sum(won) - 360) <= 1  # blue wins more
    np.testing.assert_allclose(np.hypot(*equal.collections[0].get_offsets().T), 1, atol=1e-6)
