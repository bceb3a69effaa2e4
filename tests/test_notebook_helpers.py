"""No helper is copied between chapters: a function or class that two notebooks both need lives in
the library (frbook.report, frbook.results, ...), and the chapters import it."""
import ast
import json
from collections import defaultdict
from pathlib import Path

BOOK = Path(__file__).resolve().parents[1] / "book"


def top_level_definitions(notebook: Path) -> set[str]:
    names = set()
    for k, cell in enumerate(json.loads(notebook.read_text())["cells"]):
        if cell["cell_type"] != "code":
            continue
        # IPython magics and shell lines are not Python; a cell that uses them is still read.
        source = "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                           for line in "".join(cell["source"]).splitlines())
        try:
            tree = ast.parse(source)
        except SyntaxError as exc:
            raise AssertionError(f"{notebook.name}, code cell {k}: not Python ({exc})") from None
        names |= {node.name for node in tree.body
                  if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    return names


def test_no_helper_is_defined_in_two_notebooks():
    notebooks = sorted(BOOK.glob("*.ipynb"))
    assert len(notebooks) >= 9, notebooks
    where = defaultdict(list)
    for notebook in notebooks:
        for name in top_level_definitions(notebook):
            where[name].append(notebook.name)
    copies = {name: books for name, books in where.items() if len(books) > 1}
    assert not copies, ("defined in several notebooks (move each into the library, e.g. frbook.report, "
                        f"and import it): {copies}")


def test_the_check_sees_a_copy(tmp_path):
    cell = {"cell_type": "code", "source": ["%matplotlib inline\n", "def markdown_table(h, r):\n", "    pass\n"]}
    notebook = tmp_path / "x.ipynb"
    notebook.write_text(json.dumps({"cells": [cell]}))
    assert top_level_definitions(notebook) == {"markdown_table"}
