"""The first losses and heads, checked against their closed forms in float64."""
import math

import pytest
import torch
import torch.nn.functional as F

from frbook import losses
from frbook.heads import CosineClassifier, LinearClassifier, make_head


def random_cos(batch=6, classes=5, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    cos = torch.rand(batch, classes, generator=g, dtype=dtype) * 2 - 1
    labels = torch.randint(0, classes, (batch,), generator=g)
    return cos, labels


def test_registry_lists_known_names_on_unknown_loss():
    with pytest.raises(ValueError, match="known losses: .*normface.*softmax"):
        losses.get("arcfase")


def test_registry_rejects_unknown_parameter_and_lists_accepted():
    with pytest.raises(TypeError, match="takes: s, learn_scale"):
        losses.get("normface", margin=0.5)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "16"])
def test_normface_rejects_bad_scale(bad):
    with pytest.raises(ValueError, match="s must be a positive number"):
        losses.get("normface", s=bad)


def test_normface_logits_and_value_match_closed_form():
    cos, labels = random_cos()
    loss = losses.get("normface", s=16.0).double()
    assert torch.allclose(loss.logits(cos, labels), 16.0 * cos)
    # Cross-entropy written out: log-sum-exp minus the target logit, averaged over the batch.
    z = 16.0 * cos
    expected = (torch.logsumexp(z, 1) - z[torch.arange(len(labels)), labels]).mean()
    assert torch.allclose(loss(cos, labels), expected)


def test_normface_gradient_is_s_times_p_minus_onehot():
    cos, labels = random_cos()
    cos.requires_grad_(True)
    s = 10.0
    loss = losses.get("normface", s=s).double()
    loss(cos, labels).backward()
    p = torch.softmax(s * cos.detach(), 1)
    expected = s * (p - F.one_hot(labels, cos.shape[1]).double()) / cos.shape[0]
    assert torch.allclose(cos.grad, expected, atol=1e-12)
    assert torch.autograd.gradcheck(lambda c: loss(c, labels), (cos.detach().requires_grad_(),))


def test_normface_learned_scale_gets_a_gradient_and_stays_positive():
    cos, labels = random_cos()
    loss = losses.get("normface", s=4.0, learn_scale=True).double()
    loss(cos, labels).backward()
    assert loss.log_s.grad is not None and loss.log_s.grad.abs() > 0
    assert float(loss.s.detach()) == pytest.approx(4.0, rel=1e-6)
    # The scale's gradient, in closed form: dL/ds = mean_i sum_j (p_ij - 1[j=y_i]) cos_ij.
    s = loss.s.detach()
    p = torch.softmax(s * cos, 1)
    dl_ds = ((p - F.one_hot(labels, cos.shape[1]).double()) * cos).sum(1).mean()
    assert float(loss.log_s.grad) == pytest.approx(float(dl_ds * s), rel=1e-10)  # chain rule through log s


def test_fixed_scale_is_not_a_parameter():
    assert list(losses.get("normface", s=8).parameters()) == []


def test_softmax_passes_linear_logits_through():
    z, labels = random_cos()
    loss = losses.get("softmax")
    assert loss.head == "linear"
    assert torch.equal(loss.logits(z, labels), z)
    assert torch.allclose(loss(z, labels), F.cross_entropy(z, labels))


def test_target_logit_is_cosine_for_unmargined_losses():
    theta = torch.linspace(0, math.pi, 50, dtype=torch.float64)
    for name in ["softmax", "normface"]:
        assert torch.allclose(losses.get(name).target_logit(theta), torch.cos(theta))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_normface_finite_at_the_edges(dtype):
    cos = torch.tensor([[1.0, -1.0, 0.0], [-1.0, 1.0, -1.0]], dtype=dtype, requires_grad=True)
    labels = torch.tensor([0, 0])
    value = losses.get("normface", s=64)(cos.float(), labels)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(cos.grad).all()


def test_bad_labels_and_shapes_are_named():
    loss = losses.get("normface")
    cos = torch.zeros(3, 4)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\]"):
        loss(cos, torch.tensor([0, 1, 4]))
    with pytest.raises(ValueError, match="labels must have shape"):
        loss(cos, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="shape \\(batch, classes\\)"):
        loss(torch.zeros(3), torch.tensor([0, 1, 2]))


def test_cosine_classifier_returns_cosines():
    torch.manual_seed(0)
    head = CosineClassifier(8, 5).double()
    x = torch.randn(4, 8, dtype=torch.float64) * 7  # the norm of x must not matter
    cos = head(x)
    expected = F.normalize(x, dim=1) @ F.normalize(head.weight, dim=1).t()
    assert cos.shape == (4, 5)
    assert torch.allclose(cos, expected)
    assert cos.abs().max() <= 1.0
    # The cosine of a centre with itself is exactly at the edge, and stays inside [-1, 1].
    assert torch.allclose(head(head.weight.detach()[:2] * 3).diagonal(), torch.ones(2, dtype=torch.float64))


def test_make_head_follows_the_loss():
    assert isinstance(make_head(losses.get("softmax"), 8, 3), LinearClassifier)
    assert isinstance(make_head(losses.get("normface"), 8, 3), CosineClassifier)
    with pytest.raises(ValueError, match="num_classes must be at least 2"):
        CosineClassifier(8, 1)
