"""What pages print about result files (frbook.report.public_*), and the citation letters of
_ext/cite_years.py, checked without building the book."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from frbook.report import public_command, public_device, show

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "command, shown",
    [
        ("python -m frbook train --config configs/t.yaml --set loss.name=cosface --out /tmp/lfwruns/cosface --quiet",
         "python -m frbook train --config configs/t.yaml --set loss.name=cosface"),
        ("python -m frbook experiment compare --config configs/c.yaml --out=/work/x/y --quiet --only a b",
         "python -m frbook experiment compare --config configs/c.yaml --only a b"),
        ("python -m frbook search --config configs/s.yaml --quietly", "python -m frbook search --config configs/s.yaml --quietly"),
        ("python -m frbook eval --model pixels --target lfw --json /work/r/results/lfw_eval/pixels.json --quiet",
         "python -m frbook eval --model pixels --target lfw"),
        ("python -m frbook eval --json=/tmp/a.json --jsonl x", "python -m frbook eval --jsonl x"),
    ],
)
def test_public_command_drops_local_options(command, shown):
    assert public_command(command) == shown


def test_public_device_drops_the_thread_count():
    assert public_device("x86_64 CPU, 1 threads") == "x86_64 CPU"
    assert public_device("x86_64 CPU, 2 threads, x86_64 CPU, 1 thread") == "x86_64 CPU, x86_64 CPU"
    assert public_device("NVIDIA H100 80GB HBM3") == "NVIDIA H100 80GB HBM3"


def test_show_always_spaces_the_label(capsys):
    show("commands", "python -m frbook")
    show("a", "b")
    assert capsys.readouterr().out.splitlines() == ["commands: python -m frbook", "a:       b"]


def test_citations_that_read_alike_get_year_letters():
    pybtex = pytest.importorskip("pybtex.database")
    pytest.importorskip("sphinxcontrib.bibtex")
    sys.path.insert(0, str(REPO / "_ext"))
    try:
        import cite_years
    finally:
        sys.path.pop(0)
    data = pybtex.parse_file(str(REPO / "references.bib"))
    changed = cite_years.disambiguate(data)
    assert changed["wang2018amsoftmax"] == "2018a" and changed["wang2018cosface"] == "2018b"
    assert changed["zhang2019adacos"] == "2019a" and changed["zhang2019p2sgrad"] == "2019b"
    labels = [cite_years._label(entry) for entry in data.entries.values()]
    assert len(labels) == len(set(labels))
    assert cite_years.disambiguate(data) == {}  # lettered years are left alone


def test_every_cell_that_shows_a_table_renders_it_as_a_table():
    """myst-nb renders a cell's markdown output as CommonMark, which has no tables, unless the cell
    says ``mystnb: {markdown_format: gfm}`` (or myst): without it a table shows as lines of pipes."""
    import json
    import re

    missing = []
    for notebook in sorted((REPO / "book").glob("*.ipynb")):
        for cell in json.loads(notebook.read_text())["cells"]:
            source = "".join(cell["source"])
            if cell["cell_type"] == "code" and re.search(r"\b(markdown_table|verification_table)\(", source):
                if cell["metadata"].get("mystnb", {}).get("markdown_format") not in ("gfm", "myst"):
                    missing.append(f"{notebook.name}: cell {cell.get('id')}")
    assert not missing, missing
