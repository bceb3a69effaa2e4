"""Five-point alignment: Umeyama's similarity transform in float64 against known transforms, the
warp, the folder command with a stand-in detector, and MTCNN on a few LFW images (when present)."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from fake_faces import faces_uint8, png
from frbook.data import find_dataset
from frbook.data.align import ARCFACE_TEMPLATE, align_face, align_folder, umeyama, warp_affine
from frbook.data.images import decode

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def similarity(scale, angle, tx, ty, reflect=False):
    c, s = math.cos(angle), math.sin(angle)
    r = np.array([[c, -s], [s, c]]) @ (np.diag([1.0, -1.0]) if reflect else np.eye(2))
    m = np.eye(3)
    m[:2, :2], m[:2, 2] = scale * r, (tx, ty)
    return m


def apply(m, points):
    return points @ m[:2, :2].T + m[:2, 2]


@pytest.mark.parametrize("scale,angle,tx,ty", [(1.0, 0.0, 0.0, 0.0), (0.37, 0.4, -12.5, 80.25),
                                               (2.5, -2.9, 300.0, -7.0), (1e-3, math.pi / 2, 1.0, 2.0)])
def test_umeyama_recovers_a_known_similarity_exactly(scale, angle, tx, ty):
    rng = np.random.default_rng(0)
    src = rng.normal(0, 50, (7, 2))
    truth = similarity(scale, angle, tx, ty)
    found = umeyama(src, apply(truth, src))
    assert found.dtype == np.float64
    np.testing.assert_allclose(found, truth, rtol=0, atol=1e-12 * max(1.0, abs(tx), abs(ty)))
    # the template itself, from landmarks placed by the inverse transform
    landmarks = apply(np.linalg.inv(truth), ARCFACE_TEMPLATE)
    np.testing.assert_allclose(umeyama(landmarks, ARCFACE_TEMPLATE), truth, atol=1e-9)


def test_umeyama_is_least_squares_and_never_reflects():
    rng = np.random.default_rng(1)
    src = rng.normal(0, 10, (5, 2))
    mirrored = apply(similarity(1.3, 0.7, 4.0, -2.0, reflect=True), src)
    m = umeyama(src, mirrored)
    assert np.linalg.det(m[:2, :2]) > 0  # a rotation and scale, not a reflection
    noisy = apply(similarity(0.8, 0.3, 1.0, 1.0), src) + rng.normal(0, 0.5, src.shape)
    best = umeyama(src, noisy)
    cost = lambda t: ((apply(t, src) - noisy) ** 2).sum()  # noqa: E731
    for k in range(50):  # no nearby similarity does better
        s, a, x, y = 1 + rng.normal(0, 1e-3), rng.normal(0, 1e-3), *rng.normal(0, 1e-2, 2)
        step = similarity(s, a, x, y) @ best
        assert cost(best) <= cost(step) + 1e-12
    with pytest.raises(ValueError, match="coincide"):
        umeyama(np.ones((5, 2)), ARCFACE_TEMPLATE)
    with pytest.raises(ValueError, match="shape"):
        umeyama(np.ones((5, 2)), np.ones((4, 2)))


def test_warp_identity_and_integer_shift_are_exact():
    image = faces_uint8(1, 1, 40)[0]
    assert torch.equal(warp_affine(image, np.eye(3), (40, 40)), image)
    shifted = warp_affine(image, similarity(1.0, 0.0, -5.0, -3.0), (30, 30))  # out(x, y) = in(x + 5, y + 3)
    assert torch.equal(shifted, image[:, 3:33, 5:35])
    assert warp_affine(image, similarity(1.0, 0.0, 100.0, 0.0), (8, 8)).max() == 0  # outside: black


def test_synthetic_face_lands_on_the_template():
    """Five bright dots placed where a rotated, scaled, shifted face has its landmarks come out,
    after alignment, on InsightFace's five points (to a fraction of a pixel)."""
    truth = similarity(0.45, 0.5, 30.0, 20.0)  # image -> template
    landmarks = apply(np.linalg.inv(truth), ARCFACE_TEMPLATE)
    image = torch.zeros(1, 300, 300, dtype=torch.uint8)
    yy, xx = torch.meshgrid(torch.arange(300.0), torch.arange(300.0), indexing="ij")
    for x, y in landmarks:
        image[0][((xx - x) ** 2 + (yy - y) ** 2) <= 16] = 255  # a disc of radius 4 (1.8 px after scaling)
    out = align_face(image, landmarks)[0].to(torch.float64)
    assert out.shape == (112, 112)
    for x, y in ARCFACE_TEMPLATE:
        x0, y0 = int(round(x)), int(round(y))
        patch = out[y0 - 4:y0 + 5, x0 - 4:x0 + 5]
        gy, gx = torch.meshgrid(torch.arange(y0 - 4.0, y0 + 5), torch.arange(x0 - 4.0, x0 + 5), indexing="ij")
        cx, cy = (patch * gx).sum() / patch.sum(), (patch * gy).sum() / patch.sum()
        assert abs(cx - x) < 0.25 and abs(cy - y) < 0.25, (x, y, float(cx), float(cy))


class FixedDetector:
    """A stand-in: finds a 'face' (fixed landmarks) in every image whose name has no 'blank'."""

    name = "fixed"

    def __init__(self, landmarks):
        self.landmarks, self.seen = landmarks, []

    def detect(self, rgb):
        self.seen.append(rgb.shape)
        return None if rgb.mean() < 1 else (np.zeros(4), 0.99, self.landmarks)


def test_align_folder_lists_faces_not_found_and_keeps_channels(tmp_path):
    src = tmp_path / "src"
    faces = faces_uint8(2, 2, 48, channels=1)
    for k, image in enumerate(faces):
        (src / f"p{k // 2}").mkdir(parents=True, exist_ok=True)
        (src / f"p{k // 2}" / f"{k}.png").write_bytes(png(image))
    (src / "p1" / "blank.png").write_bytes(png(torch.zeros(1, 48, 48, dtype=torch.uint8)))
    (src / "p1" / "notes.txt").write_text("not an image")
    (src / "pairs.txt").write_text("1 1\n")
    landmarks = ARCFACE_TEMPLATE * 48 / 112  # the template, shrunk to the 48-pixel images
    record = align_folder(src, tmp_path / "dst", detector=FixedDetector(landmarks), progress=False)
    assert record["images"] == 5 and record["faces_found"] == 4 and record["not_found"] == 1
    assert (tmp_path / "dst" / "not_found.txt").read_text() == "p1/blank.png\tno face found\n"
    assert not (tmp_path / "dst" / "p1" / "blank.png").exists()  # not silently replaced
    out = decode((tmp_path / "dst" / "p0" / "0.png").read_bytes(), 3)
    assert out.shape == (3, 112, 112) and torch.equal(out[0], out[1])  # grey stayed grey
    assert (tmp_path / "dst" / "pairs.txt").read_text() == "1 1\n"
    record = json.loads((tmp_path / "dst" / "align.json").read_text())
    assert record["faces_found"] == 4 and record["provenance"]["git_commit"]
    again = align_folder(src, tmp_path / "dst2", detector=FixedDetector(landmarks), progress=False,
                         fallback_crop=0.5)
    assert again["not_found"] == 1 and (tmp_path / "dst2" / "p1" / "blank.png").is_file()
    with pytest.raises(ValueError, match="outside"):
        align_folder(src, src / "aligned", detector=FixedDetector(landmarks))


def _lfw_or_skip():
    try:
        root = find_dataset("lfw", lambda d: (d / "pairs.txt").is_file())
    except FileNotFoundError as exc:
        pytest.skip(f"LFW not present: {exc}")
    pytest.importorskip("facenet_pytorch", reason="the detector's package, facenet-pytorch, is not installed")
    return root


def test_mtcnn_aligns_real_lfw_faces(tmp_path):
    root = _lfw_or_skip()
    people = ["Aaron_Eckhart", "AJ_Cook", "Abdullah_Gul"]
    src = tmp_path / "lfw"
    for name in people:
        folder = root / "lfw" / name
        (src / name).mkdir(parents=True)
        first = sorted(folder.iterdir())[0]
        os.symlink(first, src / name / first.name)  # the real file, not a copy
    record = align_folder(src, tmp_path / "aligned", progress=False)
    assert record["faces_found"] == 3, (tmp_path / "aligned" / "not_found.txt").read_text()
    for name in people:
        out = decode(next((tmp_path / "aligned" / name).iterdir()).read_bytes(), 1)
        assert out.shape == (1, 112, 112)
