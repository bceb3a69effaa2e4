"""The live figures (frbook.viz.live): the browser's formulas against frbook.losses.

``static/live.js`` re-implements the target logits, slopes, target probability and pull of
:mod:`frbook.losses` in JavaScript. Here Node.js evaluates them (with a stub document) on a grid
of angles, in float64 on both sides, for every loss and a few parameter settings, including the
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
from frbook.viz import live

# A stub of the few DOM calls the script makes when it loads; the formulas need none.
_HARNESS = """
globalThis.window = globalThis;
globalThis.document = {currentScript: null, readyState: "complete", head: {appendChild() {}},
  createElement() { return {}; }, querySelectorAll() { return []; }};
%s
const cases = %s;
const out = cases.map(([loss, p, C, thetas]) => thetas.map((t) => [
  window.frbookLive.targetLogit(loss, p, t), window.frbookLive.targetSlope(loss, p, t),
  window.frbookLive.targetProbability(loss, p, t, C), window.frbookLive.angleGradient(loss, p, t, C)]));
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


def run_node(cases):
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed: the browser formulas are checked in tests/test_browser.py")
    program = _HARNESS % (live.script(), json.dumps(cases))
    done = subprocess.run([node, "-e", program], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_javascript_formulas_match_the_library():
    results = run_node([[name, p, C, THETAS] for name, p in CASES])
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


def test_figures_carry_their_parameters_and_script():
    shown = live.margin_figure("cosface", m=0.2).data
    assert 'class="frbook-live"' in shown and "window.frbookLive" in shown
    config = json.loads(shown.split('data-config="')[1].split('"')[0].replace("&quot;", '"'))
    assert config == {"kind": "margin", "loss": "cosface", "params": {"s": 64.0, "m": 0.2},
                      "losses": list(live.LIVE_LOSSES), "confidence": 0.99}
    assert '"num_classes": 500' in live.gradient_figure("arcface", num_classes=500).data.replace("&quot;", '"')


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: live.margin_figure("adacos"), "live figures draw"),
        (lambda: live.margin_figure("arcface", m=math.pi), "m must be"),
        (lambda: live.margin_figure("cosface", fallback="easy"), "sets only s, m"),
        (lambda: live.margin_figure(confidence=0.3), "confidence"),
        (lambda: live.gradient_figure("combined"), "live figures draw"),
        (lambda: live.gradient_figure(num_classes=1), "num_classes"),
    ],
)
def test_bad_parameters_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()
