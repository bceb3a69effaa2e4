"""The nbgrader assignments: generated, handed in and autograded by nbgrader itself.

One course directory in a temporary folder serves every test: nbgrader generates the student
versions from book/assignments/source, then autogrades two submissions of each assignment: the
source notebooks themselves (a student who wrote the reference solutions) and the unmodified
student versions (a student who wrote nothing).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("nbgrader")
from nbgrader.api import Gradebook  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ASSIGNMENTS = REPO / "book" / "assignments"
SOURCE = ASSIGNMENTS / "source"
NAMES = sorted(p.name for p in SOURCE.iterdir() if (p / f"{p.name}.ipynb").is_file())
SOLVED, BLANK = "solved", "blank"  # the two students


def nbgrader(course: Path, *args: str) -> str:
    """Run nbgrader with the book's config (book/assignments/nbgrader_config.py) on ``course``."""
    bin_dir = str(Path(sys.executable).parent)  # nbgrader runs `alembic` from PATH
    env = dict(os.environ, FRBOOK_COURSE_DIR=str(course), PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""),
               OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=ASSIGNMENTS, env=env,
                          capture_output=True, text=True, timeout=600)
    log = done.stdout + done.stderr
    assert done.returncode == 0 and "ERROR" not in log, f"nbgrader {' '.join(args)} failed:\n{log[-4000:]}"
    return log


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("course")
    nbgrader(root, "generate_assignment", "*", "--force")
    for name in NAMES:
        for student, notebook in ((SOLVED, SOURCE / name / f"{name}.ipynb"),
                                  (BLANK, root / "release" / name / f"{name}.ipynb")):
            handed_in = root / "submitted" / student / name
            handed_in.mkdir(parents=True)
            shutil.copy(notebook, handed_in / notebook.name)
    nbgrader(root, "autograde", "*", "--force")
    return root


def grades(course: Path, name: str, student: str) -> dict[str, tuple[float, float]]:
    """grade_id -> (score, max_score) of every graded cell of one submission."""
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        notebook = gradebook.find_submission_notebook(name, name, student)
        return {g.name: (g.score, g.max_score) for g in notebook.grades}


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def errored(cell: dict) -> bool:
    return any(out.get("output_type") == "error" for out in cell.get("outputs", []))


def is_test(cell: dict) -> bool:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade", False) and cell["cell_type"] == "code"


def test_there_are_at_least_four_assignments():
    assert len(NAMES) >= 4, NAMES


@pytest.mark.parametrize("name", NAMES)
def test_source_has_solutions_visible_and_hidden_tests(name):
    source = cells(SOURCE / name / f"{name}.ipynb")
    text = ["".join(c["source"]) for c in source]
    assert any("### BEGIN SOLUTION" in t for t in text)
    assert any("### BEGIN HIDDEN TESTS" in t for t in text)
    tests = [c for c in source if is_test(c)]
    assert any("HIDDEN TESTS" not in "".join(c["source"]) for c in tests), "no visible test cell"
    for c in source:
        meta = c["metadata"].get("nbgrader")
        if meta:
            assert {"grade", "solution", "locked", "grade_id", "schema_version"} <= set(meta)
            assert not meta["grade"] or meta["points"] > 0
        assert not c.get("outputs"), "source notebooks are committed without outputs"


@pytest.mark.parametrize("name", NAMES)
def test_the_solutions_get_full_marks(course, name):
    scores = grades(course, name, SOLVED)
    assert scores and sum(m for _, m in scores.values()) > 0
    lost = {k: v for k, v in scores.items() if v[0] != v[1]}
    autograded = course / "autograded" / SOLVED / name / f"{name}.ipynb"
    errors = [c["outputs"] for c in cells(autograded) if errored(c)]
    assert not lost, f"the reference solutions lost points: {lost}; errors: {errors}"
    assert not errors


@pytest.mark.parametrize("name", NAMES)
def test_an_unmodified_release_gets_zero_and_fails_only_in_its_tests(course, name):
    scores = grades(course, name, BLANK)
    assert scores and all(score == 0 for score, _ in scores.values()), scores
    autograded = cells(course / "autograded" / BLANK / name / f"{name}.ipynb")
    assert not [c for c in autograded if errored(c) and not is_test(c)], "a cell that is not a test fails"
    for c in autograded:
        if is_test(c):
            # Each test fails, cleanly: on the student's missing code or on an assert with a message.
            assert errored(c), f"test cell {c['metadata']['nbgrader']['grade_id']} passed on a blank notebook"
            error = next(o for o in c["outputs"] if o["output_type"] == "error")
            assert error["ename"] in ("NotImplementedError", "AssertionError"), (error["ename"], error["evalue"])
            assert error["ename"] == "NotImplementedError" or error["evalue"], "an assert without a message"


def split_regions(cell_source: str) -> tuple[set[str], set[str]]:
    """The non-blank lines of one cell inside and outside its solution and hidden-test regions."""
    inside, secret, public = False, set(), set()
    for line in cell_source.splitlines():
        if re.match(r"\s*### BEGIN (SOLUTION|HIDDEN TESTS)", line):
            inside = True
        elif re.match(r"\s*### END (SOLUTION|HIDDEN TESTS)", line):
            inside = False
        elif line.strip():
            (secret if inside else public).add(line.strip())
    return secret, public


@pytest.mark.parametrize("name", NAMES)
def test_a_release_holds_no_solution_and_no_hidden_test(course, name):
    secret, public = set(), set()
    for c in cells(SOURCE / name / f"{name}.ipynb"):
        inside, outside = split_regions("".join(c["source"]))
        secret |= inside
        public |= outside
    secret -= public  # a line that also occurs outside the regions gives nothing away
    release = ["".join(c["source"]) for c in cells(course / "release" / name / f"{name}.ipynb")]
    joined = "\n".join(release)
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in joined
    leaked = [line for text in release for line in text.splitlines() if line.strip() in secret - public]
    assert not leaked, f"solution lines in the student version: {leaked}"
    assert "raise NotImplementedError" in joined
