"""Tiny face sets on disk, in the real formats, built from SynthFaces for the data and eval tests.

Nothing here is real data: every image is a SynthFaces render encoded as PNG, JPEG or PGM, so
the tests run anywhere and fast.
"""
from __future__ import annotations

from pathlib import Path

import torch

from frbook.data import SynthFaces
from frbook.data.images import encode


def faces_uint8(identities=4, per_identity=3, size=24, channels=3, seed=0) -> torch.Tensor:
    """(identities * per_identity, C, size, size) uint8 renders; item k is identity k // per_identity."""
    faces = SynthFaces(identities, images_per_identity=per_identity, size=size, channels=channels,
                       difficulty=0.3, seed=seed)
    return (faces.images() * 255).round().to(torch.uint8)


def png(image: torch.Tensor) -> bytes:
    return encode(image, "png")


def jpeg(image: torch.Tensor, quality=90) -> bytes:
    return encode(image, "jpeg", quality)


def pgm(image: torch.Tensor, comment: bytes = b"# made by a test\n") -> bytes:
    """Binary PGM (P5) of a grey (1, H, W) uint8 image."""
    _, h, w = image.shape
    return b"P5\n" + comment + f"{w} {h}\n255\n".encode() + image.numpy().tobytes()


def image_folder(root: Path, identities=3, per_identity=3, size=24, encoder=png) -> dict:
    """root/id<k>/<j>.png; returns {path: (bytes, label, uint8 image)}."""
    images = faces_uint8(identities, per_identity, size)
    written = {}
    for k, image in enumerate(images):
        label = k // per_identity
        path = root / f"id{label}" / f"{k % per_identity}.{'png' if encoder is png else 'jpg'}"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = encoder(image)
        path.write_bytes(data)
        written[path] = (data, label, image)
    return written


# Four people in two person-disjoint folds of 2 matched + 2 mismatched pairs each.
PEOPLE = ["Ann_Lee", "Bo_Chan", "Cy_Diaz", "Di_Egan"]
PAIRS_TXT = """2\t2
Ann_Lee\t1\t2
Bo_Chan\t1\t3
Ann_Lee\t3\tBo_Chan\t2
Ann_Lee\t2\tBo_Chan\t1
Cy_Diaz\t1\t2
Di_Egan\t2\t3
Cy_Diaz\t3\tDi_Egan\t1
Cy_Diaz\t1\tDi_Egan\t2
"""
#: (file of first image, file of second image, issame) in pairs.txt order
PAIRS = [("Ann_Lee", 1, "Ann_Lee", 2, True), ("Bo_Chan", 1, "Bo_Chan", 3, True),
         ("Ann_Lee", 3, "Bo_Chan", 2, False), ("Ann_Lee", 2, "Bo_Chan", 1, False),
         ("Cy_Diaz", 1, "Cy_Diaz", 2, True), ("Di_Egan", 2, "Di_Egan", 3, True),
         ("Cy_Diaz", 3, "Di_Egan", 1, False), ("Cy_Diaz", 1, "Di_Egan", 2, False)]


def lfw_folder(root: Path, nested: bool = True, size=32, pairs_txt: str = PAIRS_TXT) -> Path:
    """An LFW-format folder: root/pairs.txt and root/lfw/<Name>/<Name>_000k.jpg (or root/<Name>
    with ``nested=False``); 3 images per person, plus an extra person in no pair."""
    images = faces_uint8(len(PEOPLE) + 1, 3, size)
    image_dir = root / "lfw" if nested else root
    for k, name in enumerate(PEOPLE + ["Ed_Fox"]):
        (image_dir / name).mkdir(parents=True, exist_ok=True)
        for j in range(3):
            (image_dir / name / f"{name}_{j + 1:04d}.jpg").write_bytes(jpeg(images[3 * k + j]))
    (root / "pairs.txt").write_text(pairs_txt)
    return root


def orl_folder(root: Path, people=11, per_person=10) -> Path:
    """root/s1..s<people>/1..<per_person>.pgm: grey renders, 24 high and 20 wide; enough people
    that sorting folders as text (s10 before s2) would give wrong labels."""
    images = faces_uint8(people, per_person, 24, channels=1)[:, :, :, 2:22]  # 24 high, 20 wide
    for k, image in enumerate(images):
        path = root / f"s{k // per_person + 1}" / f"{k % per_person + 1}.pgm"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pgm(image.contiguous()))
    return root
