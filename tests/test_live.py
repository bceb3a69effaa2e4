"""The live figures (frbook.viz.live): the browser's formulas against frbook.losses.

``static/live.js`` re-implements the target logits, slopes, target probability and pull of
:mod:`frbook.losses`, and Search-Softmax's reduction h(a, p) and CosFace margin, in JavaScript.
Here Node.js evaluates them (with a stub document) on a grid of angles (of probabilities for
h), in float64 on both sides, for every loss and a few parameter settings, including the
fallback branches; the test skips where Node.js is missing. The browser side (a slider moved in
Chromium, offline) is in tests/test_browser.py.
"""
from __future__ import annotations

import json
import math
import shutil
import subprocess

import pytest
import torch

from frbook import losses
from frbook.losses import gradients
from frbook.search import cosface_margin, reduce_probability
from frbook.viz import live

# A stub of the few DOM calls the script makes when it loads; the formulas need none.
_HARNESS = """
globalThis.window = globalThis;
globalThis.document = {currentScript: null, readyState: "complete", head: {appendChild() {}},
  createElement() { return {}; }, querySelectorAll() { return []; }};
%s
const live = window.frbookLive;
const input = %s;
const out = {
  losses: input.losses.map(([loss, p, C, thetas]) => thetas.map((t) => [
    live.targetLogit(loss, p, t), live.targetSlope(loss, p, t),
    live.targetProbability(loss, p, t, C), live.angleGradient(loss, p, t, C)])),
  reductions: input.reductions.map(([a, p]) => live.reduceProbability(a, p)),
  margins: input.margins.map(([a, s]) => live.cosfaceMargin(a, s)),
};
process.stdout.write(JSON.stringify(out));
"""

CASES = [
    ("normface", {"s": 64.0}),
    ("cosface", {"s": 64.0, "m": 0.35}),
    ("cosface", {"s": 8.0, "m": 0.9}),
    ("arcface", {"s": 64.0, "m": 0.5, "fallback": "classic"}),
    ("arcface", {"s": 30.0, "m": 1.2, "fallback": "easy"}),
    ("arcface", {"s": 64.0, "m": 0.7, "fallback": "clip"}),
    ("arcface", {"s": 16.0, "m": 0.5, "fallback": "none"}),
    ("sphereface", {"s": 30.0, "m": 4, "lamb": 5.0}),
    ("sphereface", {"s": 30.0, "m": 1, "lamb": 0.0}),
    ("sphereface", {"s": 10.0, "m": 3, "lamb": 0.0}),
    ("combined", {"s": 64.0, "m1": 1.0, "m2": 0.3, "m3": 0.2}),
    ("combined", {"s": 64.0, "m1": 1.5, "m2": 0.4, "m3": 0.1}),
    ("combined", {"s": 20.0, "m1": 0.7, "m2": 0.0, "m3": 0.0}),
]
# Angles away from the branch switches (where float rounding may pick either side).
THETAS = [0.05, 0.3, 0.71, 1.0, 1.4, 1.9, 2.3, 2.7, 3.0, 3.1]
C = 1000
# h(a, p) at both ends of p, where a p + 1 - a is 1 - a or 1, and from no margin to a huge one.
REDUCTION_A = [0.0, -1.0, -100.0, -1e5]
REDUCTION_P = [0.0, 1e-6, 0.1, 0.5, 0.9, 1 - 1e-6, 1.0]


def run_node(losses=(), reductions=(), margins=()):
    """Evaluate live.js in Node: the loss formulas for ``losses`` ([loss, params, C, thetas]),
    h for ``reductions`` ([a, p]) and the CosFace margin for ``margins`` ([a, s])."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed: the browser formulas are checked in tests/test_browser.py")
    inputs = {"losses": list(losses), "reductions": list(reductions), "margins": list(margins)}
    program = _HARNESS % (live.script(), json.dumps(inputs))
    done = subprocess.run([node, "-e", program], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_javascript_formulas_match_the_library():
    results = run_node(losses=[[name, p, C, THETAS] for name, p in CASES])["losses"]
    theta = torch.tensor(THETAS, dtype=torch.float64)
    for (name, params), rows in zip(CASES, results):
        loss = losses.get(name, **params)
        expected = {
            "target_logit": loss.target_logit(theta),
            "slope": gradients.target_slope(loss, theta),
            "probability": gradients.target_probability(loss, theta, C),
            "pull": gradients.target_angle_gradient(loss, theta, C),
        }
        for i, key in enumerate(expected):
            got = torch.tensor([row[i] for row in rows], dtype=torch.float64)
            assert torch.allclose(got, expected[key], rtol=1e-9, atol=1e-12), (name, params, key, got, expected[key])


def test_javascript_reduction_matches_the_library():
    pairs = [[a, p] for a in REDUCTION_A for p in REDUCTION_P]
    margins = [[a, s] for a in REDUCTION_A + [1 - math.exp(30 * 0.35)] for s in (1.0, 30.0, 64.0)]
    results = run_node(reductions=pairs, margins=margins)
    for (a, p), got in zip(pairs, results["reductions"]):
        want = reduce_probability(torch.tensor(p, dtype=torch.float64), a).item()
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=0.0), (a, p, got, want)
    for (a, s), got in zip(margins, results["margins"]):
        assert math.isclose(got, cosface_margin(a, s), rel_tol=1e-9, abs_tol=1e-15), (a, s, got)
    # The ends the figure relies on: h(a, 0) = 0, h(a, 1) = 1, and CosFace's own a gives m = 0.35.
    assert results["reductions"][:: len(REDUCTION_P)] == [0.0] * len(REDUCTION_A)
    assert results["reductions"][len(REDUCTION_P) - 1 :: len(REDUCTION_P)] == [1.0] * len(REDUCTION_A)
    assert math.isclose(results["margins"][-2], 0.35, rel_tol=1e-12)


def test_figures_carry_their_parameters_and_script():
    shown = live.margin_figure("cosface", m=0.2).data
    assert 'class="frbook-live"' in shown and "window.frbookLive" in shown
    config = json.loads(shown.split('data-config="')[1].split('"')[0].replace("&quot;", '"'))
    assert config == {"kind": "margin", "loss": "cosface", "params": {"s": 64.0, "m": 0.2},
                      "losses": list(live.LIVE_LOSSES), "confidence": 0.99}
    assert '"num_classes": 500' in live.gradient_figure("arcface", num_classes=500).data.replace("&quot;", '"')
    shown = live.reduction_figure(a=-1000, s=64).data
    assert "window.frbookLive" in shown
    config = json.loads(shown.split('data-config="')[1].split('"')[0].replace("&quot;", '"'))
    assert config == {"kind": "reduction", "params": {"a": -1000.0, "s": 64.0}}
    assert f"m = {cosface_margin(-1000.0, 64.0):.3f}" in shown  # the text without JavaScript


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: live.margin_figure("adacos"), "live figures draw"),
        (lambda: live.margin_figure("arcface", m=math.pi), "m must be"),
        (lambda: live.margin_figure("cosface", fallback="easy"), "sets only s, m"),
        (lambda: live.margin_figure(confidence=0.3), "confidence"),
        (lambda: live.gradient_figure("combined"), "live figures draw"),
        (lambda: live.gradient_figure(num_classes=1), "num_classes"),
        (lambda: live.reduction_figure(a=0.5), "a must be a number <= 0"),
        (lambda: live.reduction_figure(a=math.nan), "a must be a number <= 0"),
        (lambda: live.reduction_figure(a=-math.inf), "a must be a number <= 0"),
        (lambda: live.reduction_figure(s=0.0), "s must be a number > 0"),
        (lambda: live.reduction_figure(s=-30.0), "s must be a number > 0"),
    ],
)
def test_bad_parameters_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()
