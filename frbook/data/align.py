"""Face detection and five-point alignment to InsightFace's 112x112 template, as the field does it.

Before a face reaches a recognition network, the field finds it (a detector gives a box and five
landmarks: the two eye centres, the nose tip, the two mouth corners) and maps it onto a fixed
template with the similarity transform (rotation, uniform scale, translation) that moves the five
detected points closest, in least squares, to the template's five (Umeyama's closed form). Every
face then has its eyes and mouth at the same pixels; a centre crop (:func:`frbook.data.images.prepare`)
only hopes so. The template is InsightFace's standard 112x112 ``arcface_dst``
(:data:`ARCFACE_TEMPLATE`); ``python -m frbook data align SRC DST`` aligns a whole folder.

Which detector, and why. The detector's weights must ship inside a package from PyPI (nothing is
downloaded at run time) and the package must install beside the torch/torchvision pair that
requirements.txt lets pip choose, with numpy 2. Checked (December 2026):

* **facenet-pytorch 2.5.3** (chosen): MTCNN (Zhang et al. 2016), a cascade of three small CNNs
  written in PyTorch; its three weight files (2 MB) are inside the wheel, and it gives exactly the
  five landmarks of the template. Its requirements are unpinned (numpy, requests, torchvision,
  pillow), so pip keeps the torch pair and numpy 2 (``pip install --dry-run`` installs nothing
  else). Version 2.6.0 pins torch<2.3 and numpy<2, hence ``facenet-pytorch>=2.5.3,<2.6``.
* mediapipe: the versions whose wheel holds the face detector model (0.10.21 and older) pin
  numpy<2; 0.10.30 and later (1.x included) ship no model (the Tasks API loads a downloaded
  ``.task`` file).
* dlib with face_recognition_models (its 5-point shape predictor): dlib builds from source
  (CMake, minutes of compiling) on a machine without a matching wheel.

Measured on one CPU core (December 2026, 200 LFW images, every 66th in name order): faces found
in 198 of 200, about 0.06 s an image after a few seconds of start-up, so all 13,233 take some
12 minutes; ``device="cuda"`` runs it on a GPU. Faces it does not find are listed in
``DST/not_found.txt``, never dropped in silence.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..provenance import provenance
from .images import decode, encode, prepare

__all__ = ["ARCFACE_TEMPLATE", "umeyama", "warp_affine", "align_face", "MTCNNDetector", "align_folder"]

#: InsightFace's five reference points (x, y) in a 112x112 crop: left eye, right eye, nose tip,
#: left and right mouth corners (the left eye is the one on the image's left).
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)
TEMPLATE_SIZE = 112


def umeyama(src, dst, with_scale: bool = True) -> np.ndarray:
    """The similarity transform ``T`` (3x3, last row 0 0 1) minimising
    ``sum_k |dst_k - (s R src_k + t)|^2`` over rotations R, scales s > 0 and translations t.

    Umeyama (1991), "Least-squares estimation of transformation parameters between two point
    patterns", IEEE TPAMI 13(4): with the centred points and their covariance
    ``Sigma = dst_c^T src_c / n = U D V^T``, ``R = U S V^T`` where S = diag(1, ..., det(U V^T))
    rules out a reflection, ``s = trace(D S) / var(src)`` and ``t = mean(dst) - s R mean(src)``.
    Computed in float64.
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[0] < 2:
        raise ValueError(f"need two (N, dim) point sets of one shape, N >= 2; got {src.shape} and {dst.shape}")
    n, dim = src.shape
    mu_s, mu_d = src.mean(0), dst.mean(0)
    src_c, dst_c = src - mu_s, dst - mu_d
    var_s = (src_c ** 2).sum() / n
    if var_s == 0:
        raise ValueError("the source points all coincide: no transform is determined")
    u, d, vt = np.linalg.svd(dst_c.T @ src_c / n)
    sign = np.ones(dim)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    rotation = u @ np.diag(sign) @ vt
    scale = (d * sign).sum() / var_s if with_scale else 1.0
    out = np.eye(dim + 1)
    out[:dim, :dim] = scale * rotation
    out[:dim, dim] = mu_d - scale * rotation @ mu_s
    return out


def warp_affine(image: torch.Tensor, matrix, size=(TEMPLATE_SIZE, TEMPLATE_SIZE)) -> torch.Tensor:
    """``image`` (C, H, W) ``uint8`` mapped by the 2x3 (or 3x3) ``matrix`` (source pixel (x, y) ->
    output pixel), sampled bilinearly into a (C, *size) ``uint8`` image; outside the source: 0.

    Pixel (x, y) is the centre of column x, row y (as OpenCV's ``warpAffine``), so an identity
    matrix returns the image's top-left ``size`` corner unchanged.
    """
    m = np.asarray(matrix, np.float64)
    m = np.vstack([m[:2], [0, 0, 1]])
    inverse = np.linalg.inv(m)  # each output pixel looks up where it came from
    h, w = int(size[0]), int(size[1])
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    src = inverse[:2, :2] @ np.stack([xs.ravel(), ys.ravel()]) + inverse[:2, 2:]
    in_h, in_w = image.shape[-2:]
    grid = np.stack([(2 * src[0] + 1) / in_w - 1, (2 * src[1] + 1) / in_h - 1], axis=-1).reshape(1, h, w, 2)
    out = F.grid_sample(image[None].to(torch.float32), torch.from_numpy(grid).to(torch.float32),
                        mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    return out.round_().clamp_(0, 255).to(torch.uint8)


def align_face(image: torch.Tensor, landmarks, size: int = TEMPLATE_SIZE) -> torch.Tensor:
    """Warp ``image`` (C, H, W) ``uint8`` so that its five ``landmarks`` (5, 2 as x, y) land on
    :data:`ARCFACE_TEMPLATE` (scaled to ``size``), by :func:`umeyama`."""
    template = ARCFACE_TEMPLATE * (size / TEMPLATE_SIZE)
    return warp_affine(image, umeyama(np.asarray(landmarks, np.float64), template), (size, size))


class MTCNNDetector:
    """facenet-pytorch's MTCNN (weights inside its wheel): ``detect(image) -> (box, score, five
    points)`` of the main face, or ``None``. The main face, when there are several, is the one
    with the largest ``area - 2 * (squared distance of its centre from the image centre)``, the
    rule InsightFace's detectors use to pick one face per image."""

    def __init__(self, device="cpu", min_score: float = 0.9):
        try:
            from facenet_pytorch import MTCNN
        except ImportError:
            raise ImportError("face detection needs facenet-pytorch (pip install 'facenet-pytorch>=2.5.3,<2.6'; "
                              "it is in requirements.txt)") from None
        self.min_score = float(min_score)
        self.device = device
        self.mtcnn = MTCNN(device=device, keep_all=True, post_process=False)
        self.name = "MTCNN (facenet-pytorch)"

    def detect(self, rgb: np.ndarray):
        """``rgb``: (H, W, 3) uint8. Returns ``(box (4,), score, points (5, 2))`` or ``None``."""
        from PIL import Image

        boxes, scores, points = self.mtcnn.detect(Image.fromarray(rgb), landmarks=True)
        if boxes is None:
            return None
        boxes, scores, points = (np.asarray(a, np.float64) for a in (boxes, scores, points))
        keep = scores >= self.min_score
        if not keep.any():
            return None
        boxes, scores, points = boxes[keep], scores[keep], points[keep]
        h, w = rgb.shape[:2]
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        offset = ((boxes[:, 0] + boxes[:, 2]) / 2 - w / 2) ** 2 + ((boxes[:, 1] + boxes[:, 3]) / 2 - h / 2) ** 2
        k = int(np.argmax(area - 2.0 * offset))
        return boxes[k], float(scores[k]), points[k]


def align_folder(src, dst, detector=None, size: int = TEMPLATE_SIZE, fallback_crop: float | None = None,
                 quality: int = 95, progress: bool = True, limit: int | None = None) -> dict:
    """Detect and align every image of ``src`` (any tree of images, e.g. one folder per identity)
    into the same tree under ``dst``, as ``size`` x ``size`` JPEG (PNG stays PNG), keeping each
    image's channels (grey stays grey).

    Images where no face is found are listed, one path and reason a line, in
    ``dst/not_found.txt``; with ``fallback_crop`` (a fraction of the shorter side) a centre crop
    resized to ``size`` is written in their place (and still listed), so that a ``pairs.txt``
    naming them still resolves. ``src/pairs.txt``, when present, is copied. ``dst/align.json``
    records the counts, the detector, the template and the provenance (command, commit). ``limit``: only the first images (in
    sorted order), to try it on a sample. Returns that record.
    """
    from tqdm import tqdm

    from .lfw import IMAGE_EXTENSIONS

    src, dst = Path(src).expanduser(), Path(dst).expanduser()
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: no such folder")
    if dst.resolve() == src.resolve() or src.resolve() in dst.resolve().parents:
        raise ValueError(f"{dst}: write the aligned copy outside {src}")
    files = sorted(f for f in src.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
    if limit is not None:
        files = files[:limit]
    if not files:
        raise FileNotFoundError(f"{src}: no images ({' '.join(IMAGE_EXTENSIONS)})")
    detector = detector or MTCNNDetector()
    dst.mkdir(parents=True, exist_ok=True)
    found, missing = 0, []
    for f in tqdm(files, desc="aligning faces", unit="img", disable=not progress):
        data = f.read_bytes()
        colour = decode(data, 3, str(f))
        grey = colour.shape[0] == 3 and bool((colour[0] == colour[1]).all() and (colour[1] == colour[2]).all())
        hit = detector.detect(colour.permute(1, 2, 0).numpy())
        if hit is not None:
            out = align_face(colour, hit[2], size)
            found += 1
        else:
            missing.append(f"{f.relative_to(src)}\tno face found")
            if fallback_crop is None:
                continue
            out = prepare(colour, float(fallback_crop), size)
        if grey:
            out = out[:1]
        target = dst / f.relative_to(src)
        png = f.suffix.lower() == ".png"
        target = target.with_suffix(".png" if png else ".jpg")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(encode(out, "png" if png else "jpeg", quality))
    (dst / "not_found.txt").write_text("".join(line + "\n" for line in missing))
    if (src / "pairs.txt").is_file():
        (dst / "pairs.txt").write_bytes((src / "pairs.txt").read_bytes())
    record = {"source": str(src), "images": len(files), "faces_found": found, "not_found": len(missing),
              "not_found_list": str(dst / "not_found.txt"),
              "fallback": None if fallback_crop is None else f"centre crop {fallback_crop:g} of the shorter side",
              "detector": getattr(detector, "name", type(detector).__name__), "size": size,
              "template": (ARCFACE_TEMPLATE * (size / TEMPLATE_SIZE)).tolist(),
              "provenance": provenance(getattr(detector, "device", "cpu"))}
    (dst / "align.json").write_text(json.dumps(record, indent=1) + "\n")
    return record
