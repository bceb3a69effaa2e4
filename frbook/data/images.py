"""Encoded image bytes <-> tensors: decode, centre-crop, resize, encode.

Every reader of real faces (LFW, ORL, image folders, ``.rec`` and ``.bin`` files) goes through
these few functions, so all of them return the same thing SynthFaces does: images as tensors of
shape (C, H, W) with C = 1 (grey) or 3 (colour). They work on ``uint8`` until the very end, so a
prepared image can be re-encoded (to pack a ``.bin``) without a float round trip.

Decoding and encoding use Pillow (a dependency of torchvision): it reads every format an image
folder may hold (JPEG, PNG, PGM/PPM as in ORL, BMP, TIFF, WebP), while ``torchvision.io``'s
decoders read fewer and are deprecated since torchvision 0.29. Resizing and grey conversion are
a few lines of torch here, so that importing ``frbook.data`` does not import torchvision (two
seconds, for every notebook that only wants SynthFaces).
"""
from __future__ import annotations

import io
import re

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..defaults import DEFAULT_CHANNELS, DEFAULT_SIZE  # re-exported: the library's one default
from .errors import CorruptFileError

__all__ = ["decode", "prepare", "resize", "to_grey", "to_float", "encode", "check_channels",
           "as_hw", "DEFAULT_CHANNELS", "DEFAULT_SIZE"]

# Pillow's modes for grey and colour; converting colour to "L" uses the ITU-R 601 luma weights.
_MODES = {1: "L", 3: "RGB"}
_KIND = {1: "grey", 3: "colour"}


def _count(notes: dict, what: str) -> None:
    notes[what] = notes.get(what, 0) + 1
_LUMA = (0.299, 0.587, 0.114)


def check_channels(channels) -> int:
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (colour); got {channels!r}")
    return int(channels)


def as_hw(value, name: str) -> tuple[int, int] | None:
    """``None`` stays ``None``; ``112`` -> ``(112, 112)``; ``(112, 96)`` stays; others fail."""
    if value is None:
        return None
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
                                 for v in pair):
        raise ValueError(f"{name} must be a whole number of pixels (e.g. 112) or two of them (height, "
                         f"width); got {value!r}")
    return (int(pair[0]), int(pair[1]))


def as_crop(value):
    """A crop: ``None``, pixels (as :func:`as_hw`), or a float in (0, 1]: that fraction of each
    image's shorter side, a square (for sets whose images differ in size)."""
    if isinstance(value, float):
        if not 0 < value <= 1:
            raise ValueError(f"crop {value!r}: a fraction of the shorter side must lie in (0, 1]; "
                             "give whole pixels (e.g. 128) for a fixed size")
        return value
    return as_hw(value, "crop")


def _crop_centre(image: torch.Tensor, h: int, w: int) -> torch.Tensor:
    top, left = (image.shape[-2] - h) // 2, (image.shape[-1] - w) // 2
    return image[..., top:top + h, left:left + w]


def decode(data: bytes, channels: int = DEFAULT_CHANNELS, where: str = "image", notes=None) -> torch.Tensor:
    """Decode encoded image bytes to a ``uint8`` tensor (channels, H, W).

    Grey images asked for in colour get their one channel repeated; colour images asked for in
    grey become luma. ``where`` (a path, a record) names the image in the error raised when the
    bytes are not a readable image, truncated ones included. ``notes``, a dict, counts the
    conversion (``"converted from colour to grey"``) when there is one.
    """
    channels = check_channels(channels)
    if len(data) == 0:
        raise CorruptFileError(f"{where}: empty image (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # decode now: a truncated file fails here, not later
            stored = 1 if len(image.getbands()) < 3 else 3
            pixels = np.asarray(image.convert(_MODES[channels]))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        # Pillow names the in-memory buffer ("<_io.BytesIO object at 0x...>"), not the file.
        reason = re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-fA-F]+>", "", str(exc)).strip() or type(exc).__name__
        raise CorruptFileError(f"{where}: cannot decode the image ({len(data)} bytes): {reason}") from None
    if notes is not None and stored != channels:
        _count(notes, f"converted from {_KIND[stored]} to {_KIND[channels]}")
    tensor = torch.from_numpy(pixels.copy())
    return tensor.unsqueeze(0) if channels == 1 else tensor.permute(2, 0, 1).contiguous()


def prepare(image: torch.Tensor, crop=None, size=None, notes=None) -> torch.Tensor:
    """Centre-crop to ``crop``, then resize to ``size`` (H, W) keeping the aspect ratio.

    ``crop`` is pixels (an int or (H, W)) or a float in (0, 1]: a square whose side is that
    fraction of the image's shorter side, so sets of mixed sizes crop alike. The centre crop is
    the usual cheap stand-in for face alignment on unaligned sets such as LFW, where the face
    fills the middle of the frame (``python -m frbook data align`` does the real thing).

    Resizing never squashes: an image whose aspect ratio differs from ``size``'s is first
    centre-cropped to that aspect ratio (a 168x192 image to 168x168 for a square ``size``, a
    640x480 scene to its middle 480x480), then resized, bilinear with antialiasing, staying
    ``uint8``. ``notes``, a dict, counts each kind of change made (for evaluation reports).
    """
    crop, size = as_crop(crop), as_hw(size, "size")
    h, w = image.shape[-2:]
    what = None if crop is None else f"centre-cropped to {crop[0]}x{crop[1]}" if isinstance(crop, tuple) \
        else f"centre-cropped to {crop:g} of the shorter side"
    if isinstance(crop, float):
        side = max(1, round(crop * min(h, w)))
        crop = (side, side)
    if crop is not None:
        if crop[0] > h or crop[1] > w:
            raise ValueError(f"crop {crop[0]}x{crop[1]} is larger than the image ({h}x{w}); crop "
                             "less, or give the crop as a fraction of the shorter side (e.g. 0.6)")
        if (h, w) != crop:
            image = _crop_centre(image, *crop)
            if notes is not None:
                _count(notes, what)
    if size is not None and tuple(image.shape[-2:]) != size:
        h, w = image.shape[-2:]
        if h * size[1] != w * size[0]:  # another aspect ratio: crop to size's, do not squash
            if h * size[1] > w * size[0]:
                image = _crop_centre(image, max(1, round(w * size[0] / size[1])), w)
            else:
                image = _crop_centre(image, h, max(1, round(h * size[1] / size[0])))
            if notes is not None:
                _count(notes, f"centre-cropped to the aspect ratio of {size[0]}x{size[1]} (not squashed)")
        if notes is not None:
            _count(notes, f"resized to {size[0]}x{size[1]}")
        image = resize(image, size)
    return image.contiguous()


def resize(images: torch.Tensor, size) -> torch.Tensor:
    """Bilinear resize with antialiasing of (C, H, W) or (N, C, H, W) images to ``size`` (H, W).

    ``uint8`` in, ``uint8`` out (rounded); float in, float out. Antialiasing matters when
    shrinking: without it a 250 -> 64 resize samples a few pixels and aliases.
    """
    size = as_hw(size, "size")
    x = images.to(torch.float32) if images.dtype == torch.uint8 else images
    out = F.interpolate(x if x.dim() == 4 else x[None], size=size, mode="bilinear",
                        align_corners=False, antialias=True)
    out = out if x.dim() == 4 else out[0]
    return out.round_().clamp_(0, 255).to(torch.uint8) if images.dtype == torch.uint8 else out


def to_grey(images: torch.Tensor) -> torch.Tensor:
    """Float colour images (..., 3, H, W) -> grey (..., 1, H, W), with Pillow's luma weights."""
    weights = torch.tensor(_LUMA, dtype=images.dtype, device=images.device).view(3, 1, 1)
    return (images * weights).sum(dim=-3, keepdim=True)


def to_float(image: torch.Tensor) -> torch.Tensor:
    """``uint8`` in 0..255 -> ``float32`` in [0, 1], the input every frbook model expects."""
    return image.to(torch.float32).div_(255.0)


def encode(image: torch.Tensor, format: str = "jpeg", quality: int = 95) -> bytes:
    """Encode a ``uint8`` (C, H, W) tensor as JPEG (lossy, ``quality`` 1..100) or PNG (exact)."""
    if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] not in (1, 3):
        raise TypeError(f"encode wants a uint8 (1 or 3, H, W) image; got {image.dtype} "
                        f"{tuple(image.shape)} (use prepare, not to_float)")
    pixels = image[0].numpy() if image.shape[0] == 1 else image.permute(1, 2, 0).numpy()
    out = io.BytesIO()
    if format in ("jpeg", "jpg"):
        Image.fromarray(pixels).save(out, format="JPEG", quality=int(quality))
    elif format == "png":
        Image.fromarray(pixels).save(out, format="PNG")
    else:
        raise ValueError(f"format must be 'jpeg' or 'png'; got {format!r}")
    return out.getvalue()
