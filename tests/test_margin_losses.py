"""The margin losses, checked against closed forms written out here, in float64.

Each expected value is computed from the angle t = arccos(cos) in float64 with plain ``math``
formulas, element by element, independently of the library's code paths (Chebyshev polynomials,
clamps, torch.where).
"""
import math

import pytest
import torch
import torch.nn.functional as F

from frbook import losses
from frbook.heads import CosineClassifier, make_head

PI = math.pi
MARGIN_LOSSES = [
    "sphereface", "cosface", "arcface", "subcenter_arcface", "combined", "adacos", "curricularface", "adaface",
]


def batch_with_targets(target_cos, classes=4, seed=0):
    """cos (B, C) in float64 whose target column holds ``target_cos``; the rest is random."""
    g = torch.Generator().manual_seed(seed)
    target_cos = torch.as_tensor(target_cos, dtype=torch.float64)
    labels = torch.arange(len(target_cos)) % classes
    cos = torch.rand(len(target_cos), classes, generator=g, dtype=torch.float64) * 2 - 1
    cos[torch.arange(len(target_cos)), labels] = target_cos
    return cos, labels


def angles_including_edges(m):
    """Target angles from 0 to pi: the edges, both sides of pi/2, of pi - m and of t + m = pi."""
    ts = [1e-6, 1e-3, 0.1, 0.5, 1.0, PI / 2 - 0.01, PI / 2 + 0.01, 2.0, 2.5,
          PI - m - 0.01, PI - m + 0.01, 3.0, PI - 1e-3, PI - 1e-6]
    return [1.0] + [math.cos(t) for t in ts] + [-1.0]  # cosines, exactly +1 and -1 included


def expected_logits(cos, labels, s, f):
    """s cos everywhere, s f(t) on the target column, with t = arccos(cos) in float64."""
    out = s * cos.clone()
    for i, y in enumerate(labels.tolist()):
        out[i, y] = s * f(math.acos(float(cos[i, y])))
    return out


def grad_of_ce(loss, cos, labels, **kw):
    cos = cos.clone().requires_grad_(True)
    value = loss(cos, labels, **kw)
    value.backward()
    return value, cos.grad


def p_minus_onehot(logits, labels):
    return torch.softmax(logits.detach(), 1) - F.one_hot(labels, logits.shape[1]).double()


# --- closed forms --------------------------------------------------------------------------------

def psi_ref(t, m):
    k = min(int(math.floor(m * t / PI)), m - 1)
    return (-1) ** k * math.cos(m * t) - 2 * k


ARC_REFERENCE = {
    "classic": lambda t, m: math.cos(t + m) if t < PI - m else math.cos(t) - m * math.sin(m),
    "easy": lambda t, m: math.cos(t + m) if t < PI / 2 else math.cos(t),
    "clip": lambda t, m: math.cos(min(max(t + m, 1e-3), PI - 1e-3)),
    "none": lambda t, m: math.cos(t + m),
}


def combined_ref(t, m1, m2, m3):
    switch = (PI - m2) / m1
    if t <= switch:
        return math.cos(m1 * t + m2) - m3
    return math.cos(t) - (1 + math.cos(switch)) - m3


def test_cosface_logits_and_gradient():
    cos, labels = batch_with_targets(angles_including_edges(0.35))
    loss = losses.get("cosface", s=64, m=0.35)
    z = loss.logits(cos, labels)
    assert torch.allclose(z, expected_logits(cos, labels, 64, lambda t: math.cos(t) - 0.35), atol=1e-12)
    _, grad = grad_of_ce(loss, cos, labels)
    assert torch.allclose(grad, 64 * p_minus_onehot(z, labels) / len(labels), atol=1e-12)


@pytest.mark.parametrize("fallback", ["classic", "easy", "clip", "none"])
@pytest.mark.parametrize("m", [0.5, 0.2, 1.2])
def test_arcface_logits_match_closed_form_for_each_fallback(fallback, m):
    cos, labels = batch_with_targets(angles_including_edges(m))
    loss = losses.get("arcface", s=64, m=m, fallback=fallback)
    expected = expected_logits(cos, labels, 64, lambda t: ARC_REFERENCE[fallback](t, m))
    # At cos = +-1 exactly the angle is clamped by float64's eps: it moves by 2e-8 rad, a logit by s 2e-8.
    assert torch.allclose(loss.logits(cos, labels), expected, atol=1e-5, rtol=0)
    inner = slice(1, -1)
    assert torch.allclose(loss.logits(cos, labels)[inner], expected[inner], atol=1e-9, rtol=0)


@pytest.mark.parametrize("fallback", ["classic", "easy", "clip", "none"])
def test_arcface_exact_gradient_away_from_edges(fallback):
    m, s = 0.5, 64.0
    ts = [0.05, 0.3, 0.8, 1.2, 1.5, 1.7, 2.0, 2.4, 2.7, 3.0]  # none on a switch point
    cos, labels = batch_with_targets([math.cos(t) for t in ts], classes=3)
    loss = losses.get("arcface", s=s, m=m, fallback=fallback)
    z = loss.logits(cos, labels)
    _, grad = grad_of_ce(loss, cos, labels)
    g = p_minus_onehot(z, labels) / len(ts)

    def dfdc(t):  # d f / d cos t of the reference curve, by hand
        margined = {"classic": t < PI - m, "easy": t < PI / 2, "none": True, "clip": t + m < PI - 1e-3}[fallback]
        if not margined:
            return 0.0 if fallback == "clip" else 1.0
        return math.sin(t + m) / math.sin(t)

    expected = s * g.clone()
    for i, (t, y) in enumerate(zip(ts, labels.tolist())):
        expected[i, y] = s * dfdc(t) * g[i, y]
    assert torch.allclose(grad, expected, atol=1e-10)
    assert torch.autograd.gradcheck(lambda c: loss(c, labels), (cos.clone().requires_grad_(),))


def test_arcface_straight_through_keeps_value_and_drops_the_factor():
    s, m = 64.0, 0.5
    ts = [0.05, 0.4, 1.0, 1.6, 2.2, 2.9]
    cos, labels = batch_with_targets([math.cos(t) for t in ts], classes=3)
    exact = losses.get("arcface", s=s, m=m)
    straight = losses.get("arcface", s=s, m=m, grad="straight_through")
    assert torch.allclose(exact.logits(cos, labels), straight.logits(cos, labels), atol=1e-12)
    value, grad = grad_of_ce(straight, cos, labels)
    assert value.item() == pytest.approx(exact(cos, labels).item(), rel=1e-12)
    # The gradient of NormFace evaluated at ArcFace's logits: s (P - onehot) / B, no sin ratio.
    expected = s * p_minus_onehot(straight.logits(cos, labels), labels) / len(ts)
    assert torch.allclose(grad, expected, atol=1e-12)
    _, exact_grad = grad_of_ce(exact, cos, labels)
    ratio = exact_grad.gather(1, labels[:, None]) / grad.gather(1, labels[:, None])
    assert not torch.allclose(ratio, torch.ones_like(ratio))  # the difference the book discusses


@pytest.mark.parametrize("m, lamb", [(4, 5.0), (4, 0.0), (3, 1000.0), (2, 7.5), (1, 5.0)])
def test_sphereface_logits_and_gradient(m, lamb):
    s = 30.0
    cos, labels = batch_with_targets(angles_including_edges(0.5))
    loss = losses.get("sphereface", s=s, m=m, lamb=lamb)
    f = lambda t: (lamb * math.cos(t) + psi_ref(t, m)) / (1 + lamb)  # noqa: E731
    z = loss.logits(cos, labels)
    assert torch.allclose(z, expected_logits(cos, labels, s, f), atol=1e-9)

    _, grad = grad_of_ce(loss, cos, labels)
    g = p_minus_onehot(z, labels) / len(labels)
    expected = s * g.clone()
    for i, y in enumerate(labels.tolist()):
        c = float(cos[i, y])
        if abs(c) == 1.0:  # the limit of (-1)^k m sin(m t) / sin t at t = 0 and t = pi: m^2
            dpsi_dc = m * m
        else:
            t = math.acos(c)
            k = min(int(math.floor(m * t / PI)), m - 1)
            dpsi_dt = (-1) ** k * (-m * math.sin(m * t))
            dpsi_dc = dpsi_dt * (-1 / math.sin(t))
        expected[i, y] = s * (lamb + dpsi_dc) / (1 + lamb) * g[i, y]
    assert torch.allclose(grad, expected, atol=1e-7)
    assert torch.autograd.gradcheck(lambda c: loss(c, labels), (cos.clone().requires_grad_(),))


def test_sphereface_m1_is_normface_and_psi_is_continuous_and_monotone():
    cos, labels = batch_with_targets(angles_including_edges(0.5))
    assert torch.allclose(losses.get("sphereface", s=16, m=1).logits(cos, labels), 16 * cos, atol=1e-12)
    theta = torch.linspace(0, PI, 2001, dtype=torch.float64)
    for m in [2, 3, 4]:
        psi = losses.get("sphereface", m=m).target_logit(theta, lamb=0.0)
        assert (psi.diff() <= 1e-12).all() and psi.diff().abs().max() < 0.05  # monotone, no jumps
        assert psi[0] == pytest.approx(1) and psi[-1] == pytest.approx(-(2 * m - 1))


def test_sphereface_annealing_schedule_and_step():
    loss = losses.get("sphereface")
    assert loss.lamb == 1000.0
    loss.step()
    assert int(loss.iteration) == 1 and loss.lamb == pytest.approx(1000 / 1.12)
    loss.iteration.fill_(100)
    assert loss.lamb == pytest.approx(1000 / 13) and loss.lamb == pytest.approx(76.923, abs=1e-3)
    loss.iteration.fill_(10_000)
    assert loss.lamb == 5.0
    # The iteration is a buffer: it is checkpointed and restored.
    restored = losses.get("sphereface")
    restored.load_state_dict(loss.state_dict())
    assert restored.lamb == 5.0 and int(restored.iteration) == 10_000
    # forward never advances the schedule; a fixed lamb ignores it.
    cos, labels = batch_with_targets([0.5, 0.1])
    loss.train()(cos.float(), labels)
    assert int(loss.iteration) == 10_000
    fixed = losses.get("sphereface", lamb=2.0)
    fixed.step()
    assert fixed.lamb == 2.0


@pytest.mark.parametrize("m1, m2, m3", [(1.0, 0.3, 0.2), (0.9, 0.4, 0.15), (1.35, 0.0, 0.0), (4.0, 0.0, 0.1)])
def test_combined_logits_gradient_and_monotone_fallback(m1, m2, m3):
    s = 64.0
    switch = (PI - m2) / m1
    cos, labels = batch_with_targets(angles_including_edges(m2))
    loss = losses.get("combined", s=s, m1=m1, m2=m2, m3=m3)
    z = loss.logits(cos, labels)
    assert torch.allclose(z, expected_logits(cos, labels, s, lambda t: combined_ref(t, m1, m2, m3)), atol=1e-5)

    ts = [t for t in [0.05, 0.4, 0.9, 1.5, 2.1, 2.6, 3.0] if abs(t - switch) > 1e-2]
    cos, labels = batch_with_targets([math.cos(t) for t in ts], classes=3)
    z = loss.logits(cos, labels)
    _, grad = grad_of_ce(loss, cos, labels)
    g = p_minus_onehot(z, labels) / len(ts)
    expected = s * g.clone()
    for i, (t, y) in enumerate(zip(ts, labels.tolist())):
        d = m1 * math.sin(m1 * t + m2) / math.sin(t) if t <= switch else 1.0
        expected[i, y] = s * d * g[i, y]
    assert torch.allclose(grad, expected, atol=1e-10)
    assert torch.autograd.gradcheck(lambda c: loss(c, labels), (cos.clone().requires_grad_(),))

    theta = torch.linspace(0, PI, 4001, dtype=torch.float64)
    f = loss.target_logit(theta)
    assert (f.diff() <= 1e-12).all(), "the combined target must decrease with the angle"
    assert f.diff().abs().max() < 0.02, "and be continuous (no jump at the switch)"


def test_combined_special_cases_are_arcface_and_cosface():
    theta = torch.linspace(0, PI - 0.3 - 1e-3, 500, dtype=torch.float64)
    arc = losses.get("arcface", m=0.3).target_logit(theta)
    assert torch.allclose(losses.get("combined", m1=1, m2=0.3, m3=0).target_logit(theta), arc)
    theta = torch.linspace(0, PI, 500, dtype=torch.float64)
    cosface = losses.get("cosface", m=0.35).target_logit(theta)
    assert torch.allclose(losses.get("combined", m1=1, m2=0, m3=0.35).target_logit(theta), cosface)


def test_arcface_fallbacks_shape_the_curve():
    m = 0.5
    theta = torch.linspace(0, PI, 3001, dtype=torch.float64)
    curves = {fb: losses.get("arcface", m=m, fallback=fb).target_logit(theta) for fb in losses.arcface.FALLBACKS}
    for fb in ["classic", "clip"]:
        assert (curves[fb].diff() <= 1e-12).all(), fb
    assert (curves["none"].diff() > 0).any()  # cos(t + m) turns back up past pi - m
    # The easy margin is not monotone either: at pi/2 it jumps up from cos(pi/2 + m) to 0.
    assert float(curves["easy"].diff().max()) == pytest.approx(math.sin(m), abs=2e-3)
    # The classic fallback jumps down by cos m + m sin m - 1 at pi - m.
    jump = curves["classic"].diff().min()
    assert float(-jump) == pytest.approx(math.cos(m) + m * math.sin(m) - 1, abs=2e-3)


@pytest.mark.parametrize("name", MARGIN_LOSSES)
def test_target_logit_agrees_with_logits(name):
    loss = losses.get(name, **({"num_classes": 5} if name == "adacos" else {})).double().eval()
    theta = torch.linspace(0.01, PI - 0.01, 40, dtype=torch.float64)
    cos, labels = batch_with_targets(torch.cos(theta), classes=5)
    kw = {"norms": torch.full((40,), 20.0, dtype=torch.float64)} if name == "adaface" else {}  # z = 0
    z = loss.logits(cos, labels, **kw)
    s = float(loss.s) if name == "adacos" else loss.s
    assert torch.allclose(z.gather(1, labels[:, None]).squeeze(1) / s, loss.target_logit(theta), atol=1e-12)


# --- the adaptive losses --------------------------------------------------------------------------

def test_adacos_fixed_scale_and_inferred_classes():
    loss = losses.get("adacos", num_classes=1001, dynamic=False)
    assert float(loss.s) == pytest.approx(math.sqrt(2) * math.log(1000))
    cos, labels = batch_with_targets([0.3, -0.2, 0.9], classes=1001)
    loss.train()
    assert torch.allclose(loss.logits(cos.float(), labels), float(loss.s) * cos.float())
    assert float(loss.s) == pytest.approx(math.sqrt(2) * math.log(1000))  # not dynamic: unchanged
    inferred = losses.get("adacos", dynamic=False)
    assert inferred.hparams()["s"] is None
    inferred.logits(torch.zeros(2, 10), torch.tensor([0, 1]))
    assert inferred.num_classes == 10 and float(inferred.s) == pytest.approx(math.sqrt(2) * math.log(9))
    with pytest.raises(ValueError, match="built for 10 classes but got cosines for 7"):
        inferred.logits(torch.zeros(2, 7), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="num_classes must be a number that is an integer >= 3"):
        losses.get("adacos").logits(torch.zeros(2, 2), torch.tensor([0, 1]))


@pytest.mark.parametrize("targets", [[0.9, 0.2, -0.4, 0.6, 0.1], [0.95, 0.9, 0.99, 0.3, 0.8]])
def test_adacos_dynamic_update_by_hand(targets):
    classes = 4
    cos, labels = batch_with_targets(targets, classes=classes, seed=3)
    loss = losses.get("adacos", num_classes=classes).double()
    s_old = float(loss.s)  # the buffer was float32 before .double()
    assert s_old == pytest.approx(math.sqrt(2) * math.log(classes - 1), rel=1e-7)
    b_avg = sum(
        sum(math.exp(s_old * float(cos[i, k])) for k in range(classes) if k != int(labels[i]))
        for i in range(len(targets))
    ) / len(targets)
    theta_med = sorted(math.acos(t) for t in targets)[len(targets) // 2]
    s_new = math.log(b_avg) / math.cos(min(PI / 4, theta_med))

    loss.eval()(cos, labels)
    assert float(loss.s) == pytest.approx(s_old)  # evaluation does not update
    z = loss.train().logits(cos, labels)
    assert float(loss.s) == pytest.approx(s_new, rel=1e-12)
    assert torch.allclose(z, s_new * cos)
    assert not loss.s.requires_grad


def test_curricularface_on_a_hand_made_batch():
    s, m, t0 = 10.0, 0.5, 0.3
    cos = torch.tensor([[0.8, 0.7, 0.1], [0.2, 0.5, -0.3], [-0.99, 0.0, -0.95]], dtype=torch.float64)
    labels = torch.tensor([0, 2, 2])
    loss = losses.get("curricularface", s=s, m=m).double()
    loss.t.fill_(t0)
    z = loss.train().logits(cos, labels)
    t = 0.01 * (0.8 - 0.3 - 0.95) / 3 + 0.99 * t0
    assert float(loss.t) == pytest.approx(t, rel=1e-12)
    # Row 0: target 0.8 -> cos(acos 0.8 + m) = 0.4144; 0.7 is harder than that, 0.1 is not.
    # Row 1: target -0.3 -> cos(1.8755 + 0.5) = -0.7206; both negatives are hard.
    # Row 2: target -0.95 is past pi - m: classic fallback; the threshold is cos(t + m) = -0.9834,
    #        so -0.99 stays easy and 0.0 is hard.
    thr = [math.cos(math.acos(c) + m) for c in (0.8, -0.3, -0.95)]
    assert thr[0] == pytest.approx(0.41441, abs=1e-5) and thr[1] == pytest.approx(-0.72062, abs=1e-5)
    assert thr[2] == pytest.approx(-0.98340, abs=1e-5)
    hard = lambda c: c * (t + c)  # noqa: E731
    expected = s * torch.tensor([
        [thr[0], hard(0.7), 0.1],
        [hard(0.2), hard(0.5), thr[1]],
        [-0.99, hard(0.0), -0.95 - m * math.sin(m)],
    ], dtype=torch.float64)
    assert torch.allclose(z, expected, atol=1e-12)

    # Gradient of a hard negative: s (t + 2 cos) (P - onehot) / B; an easy one: s (P - onehot) / B.
    loss.eval()
    _, grad = grad_of_ce(loss, cos, labels)
    g = p_minus_onehot(loss.logits(cos, labels), labels) / 3
    assert grad[0, 1] == pytest.approx(float(s * (t + 1.4) * g[0, 1]), rel=1e-10)
    assert grad[0, 2] == pytest.approx(float(s * g[0, 2]), rel=1e-10)
    assert float(loss.t) == pytest.approx(t, rel=1e-12)  # evaluation does not update
    inner, inner_labels = batch_with_targets([0.9, 0.4, -0.2], classes=3)
    assert torch.autograd.gradcheck(lambda c: loss(c, inner_labels), (inner.requires_grad_(),))


def test_adaface_needs_norms():
    loss = losses.get("adaface")
    cos, labels = batch_with_targets([0.5, 0.2])
    with pytest.raises(ValueError, match="AdaFace needs the feature norms: pass norms=embeddings.norm"):
        loss(cos.float(), labels)
    with pytest.raises(ValueError, match=r"norms must have shape \(2,\)"):
        loss(cos.float(), labels, norms=torch.ones(3))
    assert loss.needs_norms


def test_adaface_identities_at_z_minus_one_zero_and_one():
    s, m = 64.0, 0.4
    ts = [0.01, 0.3, 0.8, 1.4, 2.0, 2.6, 3.1]
    cos, labels = batch_with_targets([math.cos(t) for t in ts])
    loss = losses.get("adaface", s=s, m=m).double().eval()
    loss.batch_mean.fill_(20.0)
    loss.batch_std.fill_(1.0)  # so norms of 10 and 30 saturate z at -1 and +1
    norms = lambda v: torch.full((len(ts),), float(v), dtype=torch.float64)  # noqa: E731

    # z = 0: g_angle = 0, g_add = m: CosFace with margin m.
    cosface = losses.get("cosface", s=s, m=m).logits(cos, labels)
    assert torch.allclose(loss.logits(cos, labels, norms=norms(20)), cosface, atol=1e-12)
    # z = -1 (low norm): g_angle = +m, g_add = 0: ArcFace with margin m (clipped angle).
    arcface = losses.get("arcface", s=s, m=m, fallback="clip").logits(cos, labels)
    assert torch.allclose(loss.logits(cos, labels, norms=norms(10)), arcface, atol=1e-12)
    # z = +1 (high norm): g_angle = -m, g_add = 2m.
    f = lambda t: math.cos(min(max(t - m, 1e-3), PI - 1e-3)) - 2 * m  # noqa: E731
    assert torch.allclose(loss.logits(cos, labels, norms=norms(30)), expected_logits(cos, labels, s, f), atol=1e-12)
    theta = torch.tensor(ts, dtype=torch.float64)
    assert torch.allclose(loss.target_logit(theta, norm_z=1.0), torch.tensor([f(t) for t in ts], dtype=torch.float64))

    mixed = torch.tensor([10.0, 20.0, 30.0, 20.0, 10.0, 30.0, 20.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda c: loss(c, labels, norms=mixed), (cos.clone().requires_grad_(),))
    loss(cos.clone().requires_grad_(), labels, norms=mixed).backward()
    assert mixed.grad is None  # norms are detached


def test_adaface_norm_statistics_update_before_use():
    s, m, h, a = 64.0, 0.4, 0.333, 0.01
    loss = losses.get("adaface", s=s, m=m, h=h, t_alpha=a).double().train()
    raw = [5.0, 25.0, 500.0, 0.0]
    clipped = [5.0, 25.0, 100.0, 0.001]
    mean = sum(clipped) / 4
    std = math.sqrt(sum((n - mean) ** 2 for n in clipped) / 3)  # unbiased, as torch.std
    new_mean, new_std = a * mean + (1 - a) * 20, a * std + (1 - a) * 100
    cos, labels = batch_with_targets([0.9, 0.5, -0.1, 0.3])
    z = loss.logits(cos, labels, norms=torch.tensor(raw, dtype=torch.float64))
    assert float(loss.batch_mean) == pytest.approx(new_mean) and float(loss.batch_std) == pytest.approx(new_std)
    for i, n in enumerate(clipped):
        zhat = max(-1.0, min(1.0, (n - new_mean) / (new_std + 1e-3) * h))
        t = math.acos(float(cos[i, labels[i]]))
        expected = s * (math.cos(min(max(t - m * zhat, 1e-3), PI - 1e-3)) - (m * zhat + m))
        assert float(z[i, labels[i]]) == pytest.approx(expected, rel=1e-12)
    loss.eval().logits(cos, labels, norms=torch.ones(4, dtype=torch.float64))
    assert float(loss.batch_mean) == pytest.approx(new_mean)  # evaluation does not update


# --- the edges, in every precision ---------------------------------------------------------------

EDGE_CASES = [(name, {}) for name in MARGIN_LOSSES] + [
    ("arcface", {"fallback": fb, "grad": g}) for fb in ["easy", "clip", "none"] for g in ["exact", "straight_through"]
] + [("sphereface", {"lamb": 0.0}), ("combined", {"m1": 1.35, "m2": 0.0, "m3": 0.0})]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name, params", EDGE_CASES)
def test_finite_at_cos_plus_and_minus_one(name, params, dtype):
    # Targets exactly +1 and -1, non-targets at the edges too; the loss gets the cosines in dtype.
    cos = torch.tensor([[1.0, -1.0, 1.0], [-1.0, 1.0, -1.0], [1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]], dtype=dtype)
    labels = torch.tensor([0, 0, 2, 1])
    loss = losses.get(name, **params).train()
    kw = {"norms": torch.tensor([1.0, 20.0, 100.0, 300.0], dtype=dtype)} if name == "adaface" else {}
    cos.requires_grad_(True)
    z = loss.logits(cos, labels, **kw)
    assert z.dtype == dtype and torch.isfinite(z).all()
    value = loss(cos, labels, **kw)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(cos.grad).all(), cos.grad


# --- parameters and the registry -----------------------------------------------------------------

@pytest.mark.parametrize("name, params, message", [
    ("arcface", {"m": -0.1}, r"m must be a number in \[0, pi\)"),
    ("arcface", {"m": 3.2}, r"m must be a number in \[0, pi\)"),
    ("arcface", {"m": float("nan")}, r"m must be a number in \[0, pi\)"),
    ("arcface", {"s": 0}, "s must be a positive number"),
    ("arcface", {"fallback": "soft"}, "fallback must be one of 'classic', 'easy', 'clip', 'none'; got 'soft'"),
    ("arcface", {"grad": "insightface"}, "grad must be one of 'exact', 'straight_through'"),
    ("subcenter_arcface", {"sub_centers": 0}, "sub_centers must be a number that is an integer >= 1"),
    ("cosface", {"m": 2.0}, r"m must be a number in \[0, 2\)"),
    ("cosface", {"m": -0.35}, r"m must be a number in \[0, 2\)"),
    ("cosface", {"s": -64}, "s must be a positive number"),
    ("sphereface", {"m": 1.35}, "m must be a number that is an integer >= 1 .*get\\('combined', m1=1.35"),
    ("sphereface", {"m": 0}, "m must be a number that is an integer >= 1"),
    ("sphereface", {"lamb": -1}, "lamb must be a number >= 0 or None"),
    ("combined", {"m1": 0}, "m1 must be a number > 0"),
    ("combined", {"m2": -0.1}, r"m2 must be a number in \[0, pi\)"),
    ("combined", {"m3": 2.5}, r"m3 must be a number in \[0, 2\)"),
    ("adacos", {"num_classes": 2}, "num_classes must be a number that is an integer >= 3"),
    ("curricularface", {"m": 4}, r"m must be a number in \[0, pi\)"),
    ("adaface", {"m": 2.0}, r"m must be a number in \[0, pi/2\)"),
    ("adaface", {"h": 0}, "h must be a positive number"),
    ("adaface", {"t_alpha": 1.5}, r"t_alpha must be a number in \[0, 1\]"),
])
def test_parameters_are_validated(name, params, message):
    with pytest.raises(ValueError, match=message):
        losses.get(name, **params)


def test_registry_has_every_margin_loss_and_rejects_unknown_parameters():
    assert set(MARGIN_LOSSES) <= set(losses.available())
    with pytest.raises(TypeError, match="takes: s, m, fallback, grad"):
        losses.get("arcface", margin=0.5)
    with pytest.raises(TypeError, match="takes: num_classes, dynamic"):
        losses.get("adacos", s=10)
    defaults = {
        "sphereface": {"s": 30.0, "m": 4, "lamb": None, "total_steps": None},
        "cosface": {"s": 64.0, "m": 0.35},
        "arcface": {"s": 64.0, "m": 0.5, "fallback": "classic", "grad": "exact"},
        "combined": {"s": 64.0, "m1": 1.0, "m2": 0.3, "m3": 0.2},
        "curricularface": {"s": 64.0, "m": 0.5},
        "adaface": {"s": 64.0, "m": 0.4, "h": 0.333, "t_alpha": 0.01},
    }
    for name, hp in defaults.items():
        assert losses.get(name).hparams() == hp


# --- the sub-center head ---------------------------------------------------------------------------

def test_subcenter_head_takes_the_closest_centre_and_only_it_learns():
    torch.manual_seed(0)
    d, c, k = 6, 4, 3
    head = CosineClassifier(d, c, sub_centers=k).double()
    assert head.weight.shape == (c * k, d)
    x = torch.randn(5, d, dtype=torch.float64)
    every = head.subcenter_cosines(x)
    assert every.shape == (5, c, k)
    w = F.normalize(head.weight, dim=1).view(c, k, d)
    assert torch.allclose(every, torch.einsum("bd,ckd->bck", F.normalize(x, dim=1), w))
    cos = head(x)
    assert cos.shape == (5, c) and torch.equal(cos, every.max(dim=2).values)

    weights = torch.randn(5, c, dtype=torch.float64)
    (cos * weights).sum().backward()
    winners = {cls * k + int(j) for b in range(5) for cls, j in enumerate(every.argmax(2)[b])}
    for row in range(c * k):
        assert (head.weight.grad[row].abs().sum() > 0) == (row in winners)


def test_subcenter_head_tie_sends_gradient_to_one_centre():
    head = CosineClassifier(3, 2, sub_centers=2).double()
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]))
    head(torch.tensor([[1.0, 1.0, 0]], dtype=torch.float64)).sum().backward()
    nonzero = head.weight.grad[:2].abs().sum(1) > 0
    assert nonzero.sum() == 1


def test_make_head_builds_sub_centres_when_the_loss_asks():
    assert make_head(losses.get("subcenter_arcface"), 8, 5).weight.shape == (15, 8)
    assert make_head(losses.get("subcenter_arcface", sub_centers=2), 8, 5).weight.shape == (10, 8)
    assert make_head(losses.get("arcface"), 8, 5).weight.shape == (5, 8)
    with pytest.raises(ValueError, match="sub_centers must be an integer >= 1"):
        CosineClassifier(8, 5, sub_centers=0)


def test_sphereface_schedule_scaled_to_the_run_length():
    """total_steps: lambda reaches 5 after the paper's fraction of training (1,658 of 28,000 iterations)."""
    from frbook.losses.sphereface import PAPER_FLOOR_FRACTION

    assert PAPER_FLOOR_FRACTION == pytest.approx(199 / 0.12 / 28_000, rel=1e-12)
    assert 0.059 < PAPER_FLOOR_FRACTION < 0.0593
    for total in (400, 1000, 28_000):
        loss = losses.get("sphereface", total_steps=total)
        lambdas = []
        for _ in range(total):
            lambdas.append(loss.lamb)
            loss.step()
        assert lambdas.index(5.0) == math.ceil(PAPER_FLOOR_FRACTION * total)  # first step at the floor
        for t in (0, 1, total // 100, total // 20):  # the paper's value at the same fraction of training
            paper_iteration = 28_000 * t / total
            assert lambdas[t] == pytest.approx(max(5.0, 1000 / (1 + 0.12 * paper_iteration)), rel=1e-12)
    # A run of the paper's length gets the paper's per-iteration schedule exactly.
    scaled, per_iteration = losses.get("sphereface", total_steps=28_000), losses.get("sphereface")
    for _ in range(2_000):
        assert scaled.lamb == pytest.approx(per_iteration.lamb, rel=1e-12)
        scaled.step(), per_iteration.step()
    # Unscaled, 400 steps leave lambda near 20: the margin barely applied.
    assert 20 < lambdas_after(losses.get("sphereface"), 400) < 21
    assert losses.get("sphereface", total_steps=400).hparams()["total_steps"] == 400
    assert losses.get("sphereface", lamb=2.0, total_steps=400).lamb == 2.0  # a fixed lambda ignores it
    for bad in (0, -5, 1.5, True, float("nan")):
        with pytest.raises(ValueError, match="total_steps"):
            losses.get("sphereface", total_steps=bad)


def lambdas_after(loss, steps):
    for _ in range(steps):
        loss.step()
    return loss.lamb
