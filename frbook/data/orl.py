"""The ORL (AT&T) Database of Faces: 40 people x 10 grey images, 92x112 PGM.

Layout: ``orl/s1 .. s40/1.pgm .. 10.pgm`` (see the README that comes with it; credit the Olivetti
Research Laboratory). Small enough to embed whole on a laptop, which makes it the book's first
real-face identification set. Folders and files are ordered by number, not by text, so label
``k`` is folder ``s{k+1}`` and item ``10 k + j`` is its file ``{j+1}.pgm``.
"""
from __future__ import annotations

import re
from pathlib import Path

from .folder import FileFaces
from .root import find_dataset

__all__ = ["ORL"]

_HOW_TO_GET = ("The ORL faces (AT&T Laboratories Cambridge) unpack to orl/s1..s40/1..10.pgm; "
               "developers find them in ../shared/data/orl.")


def _holds_orl(folder: Path) -> bool:
    return (folder / "s1" / "1.pgm").is_file()


def _number(text: str, prefix: str = "") -> int:
    """``"s12"`` -> 12 with prefix ``"s"``, ``"7"`` -> 7; -1 for anything else."""
    match = re.fullmatch(re.escape(prefix) + r"(\d+)", text)
    return int(match.group(1)) if match else -1


class ORL(FileFaces):
    """ORL faces, labels 0..39; grey by default (the photographs are grey)."""

    def __init__(self, root=None, channels: int = 1, crop=None, size=None):
        self.root = find_dataset("orl", _holds_orl, root, _HOW_TO_GET)
        people = sorted((d for d in self.root.iterdir() if d.is_dir() and _number(d.name, "s") >= 0),
                        key=lambda d: _number(d.name, "s"))
        files, labels = [], []
        for label, person in enumerate(people):
            images = sorted((f for f in person.glob("*.pgm") if _number(f.stem) >= 0),
                            key=lambda f: _number(f.stem))
            files += images
            labels += [label] * len(images)
        super().__init__(files, labels, [p.name for p in people], channels, crop, size)
