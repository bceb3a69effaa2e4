"""Small tools shared by the margin losses: a safe angle from a cosine, and parameter checks.

The angular margins (SphereFace's k, ArcFace, CurricularFace, AdaFace) need the target angle
``theta = arccos(cos)``. Its derivative, ``-1 / sqrt(1 - cos^2)``, is infinite at cos = +-1, and
cosines of a perfectly aligned (or opposed) sample land exactly there, so :func:`angle` clamps
first. The margin is computed on the B target cosines only, so it costs nothing to do it in at
least float32 (:func:`working_dtype`) even when the logits are float16 or bfloat16: there,
``1 - eps`` is a coarse 0.999 (float16) or 0.996 (bfloat16), which would move the angle of a
well-classified sample by several degrees.
"""
from __future__ import annotations

import numbers

import torch


def working_dtype(x: torch.Tensor) -> torch.dtype:
    """float64 stays float64; float16, bfloat16 and float32 are computed in float32."""
    return torch.promote_types(x.dtype, torch.float32)


def angle(cos: torch.Tensor) -> torch.Tensor:
    """theta = arccos(cos), with cos clamped into [-1 + eps, 1 - eps] (eps of its dtype).

    The clamp keeps the value and the gradient finite at cos = +-1; there the gradient through
    the clamp is zero, everywhere else it is the exact ``-1 / sin(theta)``.
    """
    eps = torch.finfo(cos.dtype).eps
    return torch.acos(cos.clamp(-1.0 + eps, 1.0 - eps))


def check_number(name: str, value, ok, rule: str) -> float:
    """``value`` as a float if it is a finite real number with ``ok(value)``, else a ValueError
    that names the parameter and the rule (e.g. ``"in [0, pi)"``)."""
    if (
        not isinstance(value, numbers.Real)
        or isinstance(value, bool)
        or not float(value) == float(value)  # NaN
        or abs(float(value)) == float("inf")
        or not ok(float(value))
    ):
        raise ValueError(f"{name} must be a number {rule}, got {value!r}")
    return float(value)
