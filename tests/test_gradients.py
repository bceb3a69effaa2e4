"""P2SGrad and the unified gradient of the cosine-softmax losses, in float64, against autograd."""
from __future__ import annotations

import math

import pytest
import torch

from frbook import losses
from frbook.losses import gradients

B, C = 6, 9

# Every loss the gradients module supports, with settings that exercise each branch.
SUPPORTED = {
    "normface": dict(s=16),
    "cosface": dict(s=30, m=0.35),
    "arcface classic": dict(name="arcface", s=30, m=0.5, fallback="classic"),
    "arcface easy": dict(name="arcface", s=30, m=0.5, fallback="easy"),
    "arcface clip": dict(name="arcface", s=30, m=0.5, fallback="clip"),
    "arcface none": dict(name="arcface", s=30, m=0.5, fallback="none"),
    "arcface straight-through": dict(name="arcface", s=30, m=0.5, grad="straight_through"),
    "subcenter_arcface": dict(s=30, m=0.5),
    "sphereface": dict(s=30, m=4, lamb=5),
    "sphereface m=3": dict(name="sphereface", s=30, m=3, lamb=0),
    "combined": dict(s=30, m1=1.0, m2=0.3, m3=0.2),
    "combined m1=1.35": dict(name="combined", s=30, m1=1.35, m2=0.0, m3=0.0),
    "adacos fixed": dict(name="adacos", num_classes=C, dynamic=False),
}


def make(label: str):
    params = dict(SUPPORTED[label])
    return losses.get(params.pop("name", label), **params)


def cosines(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosines spread over (-1, 1), targets at angles from near 0 to near pi (every branch)."""
    g = torch.Generator().manual_seed(seed)
    cos = torch.rand(B, C, generator=g, dtype=torch.float64) * 1.8 - 0.9
    labels = torch.randint(0, C, (B,), generator=g)
    target_angles = torch.tensor([0.05, 0.6, 1.4, 2.2, 2.75, 3.1], dtype=torch.float64)
    cos[torch.arange(B), labels] = torch.cos(target_angles)
    return cos, labels


@pytest.mark.parametrize("label", SUPPORTED)
def test_cos_gradient_matches_autograd(label):
    loss = make(label)
    cos, labels = cosines()
    cos.requires_grad_(True)
    loss(cos, labels).backward()  # the batch mean: autograd gives the per-sample gradient / B
    expected = gradients.cos_gradient(loss, cos.detach(), labels) / B
    torch.testing.assert_close(cos.grad, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("label", SUPPORTED)
def test_target_slope_matches_autograd_of_the_target_curve(label):
    loss = make(label)
    theta = torch.linspace(0.02, math.pi - 0.02, 301, dtype=torch.float64)
    c = torch.cos(theta).requires_grad_(True)
    # f as a function of the cosine: the loss's own logits at one target column.
    logits = loss.logits(torch.stack([c, torch.zeros_like(c), torch.zeros_like(c)], 1)
                         if not isinstance(loss, losses.AdaCos) else
                         torch.stack([c] + [torch.zeros_like(c)] * (C - 1), 1), torch.zeros(len(c), dtype=torch.long))
    logits[:, 0].sum().backward()
    expected = c.grad / gradients.scale(loss)
    torch.testing.assert_close(gradients.target_slope(loss, theta), expected, rtol=1e-9, atol=1e-9)


def test_closed_form_slopes():
    theta = torch.tensor([0.3, 1.0, 2.0], dtype=torch.float64)
    arc = losses.get("arcface", s=64, m=0.5, fallback="none")
    torch.testing.assert_close(gradients.target_slope(arc, theta), torch.sin(theta + 0.5) / torch.sin(theta))
    # SphereFace, lambda = 0, m = 2: psi = cos(2 theta) on [0, pi/2], slope d(2c^2 - 1)/dc = 4c.
    sphere = losses.get("sphereface", s=30, m=2, lamb=0)
    torch.testing.assert_close(gradients.target_slope(sphere, theta[:1]), 4 * torch.cos(theta[:1]))
    # At theta = 0 and pi the SphereFace slope is finite: m^2 and (-1)^(m+1) m^2 (through psi's sign).
    edges = torch.tensor([0.0, math.pi], dtype=torch.float64)
    slope = gradients.target_slope(losses.get("sphereface", m=4, lamb=0), edges)
    assert torch.isfinite(slope).all()
    assert slope[0].item() == pytest.approx(16.0)
    combined = losses.get("combined", m1=1.35, m2=0.0, m3=0.0)
    assert gradients.target_slope(combined, torch.zeros(1, dtype=torch.float64)).item() == pytest.approx(1.35**2)


def test_p2sgrad_gradient_is_cos_minus_onehot():
    cos, labels = cosines(1)
    onehot = torch.nn.functional.one_hot(labels, C).double()
    for reduction, factor in (("mean", 1 / B), ("mean_bc", 2 / (B * C))):
        x = cos.clone().requires_grad_(True)
        losses.get("p2sgrad", reduction=reduction)(x, labels).backward()
        torch.testing.assert_close(x.grad, factor * (cos - onehot), rtol=1e-12, atol=1e-15)
    # The value: 0.5 sum_j (cos - onehot)^2, averaged over the batch.
    value = losses.get("p2sgrad")(cos, labels).item()
    assert value == pytest.approx(0.5 * ((cos - onehot) ** 2).sum().item() / B, rel=1e-12)
    torch.testing.assert_close(gradients.cos_gradient(losses.get("p2sgrad"), cos, labels), cos - onehot)


def test_p2sgrad_has_no_hyper_parameters_and_checks_its_input():
    loss = losses.get("p2sgrad")
    assert loss.hparams() == {"reduction": "mean"}
    with pytest.raises(ValueError, match="reduction"):
        losses.get("p2sgrad", reduction="sum")
    with pytest.raises(TypeError):
        losses.get("p2sgrad", s=64)
    with pytest.raises(ValueError, match="labels"):
        loss(torch.zeros(2, 3), torch.tensor([0, 3]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_p2sgrad_is_finite_at_the_edges(dtype):
    cos = torch.tensor([[1.0, -1.0, 0.0], [-1.0, 1.0, 1.0]], dtype=dtype, requires_grad=True)
    value = losses.get("p2sgrad")(cos, torch.tensor([0, 0]))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(cos.grad).all()


@pytest.mark.parametrize("label", ["normface", "cosface", "arcface classic", "sphereface", "combined"])
def test_target_angle_gradient_matches_autograd(label):
    """|d loss / d theta_y| for a sample whose other C - 1 cosines equal 0.1, through autograd."""
    loss = make(label)
    theta = torch.linspace(0.05, math.pi - 0.05, 60, dtype=torch.float64).requires_grad_(True)
    cos = torch.full((len(theta), C), 0.1, dtype=torch.float64)
    cos = torch.cat([torch.cos(theta).unsqueeze(1), cos[:, 1:]], 1)
    labels = torch.zeros(len(theta), dtype=torch.long)
    (loss(cos, labels) * len(theta)).backward()
    closed = gradients.target_angle_gradient(loss, theta.detach(), C, other_cos=0.1)
    torch.testing.assert_close(closed, theta.grad.abs(), rtol=1e-9, atol=1e-12)


def test_target_probability_and_p2sgrad_angle_gradient():
    theta = torch.linspace(0, math.pi, 7, dtype=torch.float64)
    normface = losses.get("normface", s=10)
    p = gradients.target_probability(normface, theta, num_classes=5, other_cos=0.0)
    expected = torch.exp(10 * torch.cos(theta)) / (torch.exp(10 * torch.cos(theta)) + 4)
    torch.testing.assert_close(p, expected)
    p2s = gradients.target_angle_gradient(losses.get("p2sgrad"), theta, num_classes=1000)
    torch.testing.assert_close(p2s, (1 - torch.cos(theta)) * torch.sin(theta))
    with pytest.raises(ValueError, match="num_classes"):
        gradients.target_probability(normface, theta, num_classes=1)


@pytest.mark.parametrize("name", ["curricularface", "adaface", "softmax"])
def test_unsupported_losses_are_refused_with_a_reason(name):
    with pytest.raises(ValueError, match="Supported"):
        gradients.cos_gradient(losses.get(name), *cosines())


def test_every_softmax_loss_shares_one_direction():
    """The embedding gradient of each loss is a combination of the same per-class directions
    (W^_j - cos_j x^) / |x|, with the coefficients of cos_gradient."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(B, 5, generator=g, dtype=torch.float64)
    w = torch.randn(C, 5, generator=g, dtype=torch.float64)
    labels = torch.randint(0, C, (B,), generator=g)
    xn, wn = torch.nn.functional.normalize(x, dim=1), torch.nn.functional.normalize(w, dim=1)
    cos = xn @ wn.T
    directions = (wn.unsqueeze(0) - cos.unsqueeze(2) * xn.unsqueeze(1)) / x.norm(dim=1)[:, None, None]
    for label in ("cosface", "arcface classic", "sphereface"):
        loss = make(label)
        xr = x.clone().requires_grad_(True)
        loss(torch.nn.functional.normalize(xr, dim=1) @ wn.T, labels).backward()
        coefficients = gradients.cos_gradient(loss, cos, labels) / B
        torch.testing.assert_close(xr.grad, (coefficients.unsqueeze(2) * directions).sum(1))


def test_arcface_pull_has_a_nonzero_limit_at_the_centre():
    """f' sin(theta) = sin(theta + m) for exact ArcFace: the pull tends to (1 - P_y) s sin(m) at theta = 0."""
    arc = losses.get("arcface", s=16, m=0.5, fallback="none")
    zero = torch.zeros(1, dtype=torch.float64)
    p0 = gradients.target_probability(arc, zero, 10)
    expected = (1 - p0) * 16 * math.sin(0.5)
    torch.testing.assert_close(gradients.target_angle_gradient(arc, zero, 10), expected, rtol=1e-6, atol=0)
    normface = losses.get("normface", s=16)
    assert gradients.target_angle_gradient(normface, zero, 10).item() < 1e-6
