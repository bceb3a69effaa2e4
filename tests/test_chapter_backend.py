"""A chapter draws its figures whatever MPLBACKEND the environment holds.

A headless server or CI image often exports MPLBACKEND=Agg; a kernel started there would draw
no inline figure and say nothing, and the book would build without figures. Each chapter's
first code cell (hidden, id ``setup-inline``) selects the inline backend. Here one chapter that
only reads result files (chapter 9) is executed with MPLBACKEND=Agg, and every cell that calls
``plt.show()`` must have put a PNG into its outputs.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHAPTER = REPO / "book" / "ch09_comparison.ipynb"


def test_every_chapter_selects_the_inline_backend_first():
    nbformat = pytest.importorskip("nbformat")
    for path in sorted((REPO / "book").glob("*.ipynb")):
        cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        assert cells and cells[0].get("id") == "setup-inline", f"{path.name}: no setup-inline cell first"
        assert "%matplotlib inline" in cells[0].source, path.name


@pytest.mark.slow
def test_a_chapter_draws_its_figures_under_agg(monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # The kernel imports this checkout's frbook, whatever is installed.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    nb = nbformat.read(CHAPTER, as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(CHAPTER.parent)}}).execute()
    drawn = [c for c in nb.cells if c.cell_type == "code"
             and any("image/png" in o.get("data", {}) for o in c.get("outputs", []))]
    lost = [c.source[:80] for c in nb.cells if c.cell_type == "code" and "plt.show()" in c.source
            and not any("image/png" in o.get("data", {}) for o in c.get("outputs", []))]
    assert drawn, f"{CHAPTER.name} drew no figure with MPLBACKEND=Agg"
    assert not lost, f"cells that call plt.show() but drew nothing under MPLBACKEND=Agg: {lost}"
