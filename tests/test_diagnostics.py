"""frbook.eval.diagnostics: the collapse measurements, in float64 on constructed cases."""
import math

import pytest
import torch

from frbook.eval.diagnostics import (centre_span_energy, class_compactness, class_directions, effective_dimension,
                                     embedding_geometry, mean_target_angle)


def _axes(counts, dim):
    """Unit embeddings: counts[k] copies each of +e_k and -e_k (mean zero, variance along e_k ~ counts[k])."""
    rows = []
    for k, n in enumerate(counts):
        e = torch.zeros(dim, dtype=torch.float64)
        e[k] = 1.0
        rows += [e] * n + [-e] * n
    return torch.stack(rows)


@pytest.mark.parametrize("counts", [(5,), (5, 5), (3, 3, 3, 3), (1, 4), (2, 7, 1)])
def test_effective_dimension_is_the_participation_ratio(counts):
    x = _axes(counts, dim=6)
    expected = sum(counts) ** 2 / sum(n * n for n in counts)  # eigenvalues proportional to the counts
    assert effective_dimension(x) == pytest.approx(expected, rel=1e-12)


def test_effective_dimension_ignores_lengths_and_rotations():
    g = torch.Generator().manual_seed(0)
    x = _axes((2, 7, 1), dim=6)
    rotation, _ = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64))
    lengths = torch.rand(len(x), 1, generator=g, dtype=torch.float64) * 10 + 0.1
    assert effective_dimension(lengths * x @ rotation) == pytest.approx(effective_dimension(x), rel=1e-10)


def test_effective_dimension_of_identical_directions_is_zero_and_bad_input_is_refused():
    assert effective_dimension(torch.ones(4, 3, dtype=torch.float64)) == 0.0
    with pytest.raises(ValueError, match="at least two"):
        effective_dimension(torch.ones(1, 3))
    with pytest.raises(ValueError, match="NaN"):
        effective_dimension(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]))


def test_centre_span_energy_on_constructed_cases():
    centres = torch.tensor([[1.0, 0, 0, 0], [0, 3.0, 0, 0]], dtype=torch.float64)  # spans e1, e2
    assert centre_span_energy(torch.tensor([[1.0, 1, 1, 1]], dtype=torch.float64), centres) == pytest.approx(0.5, abs=1e-14)
    assert centre_span_energy(torch.tensor([[0, 0, 2.0, 0]], dtype=torch.float64), centres) == pytest.approx(0.0, abs=1e-14)
    assert centre_span_energy(torch.tensor([[3.0, -4.0, 0, 0]], dtype=torch.float64), centres) == pytest.approx(1.0, abs=1e-14)
    # Linearly dependent centres span one line, not two.
    dependent = torch.tensor([[1.0, 1, 0, 0], [2.0, 2, 0, 0]], dtype=torch.float64)
    assert centre_span_energy(torch.tensor([[1.0, 0, 0, 0]], dtype=torch.float64), dependent) == pytest.approx(0.5, abs=1e-14)
    # C >= D centres in general position span everything.
    g = torch.Generator().manual_seed(1)
    assert centre_span_energy(torch.randn(10, 4, generator=g, dtype=torch.float64),
                              torch.randn(6, 4, generator=g, dtype=torch.float64)) == pytest.approx(1.0, abs=1e-12)


def test_centre_span_energy_of_random_directions_is_c_over_d():
    g = torch.Generator().manual_seed(2)
    x, centres = torch.randn(20000, 16, generator=g, dtype=torch.float64), torch.randn(4, 16, generator=g, dtype=torch.float64)
    geometry = embedding_geometry(x, centres, torch.zeros(len(x), dtype=torch.long))
    assert geometry["centre_span_chance"] == 0.25
    assert geometry["centre_span_energy"] == pytest.approx(0.25, abs=0.01)  # sd of the mean is about 0.001
    assert geometry["target_angle"] == pytest.approx(90.0, abs=1.0)


def test_mean_target_angle_on_constructed_angles():
    centres = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    angles = torch.tensor([0.0, 30.0, 60.0, 90.0], dtype=torch.float64)
    x = torch.stack([torch.cos(torch.deg2rad(angles)), torch.sin(torch.deg2rad(angles))], 1)
    assert mean_target_angle(x, centres, torch.zeros(4, dtype=torch.long)) == pytest.approx(45.0, abs=1e-10)
    assert mean_target_angle(x, centres, torch.ones(4, dtype=torch.long)) == pytest.approx(45.0, abs=1e-10)
    assert mean_target_angle(-x[:1], centres, torch.zeros(1, dtype=torch.long)) == pytest.approx(180.0, abs=1e-6)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\]"):
        mean_target_angle(x, centres, torch.full((4,), 2))
    with pytest.raises(ValueError, match="dimensions"):
        centre_span_energy(x, torch.ones(2, 3))
    assert math.isfinite(mean_target_angle(x.float(), centres.float(), torch.zeros(4, dtype=torch.long)))


def test_class_compactness_on_constructed_angles():
    # Two classes in the plane: class 0 at +-10 degrees around 0, class 1 at +-20 degrees around 90.
    angles = torch.tensor([10.0, -10.0, 110.0, 70.0], dtype=torch.float64).deg2rad()
    features = 3 * torch.stack([angles.cos(), angles.sin()], 1)  # lengths do not matter
    labels = torch.tensor([0, 0, 1, 1])
    x, means = class_directions(features, labels)
    assert torch.allclose(x.norm(dim=1), torch.ones(4, dtype=torch.float64))
    assert torch.allclose(means, torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64), atol=1e-12)
    within, between, accuracy = class_compactness(features, labels)
    assert within == pytest.approx(15.0) and between == pytest.approx(90.0) and accuracy == 1.0
    # A feature of class 1 pointing at class 0's direction lowers the nearest-direction accuracy.
    features[3] = torch.tensor([1.0, 0.0], dtype=torch.float64)
    assert class_compactness(features, labels)[2] == 0.75
