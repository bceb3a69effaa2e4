"""SynthFaces: an endless, deterministic data set of procedurally painted faces.

The book needs a face data set that ships with the code, runs on a laptop CPU, has as many
identities as an experiment wants, and keeps test identities truly unseen. So we *paint* faces.

The generative model
--------------------
Every image is a function of three things (and, when ageing is asked for, its age)::

    image = sensor( light( pose( paint(identity, expression) ) ) )

* The **identity vector** (face shape and jaw, skin tone, hair colour, length, volume and
  hairline, eye position, size and colour, brows, nose, mouth, lips, ears, glasses, beard,
  moustache) depends only on ``(seed, identity)``. It is what a recogniser must learn.
* The **nuisance vector** depends on ``(seed, identity, image index)``: expression (smile, open
  mouth, squint, raised brows), pose (in-plane rotation, a yaw- and pitch-like squeeze of the
  face, scale, position), background, lighting (gain, offset, a directional gradient, white
  balance), an occluding rectangle, blur and sensor noise. ``difficulty`` in [0, 1] scales every
  nuisance: 0 gives the canonical portrait of each identity, 1 gives hard images.
* The **age** of an image, also from ``(seed, identity, image index)``: drawn uniformly from
  ``[0, age]``, where the knob ``age`` in [0, 1] says how far ageing spans (0, the default: every
  image young, exactly as before ageing existed; 1: from young to old). Ageing keeps the identity
  vector and changes how it is painted: the hair, brows and beard grey, the hairline recedes,
  the face widens and its jaw softens, eyes narrow, lips thin, nose and ears grow, and wrinkles
  appear (forehead lines, crow's feet, lines under the eyes and from nose to mouth). It is the
  nuisance that age-invariant face recognition is about (cross-age verification).

These come from a counter-based hash of the integers ``(seed, identity, index)``, not from
a stateful random generator. An image is therefore the same whether it is rendered alone or in a
batch, on a CPU or a GPU (up to float rounding), first or last.

At the default difficulty 0.5 (64 x 64 grey) raw pixels are a poor face matcher: cosine
similarity of mean-centred pixel vectors verifies held-out pairs about 64% correctly (50% is
chance; 100% at difficulty 0, 53% at difficulty 1), while a small CNN trained for a minute on a
CPU reaches about 90%. Pixels change with pose and light; identity is in the shapes.

How it is rendered
------------------
A whole batch is painted at once with tensor operations; there is no loop over images.

1. ``paint``: in a canonical, upright face frame, soft-edged shapes are composited back to front
   (the painter's algorithm): background, hair, neck, ears, face, wrinkles (aged faces only),
   beard, nose, mouth, eyes, brows, glasses, fringe. The face is left-right symmetric in its own
   frame, so only the left half is painted and then mirrored; the fringe, which may have a side
   parting, is painted last over both halves. Every shape is a level set written as a *column term plus a row term*
   (an ellipse is ``x^2 + y^2``), so its mask costs one full-size addition, and each part is
   computed only on the rows and columns where it can appear.
2. ``pose``: one bilinear resampling (``grid_sample``) applies rotation, scale, translation and
   the yaw/pitch squeeze.
3. ``light``, ``occlude``, ``blur``, ``noise``: photometric nuisances on the final image. The
   blur is a separable Gaussian with a per-image sigma; the sensor noise is one field, scaled
   per image, from a fixed bank of Gaussian noise fields drawn once from the seed.

On a CPU the batch is rendered in chunks of a few hundred images, which keeps every temporary
tensor small; on a GPU in one go. ``benchmarks/bench_synth.py`` measures the speed.

Coordinates are in *canonical units*: the canvas spans [-1, 1] from edge to edge, ``u`` grows to
the right and ``v`` grows downwards, as image rows do.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "SynthFaces",
    "SynthLoader",
    "identity_splits",
    "identity_vector",
    "image_ages",
    "nuisance_vector",
    "render_faces",
]

# --------------------------------------------------------------------------------------------
# Counter-based randomness: uniform numbers as a pure function of integers
# --------------------------------------------------------------------------------------------

_MASK32 = 0xFFFFFFFF
_IDENTITY_STREAM = 1
_NUISANCE_STREAM = 2
_AGE_STREAM = 3  # its own stream: drawing ages leaves every identity and nuisance draw unchanged


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """``x * c mod 2**32`` for ``x`` in [0, 2**32), computed in int64 without ever overflowing.

    Multiplying by the 16-bit halves of ``c`` separately keeps every product below 2**49, so the
    result is exact and the same on every device (signed overflow is never relied upon).
    """
    low = x * (c & 0xFFFF)
    high = ((x * (c >> 16)) & 0xFFFF) << 16
    return (low + high) & _MASK32


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """An avalanche hash of 32-bit words: every input bit flips about half the output bits.

    Alternating xor-shifts and odd multiplications (the 'lowbias32' constants) scramble the bits;
    a counter run through it looks like a stream of independent uniform words.
    """
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def _hash_uniform(keys: Sequence[int | torch.Tensor], count: int) -> torch.Tensor:
    """Uniform floats in [0, 1), shape ``(N, count)``, that depend only on the integer keys.

    ``keys`` are non-negative Python ints or int64 tensors of shape (N,). Row ``i`` of the
    result is a function of ``(keys[0][i], keys[1][i], ...)`` alone, so any subset of rows can
    be recomputed independently. Column ``j`` is the ``j``-th draw for that key tuple. (The
    hash works on Python ints and on tensors alike, so scalar keys cost no tensor work.)
    """
    h = 0
    for position, key in enumerate(keys):
        for word in (key & _MASK32, (key >> 32) & _MASK32):  # both halves: ids may exceed 2**32
            h = _mix32(h ^ _mix32((word + 0x9E3779B9 * (position + 1)) & _MASK32))
    h = torch.as_tensor(h, dtype=torch.int64).reshape(-1)
    counter = _mix32(torch.arange(count, dtype=torch.int64) + 0x632BE5AB)
    bits = _mix32(h[:, None] ^ counter[None, :])
    # 24 bits fill the float32 mantissa exactly: the value is identical on every device.
    return (bits >> 8).to(torch.float32) * (1.0 / (1 << 24))


# --------------------------------------------------------------------------------------------
# The identity vector
# --------------------------------------------------------------------------------------------

# Each identity trait is drawn as one uniform number; the order fixes which hash column it uses,
# so new traits must be appended to keep existing identities unchanged.
_IDENTITY_TRAITS = (
    "face_width", "face_height", "face_squareness", "jaw", "skin_tone", "skin_warmth",
    "hair_tone", "hair_kind", "hair_volume", "hair_length", "hairline", "hair_parting",
    "hairline_curve", "eye_height", "eye_spacing", "eye_width", "eye_openness", "iris_size",
    "iris_tone", "brow_gap", "brow_thickness", "brow_length", "brow_tilt", "brow_arch",
    "brow_offset", "nose_length", "nose_width", "mouth_gap", "mouth_width", "upper_lip",
    "lower_lip", "lip_tone", "resting_smile", "glasses", "glasses_width", "glasses_height",
    "glasses_squareness", "glasses_tone", "beard", "beard_line", "moustache",
    "moustache_thickness", "ear_width", "ear_height",
)

FACE_CENTRE_V = 0.08  # the face is centred slightly below the canvas centre to leave room for hair

# Colour palettes, RGB in [0, 1]; a trait in [0, 1] slides along the stops.
_SKIN = ((0.98, 0.86, 0.77), (0.93, 0.75, 0.62), (0.80, 0.59, 0.44), (0.60, 0.41, 0.28),
         (0.38, 0.25, 0.17))
_HAIR = ((0.05, 0.04, 0.04), (0.20, 0.12, 0.08), (0.40, 0.26, 0.14), (0.60, 0.29, 0.13),
         (0.85, 0.71, 0.45), (0.75, 0.75, 0.75))
_IRIS = ((0.28, 0.16, 0.07), (0.45, 0.33, 0.14), (0.27, 0.45, 0.29), (0.28, 0.47, 0.70))
_LUMA = (0.299, 0.587, 0.114)


def _lerp(low: float, high: float, t: torch.Tensor) -> torch.Tensor:
    return low + (high - low) * t


def _palette(stops: Sequence[Sequence[float]], t: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear colour ramp: ``t`` in [0, 1] of shape (N,) -> RGB of shape (N, 3)."""
    table = torch.tensor(stops, dtype=torch.float32)
    position = t.clamp(0, 1) * (len(stops) - 1)
    lower = position.floor().long().clamp(max=len(stops) - 2)
    frac = (position - lower)[:, None]
    return table[lower] * (1 - frac) + table[lower + 1] * frac


def identity_vector(identity_ids, seed: int = 0) -> dict[str, torch.Tensor]:
    """The traits of each identity, as a dict of float32 tensors of shape (N,) or (N, 3) (colours).

    Lengths are in canonical units (the canvas is 2 units wide). Every trait is a function of
    ``(seed, identity)`` only, so an identity looks the same in every image and every split.
    """
    ids = _as_index_tensor(identity_ids, "identity_ids")
    seed = _check_seed(seed)
    u = _hash_uniform([seed, _IDENTITY_STREAM, ids],
                      len(_IDENTITY_TRAITS))
    r = {name: u[:, i] for i, name in enumerate(_IDENTITY_TRAITS)}
    t = {}
    # Face outline: a superellipse (squareness 2 = ellipse) whose lower half narrows by `jaw`.
    t["face_width"] = _lerp(0.44, 0.56, r["face_width"])
    t["face_height"] = _lerp(0.58, 0.70, r["face_height"])
    t["face_squareness"] = _lerp(1.9, 3.0, r["face_squareness"])
    t["jaw"] = _lerp(0.0, 0.9, r["jaw"])
    # Skin: light to dark, with a little variation of warmth so equal tones still differ.
    skin = _palette(_SKIN, r["skin_tone"])
    warmth = _lerp(-0.04, 0.04, r["skin_warmth"])[:, None]
    t["skin"] = (skin + warmth * torch.tensor([1.0, 0.0, -1.0])).clamp(0, 1)
    # Hair: about one identity in ten is bald; the rest vary in colour, volume, length, hairline.
    t["hair"] = _palette(_HAIR, r["hair_tone"])
    t["hair_alpha"] = (r["hair_kind"] >= 0.1).float()
    t["hair_volume"] = _lerp(0.03, 0.15, r["hair_volume"])
    t["hair_length"] = _lerp(0.0, 0.9, r["hair_length"] ** 2)  # short hair is more common
    t["hairline"] = FACE_CENTRE_V - t["face_height"] + _lerp(0.08, 0.30, r["hairline"])
    t["hair_parting"] = _lerp(-0.3, 0.3, r["hair_parting"])
    t["hairline_curve"] = _lerp(0.3, 1.1, r["hairline_curve"])
    # Eyes: almond shapes bounded by two parabolic lids, with a round iris and pupil.
    t["eye_v"] = FACE_CENTRE_V - _lerp(0.0, 0.16, r["eye_height"])
    t["eye_dx"] = _lerp(0.17, 0.26, r["eye_spacing"])
    t["eye_width"] = _lerp(0.075, 0.115, r["eye_width"])
    t["eye_height"] = t["eye_width"] * _lerp(0.42, 0.70, r["eye_openness"])
    t["iris_radius"] = t["eye_height"] * _lerp(0.75, 1.0, r["iris_size"])
    t["iris"] = _palette(_IRIS, r["iris_tone"])
    # Brows: a tapered arc above each eye, in a darker shade of the hair colour.
    t["brow_gap"] = _lerp(0.05, 0.12, r["brow_gap"])
    t["brow_thickness"] = _lerp(0.014, 0.035, r["brow_thickness"])
    t["brow_length"] = _lerp(0.08, 0.13, r["brow_length"])
    t["brow_tilt"] = _lerp(-0.35, 0.35, r["brow_tilt"])
    t["brow_arch"] = _lerp(0.0, 0.05, r["brow_arch"])
    t["brow_dx"] = t["eye_dx"] + _lerp(-0.02, 0.03, r["brow_offset"])
    t["brow"] = t["hair"] * 0.7
    # Nose and mouth: positions chained down the face, so their spacing is part of the identity.
    t["nose_v"] = t["eye_v"] + _lerp(0.12, 0.24, r["nose_length"])
    t["nose_width"] = _lerp(0.045, 0.085, r["nose_width"])
    t["mouth_v"] = t["nose_v"] + _lerp(0.08, 0.15, r["mouth_gap"])
    t["mouth_width"] = _lerp(0.10, 0.19, r["mouth_width"])
    t["upper_lip"] = _lerp(0.012, 0.03, r["upper_lip"])
    t["lower_lip"] = _lerp(0.015, 0.04, r["lower_lip"])
    t["lips"] = (t["skin"] * torch.tensor([0.85, 0.55, 0.55])
                 * _lerp(0.75, 1.0, r["lip_tone"])[:, None])
    t["resting_smile"] = _lerp(-0.015, 0.035, r["resting_smile"])
    # Accessories and facial hair: present for a minority, which makes those identities easy.
    t["glasses_alpha"] = (r["glasses"] < 0.18).float()
    t["glasses_width"] = t["eye_width"] * _lerp(1.35, 1.7, r["glasses_width"])
    t["glasses_height"] = t["eye_width"] * _lerp(0.9, 1.3, r["glasses_height"])
    t["glasses_squareness"] = _lerp(2.0, 5.0, r["glasses_squareness"])
    t["glasses"] = _lerp(0.02, 0.45, r["glasses_tone"])[:, None].expand(-1, 3).clone()
    t["beard_alpha"] = torch.where(r["beard"] < 0.2, _lerp(0.55, 0.95, r["beard"] / 0.2), 0.0)
    t["beard_line"] = _lerp(-0.02, 0.06, r["beard_line"])
    t["moustache_alpha"] = torch.where(r["moustache"] < 0.22, 1.0, 0.0)
    t["moustache_thickness"] = _lerp(0.015, 0.03, r["moustache_thickness"])
    t["ear_width"] = _lerp(0.045, 0.075, r["ear_width"])
    t["ear_height"] = _lerp(0.08, 0.12, r["ear_height"])
    return t


# --------------------------------------------------------------------------------------------
# The nuisance vector
# --------------------------------------------------------------------------------------------

_NUISANCE_DRAWS = (
    "rotation", "yaw", "pitch", "scale", "shift_u", "shift_v", "background", "background_r",
    "background_g", "background_b", "gain", "offset", "light_angle", "light_strength",
    "white_r", "white_g", "white_b", "smile", "mouth_open", "eye_open", "brow_raise",
    "occluder", "occluder_u", "occluder_v", "occluder_width", "occluder_height",
    "occluder_tone", "blur", "noise", "noise_field",
)

# The largest nuisance of each kind, reached at difficulty 1 (lengths in canonical units).
NUISANCE_AT_DIFFICULTY_1 = {
    "rotation": 0.45,        # radians, about 26 degrees either way
    "yaw": 0.22,             # horizontal squeeze that moves the features sideways
    "pitch": 0.12,           # the same vertically
    "log_scale": 0.25,       # face size from exp(-0.25) to exp(0.25)
    "shift": 0.22,           # face position, either way on both axes
    "background": 0.6,       # background grey level: 0.5 plus or minus this (clipped)
    "background_tint": 0.25,
    "log_gain": 0.5,         # overall exposure from exp(-0.5) to exp(0.5)
    "offset": 0.15,
    "light_gradient": 0.5,   # relative brightness change per canonical unit
    "white_balance": 0.12,
    "smile": 0.05,
    "mouth_open": 0.06,
    "squint": 0.8,           # fraction of the eye that can close
    "brow_raise": 0.035,
    "occluder_probability": 0.7,
    "occluder_size": 0.3,    # largest half-size added to a minimum of 0.08
    "blur_sigma": 1.3,       # pixels at 64 x 64, scaled with the image size
    "noise_std": 0.08,
}
NOISE_FIELDS = 64  # sensor noise is drawn from a fixed bank of this many fields (see _noise_bank)


def nuisance_vector(identity_ids, image_indices, seed: int = 0,
                    difficulty: float = 0.5) -> dict[str, torch.Tensor]:
    """The nuisance of each image, as a dict of float32 tensors of shape (N,) or (N, 3).

    A function of ``(seed, identity, image index)`` only. Every entry is zero (or neutral) at
    ``difficulty=0`` and grows linearly with ``difficulty`` up to ``NUISANCE_AT_DIFFICULTY_1``.
    """
    ids, idx = _image_keys(identity_ids, image_indices)
    seed = _check_seed(seed)
    _check_size_channels_difficulty(16, 1, difficulty)
    u = _hash_uniform([seed, _NUISANCE_STREAM, ids, idx],
                      len(_NUISANCE_DRAWS))
    r = {name: u[:, i] for i, name in enumerate(_NUISANCE_DRAWS)}
    s = {name: 2 * value - 1 for name, value in r.items()}  # the same draws, symmetric in [-1, 1)
    d = float(difficulty)
    m = NUISANCE_AT_DIFFICULTY_1
    n = {}
    n["rotation"] = d * m["rotation"] * s["rotation"]
    n["yaw"] = d * m["yaw"] * s["yaw"]
    n["pitch"] = d * m["pitch"] * s["pitch"]
    n["scale"] = torch.exp(d * m["log_scale"] * s["scale"])
    n["shift_u"] = d * m["shift"] * s["shift_u"]
    n["shift_v"] = d * m["shift"] * s["shift_v"]
    tint = torch.stack([s["background_r"], s["background_g"], s["background_b"]], 1)
    n["background"] = (0.5 + d * m["background"] * s["background"])[:, None] \
        + d * m["background_tint"] * tint
    n["gain"] = torch.exp(d * m["log_gain"] * s["gain"])
    n["offset"] = d * m["offset"] * s["offset"]
    angle = 2 * math.pi * r["light_angle"]
    strength = d * m["light_gradient"] * r["light_strength"]
    n["light_du"] = strength * torch.cos(angle)
    n["light_dv"] = strength * torch.sin(angle)
    white = torch.stack([s["white_r"], s["white_g"], s["white_b"]], 1)
    n["white_balance"] = 1 + d * m["white_balance"] * white
    n["smile"] = d * m["smile"] * s["smile"]
    n["mouth_open"] = d * m["mouth_open"] * r["mouth_open"] ** 2
    n["eye_open"] = 1 - d * m["squint"] * r["eye_open"] ** 3  # mostly open, sometimes a squint
    n["brow_raise"] = d * m["brow_raise"] * s["brow_raise"]
    present = (r["occluder"] < d * m["occluder_probability"]).float()
    n["occluder_alpha"] = present
    n["occluder_u"] = 0.7 * s["occluder_u"]
    n["occluder_v"] = 0.7 * s["occluder_v"]
    n["occluder_width"] = 0.08 + d * m["occluder_size"] * r["occluder_width"]
    n["occluder_height"] = 0.08 + d * m["occluder_size"] * r["occluder_height"]
    n["occluder"] = r["occluder_tone"][:, None].expand(-1, 3).clone()
    n["blur_sigma"] = d * m["blur_sigma"] * r["blur"]  # in pixels at 64 x 64
    n["noise_std"] = d * m["noise_std"] * r["noise"]
    n["noise_field"] = (r["noise_field"] * NOISE_FIELDS).long().clamp(max=NOISE_FIELDS - 1)
    return n


# --------------------------------------------------------------------------------------------
# Age: an identity-preserving change of how the identity is painted
# --------------------------------------------------------------------------------------------

# How much each trait changes at age 1 (relative changes unless noted); at age a, a times this.
AGEING_AT_AGE_1 = {
    "greying": 1.0,          # share of the way the hair colour moves to _GREY (at a ** 1.5: late)
    "hairline": 0.08,        # canonical units the hairline recedes
    "hair_volume": -0.3,
    "face_width": 0.05,      # cheeks fill out
    "face_height": 0.03,
    "jaw": -0.4,             # the jaw line softens (jowls)
    "eye_height": -0.2,      # lids droop
    "brow_thickness": -0.35,
    "lips": -0.35,
    "nose_width": 0.12,      # noses and ears keep growing
    "ear_height": 0.12,
    "wrinkles": 0.8,         # opacity of the wrinkle lines
}
_GREY = (0.80, 0.80, 0.78)


def _check_age(age) -> None:
    if not isinstance(age, numbers.Real) or isinstance(age, bool) or not math.isfinite(age) \
            or not 0.0 <= float(age) <= 1.0:
        raise ValueError(f"age must be a number in [0, 1] (how far ageing spans: 0 = no ageing, "
                         f"1 = from young to old), got {age!r}")


def image_ages(identity_ids, image_indices, seed: int = 0, age: float = 0.0) -> torch.Tensor:
    """The age of each image in [0, ``age``], float32 of shape (N,): drawn uniformly, as a
    function of ``(seed, identity, image index)`` only, so one identity is seen at many ages."""
    ids, idx = _image_keys(identity_ids, image_indices)
    seed = _check_seed(seed)
    _check_age(age)
    return float(age) * _hash_uniform([seed, _AGE_STREAM, ids, idx], 1)[:, 0]


def _check_ages(ages, n: int) -> torch.Tensor:
    """Explicit per-image ages: N finite numbers in [0, 1], as a float32 CPU tensor."""
    ages = torch.as_tensor(ages, dtype=torch.float32).reshape(-1).cpu()
    if ages.numel() == 1 and n != 1:
        ages = ages.expand(n)
    if ages.numel() != n:
        raise ValueError(f"ages must hold one age per image ({n}), got {ages.numel()}")
    if not torch.isfinite(ages).all() or (ages < 0).any() or (ages > 1).any():
        raise ValueError("ages must be numbers in [0, 1] (0 = young, 1 = old)")
    return ages


def _age(p: dict[str, torch.Tensor], a: torch.Tensor) -> None:
    """Age the traits of ``p`` (identity plus nuisance, shapes (N,) and (N, 3)) to ages ``a``.

    Every change is a function of the identity's own traits and the age, so an old face is the
    same person's young face, changed the way faces change. At ``a = 0`` nothing changes (each
    trait is multiplied by 1 or moved by 0) except that the wrinkles get opacity 0.
    """
    m = AGEING_AT_AGE_1
    grey = (m["greying"] * a.pow(1.5))[:, None]  # hair greys late, then quickly
    target = torch.tensor(_GREY)
    p["hair"] = torch.lerp(p["hair"], target.expand_as(p["hair"]), grey)
    p["brow"] = torch.lerp(p["brow"], (0.75 * target).expand_as(p["brow"]), 0.8 * grey)
    p["hairline"] = p["hairline"] - m["hairline"] * a
    for name in ("hair_volume", "face_width", "face_height", "jaw", "eye_height", "brow_thickness",
                 "nose_width", "ear_height"):
        p[name] = p[name] * (1 + m[name] * a)
    for name in ("upper_lip", "lower_lip"):
        p[name] = p[name] * (1 + m["lips"] * a)
    p["wrinkles"] = m["wrinkles"] * a


# --------------------------------------------------------------------------------------------
# Painting: soft masks composited back to front
# --------------------------------------------------------------------------------------------


class _Canvas:
    """Pixel-centre coordinates of a square canvas and the windows that parts are painted in.

    ``au`` is the distance from the vertical midline, used for the left half, which is painted
    once and mirrored. Every coordinate tensor is shaped to broadcast against per-image
    parameters of shape (N, 1, 1): rows as (1, h, 1), columns as (1, 1, w).
    """

    def __init__(self, size: int, device: torch.device):
        self.size = size
        self.px = size / 2  # pixels per canonical unit
        self.coords = (torch.arange(size, device=device, dtype=torch.float32) * 2 + 1) / size - 1
        self.half = (size + 1) // 2  # the left half, including the centre column when size is odd

    def rows(self, v_low: float, v_high: float) -> tuple[slice, torch.Tensor]:
        """The rows whose centres lie in [v_low, v_high], widened by two pixels for soft edges."""
        first = max(0, math.floor((v_low + 1) * self.px) - 2)
        last = min(self.size, math.ceil((v_high + 1) * self.px) + 2)
        return slice(first, last), self.coords[first:last].view(1, -1, 1)

    def left_columns(self, au_max: float = 1.0) -> tuple[slice, torch.Tensor]:
        """The columns of the left half within ``au_max`` of the midline, and their ``au``."""
        first = max(0, math.floor((1 - au_max) * self.px) - 2)
        return slice(first, self.half), (-self.coords[first:self.half]).view(1, 1, -1)

    def columns(self, u_max: float = 1.0) -> tuple[slice, torch.Tensor]:
        """The columns (both halves) within ``u_max`` of the midline, and their ``u``."""
        first = max(0, math.floor((1 - u_max) * self.px) - 2)
        return slice(first, self.size - first), self.coords[first:self.size - first].view(1, 1, -1)


def _paint(region: torch.Tensor, mask: torch.Tensor, colour: torch.Tensor) -> None:
    """Composite ``colour`` (N, C, 1, 1) over ``region`` (N, C, h, w) with coverage ``mask``.

    ``mask`` is (N, h, w) in [0, 1]; this is the painter's algorithm: later parts cover earlier.
    """
    region.lerp_(colour.expand_as(region), mask.unsqueeze(1))


def _clip(mask: torch.Tensor, limit: torch.Tensor | None) -> torch.Tensor:
    """Clamp a soft level set to [0, 1] in place, then multiply by ``limit`` if given.

    ``limit`` is an opacity (N, 1, 1) or another mask: the product of two soft masks is the
    soft version of 'inside this shape *and* inside that one'.
    """
    mask.clamp_(0.0, 1.0)
    return mask if limit is None else mask.mul_(limit)


def _ellipse(au, v, cu, cv, ru, rv, px, power=2.0, narrowing=None, limit=None) -> torch.Tensor:
    """Soft mask of the superellipse ``|(u-cu)/ru|^p * narrowing(v) + |(v-cv)/rv|^p <= 1``.

    The level-set function is a column term plus a row term, each computed on a thin tensor, so
    the full-size work is one addition and one clamp. Near the boundary ``1 - q`` is about
    ``p * distance / radius``, which scaled by ``px`` gives a ramp about one pixel wide.
    """
    k = torch.minimum(ru, rv) * (px / power)
    column = ((au - cu) / ru).abs().pow(power) * k
    row = (k + 0.5) - ((v - cv) / rv).abs().pow(power) * k
    if narrowing is None:
        mask = row - column
    else:
        mask = column * narrowing
        torch.sub(row, mask, out=mask)
    return _clip(mask, limit)


def _band(u, v, centre, half_width, px, limit=None) -> torch.Tensor:
    """Soft mask of the curved stroke ``|v - centre(u)| <= half_width(u)``.

    ``centre`` and ``half_width`` are column profiles (N, 1, w); a negative half width ends the
    stroke, which is how brows, lids and lips taper to a point.
    """
    distance = (v * px) - (centre * px)
    distance.abs_()
    return _clip(torch.sub(half_width * px + 0.5, distance, out=distance), limit)


def _step(x: torch.Tensor, px: float) -> torch.Tensor:
    """A one-pixel-wide soft step: 0 for x < 0, 1 for x > 0 (x in canonical units)."""
    return (x * px + 0.5).clamp_(0.0, 1.0)


def _paint_hair_back(canvas, g, p):
    """Hair behind the head: a superellipse around the skull that long hair stretches down,
    cut off at the hair's length."""
    rows, v = g.rows(-0.85, 1.0)
    cols, au = g.left_columns(0.75)
    length = p["hair_length"]
    centre = FACE_CENTRE_V + 0.5 * length - 0.02
    ru = p["face_width"] + p["hair_volume"]
    rv = p["face_height"] + p["hair_volume"] + 0.5 * length
    cut = _step(FACE_CENTRE_V + length - 0.1 - v, g.px) * p["hair_alpha"]  # (N, h, 1)
    mask = _ellipse(au, v, 0.0, centre, ru, rv, g.px, power=2.6, limit=cut)
    _paint(canvas[:, :, rows, cols], mask, p["hair"])


def _paint_neck(canvas, g, p):
    rows, v = g.rows(0.3, 1.0)
    cols, au = g.left_columns(0.4)
    width = 0.55 * p["face_width"]
    mask = _step(v - FACE_CENTRE_V - 0.3, g.px) * _step(width - au, g.px)
    _paint(canvas[:, :, rows, cols], mask, p["neck"])


def _paint_ears(canvas, g, p):
    rows, v = g.rows(-0.2, 0.32)
    cols, au = g.left_columns(0.65)
    mask = _ellipse(au, v, p["face_width"] * 0.97, p["eye_v"] + 0.06, p["ear_width"],
                    p["ear_height"], g.px)
    _paint(canvas[:, :, rows, cols], mask, p["ear"])


_FACE_ROWS = (-0.65, 0.86)


def _paint_face(canvas, g, p) -> torch.Tensor:
    """The face outline: a superellipse whose horizontal term grows below the centre, which
    narrows the jaw. Returns the mask, on rows ``_FACE_ROWS``, for the beard to reuse."""
    rows, v = g.rows(*_FACE_ROWS)
    cols, au = g.left_columns(0.6)
    below = ((v - FACE_CENTRE_V) / p["face_height"]).clamp(min=0.0)
    narrowing = 1 + p["jaw"] * below * below
    mask = _ellipse(au, v, 0.0, FACE_CENTRE_V, p["face_width"], p["face_height"], g.px,
                    power=p["face_squareness"], narrowing=narrowing)
    _paint(canvas[:, :, rows, cols], mask, p["skin"])
    return mask


def _paint_wrinkles(canvas, g, p):
    """Wrinkles, placed by the identity's own features, with opacity ``p["wrinkles"]``: three
    forehead lines above the brows, crow's feet fanning out of the outer eye corner, a line under
    each eye, and the fold from the nose to the mouth corner. Lines are at least about one pixel
    wide, so that ageing stays visible in small images."""
    colour, alpha = p["wrinkle"], p["wrinkles"]
    width = 0.004 + 0.35 / g.px  # half width of a line
    brow_top = (p["eye_v"] - p["eye_height"] - p["brow_gap"] - p["brow_raise"] - p["brow_arch"]
                - 2 * p["brow_thickness"])
    rows, v = g.rows(-0.55, 0.05)
    cols, au = g.left_columns(0.4)
    t = au / (0.5 * p["face_width"])
    for k in range(3):  # forehead lines: level in the middle, bending down to the temples
        centre = brow_top - 0.04 - 0.05 * k + 0.05 * t * t
        _paint(canvas[:, :, rows, cols], _band(au, v, centre, width * (1 - t.pow(4)), g.px,
                                               limit=alpha), colour)
    rows, v = g.rows(-0.16, 0.26)
    cols, au = g.left_columns(0.55)
    corner = p["eye_dx"] + p["eye_width"]
    t = (au - corner - 0.045) / 0.03  # each crow's foot runs from 0.015 to 0.075 past the corner
    inside_face = _step(0.97 * p["face_width"] - au, g.px) * alpha
    for slope in (-0.5, 0.0, 0.5):
        centre = p["eye_v"] + slope * (au - corner)
        _paint(canvas[:, :, rows, cols], _band(au, v, centre, width * (1 - t.pow(4)), g.px,
                                               limit=inside_face), colour)
    t = (au - p["eye_dx"]) / (0.9 * p["eye_width"])  # under the eye: a short arc
    centre = p["eye_v"] + 0.7 * p["eye_height"] + 0.035 + 0.02 * t * t
    _paint(canvas[:, :, rows, cols], _band(au, v, centre, width * (1 - t.pow(4)), g.px, limit=alpha),
           colour)
    # The nasolabial fold runs steeply down, so the stroke is measured across the columns: its
    # centre is a column position for each row (a row profile), bowed outwards.
    top, bottom = p["nose_v"] - 0.02, p["mouth_v"] + 0.04
    rows, v = g.rows(-0.05, 0.6)
    cols, au = g.left_columns(0.35)
    s = (v - top) / (bottom - top)
    start, end = p["nose_width"] + 0.03, p["mouth_width"] + 0.03
    centre = start + (end - start) * s + 0.06 * s * (1 - s)
    half = width * (1 - (2 * s - 1).pow(4))
    _paint(canvas[:, :, rows, cols], _band(v, au, centre, half, g.px, limit=alpha), colour)


def _paint_beard(canvas, g, p, face):
    """A beard covers the face below a line between nose and mouth that rises towards the ears
    (the sideburns); a moustache sits above the upper lip. Everyone gets both, with an opacity
    that is 0 for most identities."""
    rows, v = g.rows(*_FACE_ROWS)
    cols, au = g.left_columns(0.6)
    top = (p["nose_v"] + p["mouth_v"]) / 2 + p["beard_line"] - 0.25 * au * au
    mask = _clip(v * g.px - (top * g.px - 0.5), p["beard_alpha"])
    _paint(canvas[:, :, rows, cols], torch.minimum(mask, face, out=mask), p["hair"])

    rows, v = g.rows(-0.06, 0.6)
    cols, au = g.left_columns(0.3)
    t = au / (p["mouth_width"] * 1.15)
    centre = p["mouth_v"] - p["upper_lip"] - p["moustache_thickness"] + 0.03 * t * t
    half = p["moustache_thickness"] * (1 - t.pow(4))
    mask = _band(au, v, centre, half, g.px, limit=p["moustache_alpha"])
    _paint(canvas[:, :, rows, cols], mask, p["hair"])


def _paint_nose(canvas, g, p):
    """A cartoon nose: two nostrils and the curved line under the tip."""
    rows, v = g.rows(0.0, 0.36)
    cols, au = g.left_columns(0.13)
    w = p["nose_width"]
    nostrils = _ellipse(au, v, 0.55 * w, p["nose_v"] - 0.01, 0.35 * w, 0.2 * w, g.px)
    _paint(canvas[:, :, rows, cols], nostrils, p["nostril"])
    t = au / (1.1 * w)
    tip = _band(au, v, p["nose_v"] + 0.25 * w * (1 - t * t), 0.012 * (1 - t.pow(4)), g.px)
    _paint(canvas[:, :, rows, cols], tip, p["shadow"])


def _paint_mouth(canvas, g, p):
    """Lips between two parabolas around a centre line that curls up with a smile; an open
    mouth shows a dark gap between the lips."""
    rows, v = g.rows(-0.03, 0.66)
    cols, au = g.left_columns(0.22)
    t = au / p["mouth_width"]
    taper = 1 - t * t
    line = p["mouth_v"] - p["smile"] * t * t
    top = line - p["upper_lip"] * taper
    gap = p["mouth_open"] * taper
    bottom = line + gap + p["lower_lip"] * taper
    lips = _band(au, v, (top + bottom) / 2, (bottom - top) / 2, g.px)
    _paint(canvas[:, :, rows, cols], lips, p["lips"])
    inside = _band(au, v, line + gap / 2, gap / 2 + 0.008 * (1 - t.pow(8)), g.px)
    _paint(canvas[:, :, rows, cols], inside, p["mouth_inside"])


def _paint_eyes(canvas, g, p):
    """Almond eyes: white between two parabolic lids, then iris and pupil clipped to the white,
    then the upper lid line. A squint lowers the upper lid; a closed eye is the lid line alone."""
    rows, v = g.rows(-0.19, 0.17)
    cols, au = g.left_columns(0.4)
    cu, cv = p["eye_dx"], p["eye_v"]
    t = (au - cu) / p["eye_width"]
    taper = 1 - t * t
    upper = cv - p["eye_height"] * p["eye_open"] * taper
    lower = cv + 0.7 * p["eye_height"] * taper
    region = canvas[:, :, rows, cols]
    white = _band(au, v, (upper + lower) / 2, (lower - upper) / 2, g.px)
    _paint(region, white, p["eye_white"])
    radius = p["iris_radius"]
    _paint(region, _ellipse(au, v, cu, cv, radius, radius, g.px, limit=white), p["iris"])
    radius = 0.45 * radius
    _paint(region, _ellipse(au, v, cu, cv, radius, radius, g.px, limit=white), p["pupil"])
    lid = _band(au, v, upper, 0.008 + 0.6 / g.px - (0.02 + 0.6 / g.px) * t.pow(8), g.px)
    _paint(region, lid, p["pupil"])


def _paint_brows(canvas, g, p):
    rows, v = g.rows(-0.47, 0.14)
    cols, au = g.left_columns(0.46)
    t = (au - p["brow_dx"]) / p["brow_length"]
    centre = (p["eye_v"] - p["eye_height"] - p["brow_gap"] - p["brow_raise"]
              - p["brow_tilt"] * (au - p["brow_dx"]) - p["brow_arch"] * (1 - t * t))
    inner = 1 - 0.3 * t.clamp(-1.0, 1.0)  # thicker at the inner end
    half = p["brow_thickness"] * (1 - t.pow(4)) * inner
    _paint(canvas[:, :, rows, cols], _band(au, v, centre, half, g.px), p["brow"])


def _paint_glasses(canvas, g, p):
    """Frames: a superellipse ring around each eye, a bridge and the temple arms."""
    rows, v = g.rows(-0.26, 0.26)
    cols, au = g.left_columns(0.6)
    cu, cv = p["eye_dx"], p["eye_v"]
    rw, rh, power = p["glasses_width"], p["glasses_height"], p["glasses_squareness"]
    k = torch.minimum(rw, rh) * (g.px / power)  # converts the level set to pixels
    column = ((au - cu) / rw).abs().pow(power) * k
    row = ((v - cv) / rh).abs().pow(power) * k - k
    thickness = 0.012 * g.px + 0.35  # at least a visible line at small sizes
    distance = torch.add(row, column).abs_()  # about the distance to the rim, in pixels
    bar_row = _step(0.012 + 0.3 / g.px - (v - cv + 0.3 * rh).abs(), g.px)
    bar_column = _step(cu - rw - au, g.px) + _step(au - cu - rw, g.px) * _step(
        p["face_width"] - au, g.px)
    bar = torch.mul(bar_row, bar_column)
    ring = _clip(torch.sub(thickness + 0.5, distance, out=distance), p["glasses_alpha"])
    _paint(canvas[:, :, rows, cols], torch.maximum(ring, bar.mul_(p["glasses_alpha"])),
           p["glasses"])


def _paint_fringe(canvas, g, p):
    """Hair in front: inside the hair outline and above the hairline. The hairline dips at the
    temples and may slope to one side (a parting), so this part is painted on both halves."""
    rows, v = g.rows(-0.8, 0.42)
    cols, u = g.columns(0.72)
    hairline = p["hairline"] + p["hair_parting"] * u + p["hairline_curve"] * u * u
    above = _clip((hairline * g.px + 0.5) - v * g.px, p["hair_alpha"])
    outline = _ellipse(u, v, 0.0, FACE_CENTRE_V, p["face_width"] + p["hair_volume"],
                       p["face_height"] + p["hair_volume"], g.px, limit=above)
    _paint(canvas[:, :, rows, cols], outline, p["hair"])


def _paint_canonical(p: dict[str, torch.Tensor], g: _Canvas, channels: int) -> torch.Tensor:
    """Paint upright, centred faces: (N, C, S, S). ``p`` holds identity traits and expression."""
    n = p["face_width"].shape[0]
    canvas = torch.empty(n, channels, g.size, g.size, device=g.coords.device)
    left = canvas[:, :, :, : g.half]
    left.copy_(p["background"].expand_as(left))
    _paint_hair_back(left, g, p)
    _paint_neck(left, g, p)
    _paint_ears(left, g, p)
    face = _paint_face(left, g, p)
    if "wrinkles" in p:  # aged images only: young ones are painted exactly as before ageing existed
        _paint_wrinkles(left, g, p)
    _paint_beard(left, g, p, face)
    _paint_nose(left, g, p)
    _paint_mouth(left, g, p)
    _paint_eyes(left, g, p)
    _paint_brows(left, g, p)
    _paint_glasses(left, g, p)
    mirrored = g.size // 2  # the centre column (odd sizes) is its own mirror image
    canvas[:, :, :, g.size - mirrored:] = left[:, :, :, :mirrored].flip(-1)
    _paint_fringe(canvas, g, p)
    return canvas


# --------------------------------------------------------------------------------------------
# Pose, light and sensor
# --------------------------------------------------------------------------------------------


def _pose(canvas: torch.Tensor, g: _Canvas, p) -> torch.Tensor:
    """Resample the canonical canvas: each output pixel looks up where it came from.

    Going backwards from an output pixel: undo the shift and the scale, undo the yaw (pitch)
    squeeze ``x -> x - yaw * (1 - x^2)`` (features near the midline move sideways more than
    the outline does, as when a head turns), then undo the rotation. The squeeze acts on each
    axis alone, so the whole sampling grid is one row term plus one column term. ``border``
    padding extends the background and the neck beyond the canvas.
    """
    x = (g.coords.view(1, 1, -1) - p["shift_u"]) / p["scale"]
    y = (g.coords.view(1, -1, 1) - p["shift_v"]) / p["scale"]
    x = x - p["yaw"] * (1 - x.clamp(-1.0, 1.0) ** 2)
    y = y - p["pitch"] * (1 - y.clamp(-1.0, 1.0) ** 2)
    cos, sin = torch.cos(p["rotation"]), torch.sin(p["rotation"])
    grid = torch.empty(canvas.shape[0], g.size, g.size, 2, device=canvas.device)
    torch.add(cos * x, sin * y, out=grid[..., 0])
    torch.sub(cos * y, sin * x, out=grid[..., 1])
    return F.grid_sample(canvas, grid, mode="bilinear", padding_mode="border",
                         align_corners=False)


def _light(image: torch.Tensor, g: _Canvas, p) -> None:
    """Multiply by a light field (gain times a linear gradient) and add an offset, in place.
    (White balance is applied to the colours before painting, where it costs nothing.)"""
    x = g.coords.view(1, 1, -1)
    y = g.coords.view(1, -1, 1)
    field = (p["gain"] + p["gain"] * p["light_du"] * x) + p["gain"] * p["light_dv"] * y
    image.mul_(field.unsqueeze(1)).add_(p["offset"].unsqueeze(1))


def _occlude(image: torch.Tensor, g: _Canvas, p) -> None:
    """Paint an axis-aligned grey rectangle (a hand, a cup, a sticker) over some images."""
    x = g.coords.view(1, 1, -1)
    y = g.coords.view(1, -1, 1)
    rows = _step(p["occluder_height"] - (y - p["occluder_v"]).abs(), g.px) * p["occluder_alpha"]
    cols = _step(p["occluder_width"] - (x - p["occluder_u"]).abs(), g.px)
    _paint(image, rows * cols, p["occluder"])


def _blur_radius(size: int, difficulty: float) -> int:
    """Half-width of the blur kernel: fixed by (size, difficulty), never by the batch, so an
    image's pixels do not depend on which other images it is rendered with."""
    sigma = difficulty * NUISANCE_AT_DIFFICULTY_1["blur_sigma"] * size / 64
    return math.ceil(2.5 * sigma)


def _blur(image: torch.Tensor, sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """Separable Gaussian blur with a different sigma (in pixels) for each image.

    A convolution with a per-image kernel is a weighted sum of shifted copies of the image:
    first shifted along the rows, then along the columns. The kernel is symmetric, so the two
    copies at distance ``j`` are added before being weighted. Edges are padded by replication,
    so borders do not darken.
    """
    if radius == 0:
        return image
    size = image.shape[-1]
    taps = torch.arange(radius + 1, device=image.device, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps / sigma.reshape(-1, 1).clamp(min=1e-3)) ** 2)
    kernel = kernel / (2 * kernel.sum(1, keepdim=True) - kernel[:, :1])  # sums to 1 over +-j
    kernel = kernel.view(-1, 1, 1, 1, radius + 1)
    padded = F.pad(image, (radius, radius, radius, radius), mode="replicate")
    for axis in (2, 3):  # rows, then columns
        centre = padded.narrow(axis, radius, size)
        out = centre * kernel[..., 0]
        pair = torch.empty_like(out)
        for j in range(1, radius + 1):
            torch.add(padded.narrow(axis, radius - j, size), padded.narrow(axis, radius + j, size),
                      out=pair)
            out.add_(pair.mul_(kernel[..., j]))
        padded = out
    return padded


_NOISE_BANKS: dict[tuple, torch.Tensor] = {}
_NOISE_BANKS_KEPT = 8  # banks for this many (seed, size, channels, device) settings are cached


def _noise_bank(seed: int, size: int, channels: int, device: torch.device) -> torch.Tensor:
    """``NOISE_FIELDS`` unit Gaussian noise fields (K, C, S, S), drawn once on the CPU.

    Hashing every pixel would cost more than painting the face; instead each image picks one
    field of a fixed bank (its pick and strength are part of its nuisance vector). The bank is
    drawn on the CPU from the seed, so it is identical on every device.
    """
    key = (seed, size, channels, str(device))
    if key not in _NOISE_BANKS:
        if len(_NOISE_BANKS) >= _NOISE_BANKS_KEPT:
            del _NOISE_BANKS[next(iter(_NOISE_BANKS))]  # forget the oldest
        generator = torch.Generator().manual_seed(seed)
        bank = torch.randn(NOISE_FIELDS, channels, size, size, generator=generator)
        _NOISE_BANKS[key] = bank.to(device)
    return _NOISE_BANKS[key]


# --------------------------------------------------------------------------------------------
# The renderer
# --------------------------------------------------------------------------------------------


def _image_parameters(identity_ids, image_indices, seed, difficulty, channels, device, ages=None):
    """Identity traits plus nuisance, broadcast-ready on ``device``: scalars (N, 1, 1), colours
    (N, C, 1, 1). Everything is computed on the CPU, so all devices see the same numbers.
    ``ages`` (N,) ages the traits; None leaves them, and the painting, as they were before
    ageing existed."""
    p = identity_vector(identity_ids, seed)
    n = nuisance_vector(identity_ids, image_indices, seed, difficulty)
    p["smile"] = p.pop("resting_smile") + n.pop("smile")
    p.update(n)
    if ages is not None:
        _age(p, ages)
    skin = p["skin"]
    p["neck"] = skin * 0.85  # in the shadow of the chin
    p["ear"] = skin * 0.93
    p["nostril"] = skin * 0.45
    p["shadow"] = skin * 0.6
    p["mouth_inside"] = torch.tensor([0.30, 0.06, 0.06]).expand_as(skin)
    p["eye_white"] = torch.tensor([0.96, 0.96, 0.94]).expand_as(skin)
    p["pupil"] = torch.tensor([0.05, 0.04, 0.04]).expand_as(skin)
    # White balance scales every colour; doing it here, on N x 3 numbers, is free.
    white_balance = p.pop("white_balance")
    for name in ("skin", "hair", "brow", "iris", "lips", "glasses", "background", "neck", "ear",
                 "nostril", "shadow", "mouth_inside", "eye_white", "pupil"):
        p[name] = p[name] * white_balance
    if "wrinkles" in p:
        p["wrinkle"] = p["skin"] * 0.7  # a shadow in the skin (already white-balanced)
    luma = torch.tensor(_LUMA)
    out = {}
    for name, value in p.items():
        if value.dtype != torch.float32:
            out[name] = value.to(device)
        elif value.dim() == 2:  # a colour; grey images see its luminance
            if channels == 1:
                value = (value * luma).sum(1, keepdim=True)
            out[name] = value.reshape(-1, channels, 1, 1).to(device)
        else:
            out[name] = value.reshape(-1, 1, 1).to(device)
    return out


def _chunk_size(size: int, channels: int, device: torch.device) -> int:
    """How many images to render together.

    On a CPU every tensor operation has a fixed cost (Python, dispatch, and waking the other
    threads, which is slow when other programs keep the cores busy) and a per-pixel cost.
    Chunks of about 2**22 values per full-size tensor (16 MB; 512 grey 64 x 64 images) amortise
    the first while staying quick to allocate; measured on a 2-core machine, 2**20 to 2**22
    are within about 20% of each other when the machine is otherwise idle. A GPU takes the
    whole batch at once.
    """
    if device.type != "cpu":
        return 1 << 30
    return max(1, (1 << 22) // (size * size * max(channels, 2)))


def render_faces(identity_ids, image_indices, *, size: int = 64, channels: int = 1,
                 difficulty: float = 0.5, seed: int = 0, device="cpu", age: float = 0.0,
                 ages=None) -> torch.Tensor:
    """Render image ``image_indices[i]`` of identity ``identity_ids[i]`` for every ``i``.

    Returns float32 images in [0, 1] of shape (N, C, size, size) on ``device``. The result for
    each image depends only on its own (seed, identity, index) and the rendering settings.
    ``age`` in [0, 1] spans the ages drawn (:func:`image_ages`); ``ages``, N numbers (or one)
    in [0, 1], sets each image's age instead (to show one face growing old). With ``age=0`` and
    no ``ages`` (the default), no image is aged: they are the images rendered before ageing existed.
    """
    device = torch.device(device)
    _check_size_channels_difficulty(size, channels, difficulty)
    _check_age(age)
    seed = _check_seed(seed)
    ids, idx = _image_keys(identity_ids, image_indices)
    if ages is not None:
        ages = _check_ages(ages, ids.numel())
    elif age > 0:
        ages = image_ages(ids, idx, seed, age)
    out = torch.empty(ids.numel(), channels, size, size, device=device)
    if ids.numel() == 0:
        return out
    params = _image_parameters(ids, idx, seed, difficulty, channels, device, ages)
    g = _Canvas(size, device)
    bank = _noise_bank(seed, size, channels, device)
    radius = _blur_radius(size, difficulty)
    step = _chunk_size(size, channels, device)
    with torch.no_grad():
        for start in range(0, ids.numel(), step):
            p = {name: value[start:start + step] for name, value in params.items()}
            image = _pose(_paint_canonical(p, g, channels), g, p)
            _light(image, g, p)
            _occlude(image, g, p)
            image = _blur(image, p["blur_sigma"] * (size / 64), radius)
            image.add_(bank[p["noise_field"].view(-1)].mul_(p["noise_std"].unsqueeze(1)))
            torch.clamp(image, 0.0, 1.0, out=out[start:start + step])
    return out


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------


def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _check_size_channels_difficulty(size, channels, difficulty) -> None:
    if not _is_int(size) or size < 16:
        raise ValueError(f"size must be an integer >= 16 (the side of the square image in "
                         f"pixels), got {size!r}")
    if not _is_int(channels) or channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (colour), got {channels!r}")
    if not isinstance(difficulty, numbers.Real) or isinstance(difficulty, bool) \
            or not 0.0 <= float(difficulty) <= 1.0:
        raise ValueError(f"difficulty must be a number in [0, 1] (0 = canonical images, "
                         f"1 = hardest), got {difficulty!r}")


def _check_seed(seed) -> int:
    if not _is_int(seed) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    return int(seed)


def _image_keys(identity_ids, image_indices) -> tuple[torch.Tensor, torch.Tensor]:
    """The (identity, image index) pairs that key an image, as two int64 tensors of one length."""
    ids = _as_index_tensor(identity_ids, "identity_ids")
    idx = _as_index_tensor(image_indices, "image_indices")
    if ids.shape != idx.shape:
        raise ValueError(f"identity_ids and image_indices must have the same length, got "
                         f"{ids.numel()} and {idx.numel()}")
    return ids, idx


def _as_index_tensor(values, name: str) -> torch.Tensor:
    """A 1-D int64 CPU tensor of non-negative integers, or a ValueError naming ``name``."""
    if _is_int(values):
        values = [values]
    tensor = torch.as_tensor(values)
    if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
        raise ValueError(f"{name} must hold integers, got dtype {tensor.dtype}")
    tensor = tensor.to(device="cpu", dtype=torch.int64).reshape(-1)
    if tensor.numel() and int(tensor.min()) < 0:
        raise ValueError(f"{name} must be non-negative integers, got minimum {int(tensor.min())}")
    return tensor


# --------------------------------------------------------------------------------------------
# The data set
# --------------------------------------------------------------------------------------------


class SynthFaces(torch.utils.data.Dataset):
    """Procedurally painted faces: ``identities`` x ``images_per_identity`` labelled images.

    Args:
        identities: an int ``n`` (global identities ``0 .. n-1``) or a sequence/tensor of
            distinct global identity ids (how identity-disjoint splits are made).
        images_per_identity: images of each identity; item ``i`` is image
            ``i % images_per_identity`` of identity ``self.identities[i // images_per_identity]``.
        size: side of the square images in pixels (>= 16).
        channels: 1 for grey, 3 for colour.
        difficulty: in [0, 1], scales every nuisance (pose, light, expression, occlusion, blur,
            noise). 0 gives one canonical image per identity.
        seed: selects the population of faces; identity ``k`` under one seed is unrelated to
            identity ``k`` under another.
        device: where images are rendered and returned.
        age: in [0, 1], how far ageing spans: each image's age is drawn uniformly from
            ``[0, age]`` (:meth:`ages`) and the face painted that old, identity kept (greying
            hair, receding hairline, wider face, softer jaw, narrower eyes, thinner lips and
            brows, wrinkles). 0 (the default): no ageing, the images of before ageing existed.

    Labels are ``0 .. num_classes - 1``, positions in ``self.identities``. Nothing is stored:
    every access renders, deterministically, from (seed, identity, image index).
    """

    def __init__(self, identities=100, images_per_identity: int = 20, size: int = 64,
                 channels: int = 1, difficulty: float = 0.5, seed: int = 0, device="cpu",
                 age: float = 0.0):
        if _is_int(identities):
            if identities < 1:
                raise ValueError(f"identities must be a positive count or a sequence of "
                                 f"identity ids, got {identities!r}")
            ids = torch.arange(int(identities), dtype=torch.int64)
        else:
            ids = _as_index_tensor(identities, "identities")
            if ids.numel() == 0:
                raise ValueError("identities must not be empty")
            if torch.unique(ids).numel() != ids.numel():
                raise ValueError("identities must not contain duplicate ids")
        if not _is_int(images_per_identity) or images_per_identity < 1:
            raise ValueError(f"images_per_identity must be an integer >= 1, got "
                             f"{images_per_identity!r}")
        _check_size_channels_difficulty(size, channels, difficulty)
        _check_age(age)
        self.seed = _check_seed(seed)
        self._ids = ids
        self.images_per_identity = int(images_per_identity)
        self.size = int(size)
        self.channels = int(channels)
        self.difficulty = float(difficulty)
        self.age = float(age)
        self.device = torch.device(device)

    # -- what the data set holds --------------------------------------------------------------

    @property
    def identities(self) -> torch.Tensor:
        """The global identity ids (int64, CPU); label ``k`` is identity ``identities[k]``."""
        return self._ids.clone()

    @property
    def num_classes(self) -> int:
        return self._ids.numel()

    @property
    def labels(self) -> torch.Tensor:
        """The label of every item (int64, CPU)."""
        return torch.arange(len(self)) // self.images_per_identity

    def __len__(self) -> int:
        return self._ids.numel() * self.images_per_identity

    def __repr__(self) -> str:
        return (f"SynthFaces(identities={self.num_classes}, images_per_identity="
                f"{self.images_per_identity}, size={self.size}, channels={self.channels}, "
                f"difficulty={self.difficulty}, seed={self.seed}, device='{self.device}'"
                + (f", age={self.age})" if self.age else ")"))

    # -- rendering ----------------------------------------------------------------------------

    def render(self, identity_ids, image_indices) -> torch.Tensor:
        """Render by *global* identity id and image index: (N, C, H, W) on ``self.device``."""
        return render_faces(identity_ids, image_indices, size=self.size, channels=self.channels,
                            difficulty=self.difficulty, seed=self.seed, device=self.device,
                            age=self.age)

    def ages(self, items=None) -> torch.Tensor:
        """The age in [0, ``self.age``] of every item (or of the given item indices): float32, CPU.
        Cross-age verification pairs are chosen by it."""
        if items is None:
            items = torch.arange(len(self))
        ids, idx, _ = self._items(items)
        return image_ages(ids, idx, self.seed, self.age)

    def _items(self, items) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Item indices -> (global identity ids, image indices, labels), with bounds checks."""
        items = _as_index_tensor(items, "items")
        if items.numel() and (int(items.min()) < 0 or int(items.max()) >= len(self)):
            raise IndexError(f"item indices must lie in [0, {len(self)}), got "
                             f"[{int(items.min())}, {int(items.max())}]")
        labels = items // self.images_per_identity
        return self._ids[labels], items % self.images_per_identity, labels

    def __getitem__(self, i):
        try:
            i = operator.index(i)  # ints, numpy integers and 0-d integer tensors
        except TypeError:
            raise TypeError(f"SynthFaces indices must be integers, got {type(i).__name__}") \
                from None
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"item {i} is out of range for {len(self)} items")
        ids, idx, labels = self._items([i])
        return self.render(ids, idx)[0], int(labels[0])

    def __getitems__(self, items) -> list[tuple[torch.Tensor, int]]:
        """Many items in one batched render; torch's DataLoader calls this when it exists."""
        ids, idx, labels = self._items(items)
        return list(zip(self.render(ids, idx), labels.tolist()))

    def images(self, items=None, batch_size: int = 1024) -> torch.Tensor:
        """Render all items (or the given item indices) in batches: (N, C, H, W) on the device."""
        if not _is_int(batch_size) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if items is None:
            items = torch.arange(len(self))
        ids, idx, _ = self._items(items)
        out = torch.empty(ids.numel(), self.channels, self.size, self.size, device=self.device)
        for start in range(0, ids.numel(), batch_size):
            out[start:start + batch_size] = self.render(ids[start:start + batch_size],
                                                        idx[start:start + batch_size])
        return out

    def loader(self, batch_size: int, shuffle: bool = True, generator_seed: int = 0,
               drop_last: bool = False) -> "SynthLoader":
        """Batches of (images, labels), rendered a batch at a time (no per-item calls).

        Epoch ``e`` uses the permutation drawn from ``(generator_seed, e)``, so a run is
        reproducible and each epoch still sees a fresh order.
        """
        return SynthLoader(self, batch_size, shuffle, generator_seed, drop_last)


class SynthLoader:
    """Iterates over a SynthFaces in batches; each ``iter()`` is one epoch.

    Images and labels are on the data set's device. ``set_epoch(e)`` chooses the epoch whose
    order the next ``iter()`` uses (handy when resuming training).
    """

    def __init__(self, dataset: SynthFaces, batch_size: int, shuffle: bool,
                 generator_seed: int, drop_last: bool):
        if not _is_int(batch_size) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.generator_seed = _check_seed(generator_seed)
        self.drop_last = bool(drop_last)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.dataset)
        if self.shuffle:
            seed = (self.generator_seed * 1_000_003 + self.epoch) % 2**63
            generator = torch.Generator().manual_seed(seed)
            order = torch.randperm(n, generator=generator)
        else:
            order = torch.arange(n)
        self.epoch += 1
        device = self.dataset.device
        for b in range(len(self)):
            items = order[b * self.batch_size:(b + 1) * self.batch_size]
            ids, idx, labels = self.dataset._items(items)
            yield self.dataset.render(ids, idx), labels.to(device)


def identity_splits(num_train: int, num_val: int, num_test: int, seed: int = 0,
                    **kwargs) -> tuple[SynthFaces, SynthFaces, SynthFaces]:
    """Three identity-disjoint SynthFaces: ids ``0..num_train-1``, then the next ``num_val``,
    then the next ``num_test``. Keyword arguments go to every SynthFaces (images_per_identity,
    size, channels, difficulty, device, age). Validation and test identities are never seen in
    training, which is what open-set face verification needs."""
    counts = {"num_train": num_train, "num_val": num_val, "num_test": num_test}
    for name, count in counts.items():
        if not _is_int(count) or count < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {count!r}")
    if "identities" in kwargs:
        raise ValueError("identity_splits chooses the identities itself; do not pass "
                         "`identities`")
    edges = [0, num_train, num_train + num_val, num_train + num_val + num_test]
    return tuple(SynthFaces(torch.arange(edges[k], edges[k + 1]), seed=seed, **kwargs)
                 for k in range(3))
