"""The student versions of the assignments, generated at build time for the book to link.

The assignments page links each assignment's student notebook (solutions and hidden tests
removed by nbgrader) for download. Before Sphinx reads the pages, this extension runs
``nbgrader generate_assignment`` exactly as ``make assignments`` does, into a scratch course
directory, and copies each ``release/NAME/NAME.ipynb`` to ``_build/student_notebooks/NAME.ipynb``,
which the page names with the ``{download}`` role. It reruns only when a source is newer than the
copies. A failure stops the build with nbgrader's output: a page must not link what is missing.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from sphinx.errors import ExtensionError

SOURCE = Path(__file__).resolve().parents[1] / "book" / "assignments"


def _generate(app):
    if app.builder.format != "html" or not (SOURCE / "source").is_dir():
        return
    out = Path(app.srcdir) / "_build" / "student_notebooks"
    sources = sorted((SOURCE / "source").glob("*/*.ipynb"))
    wanted = [out / p.name for p in sources]
    newest = max([p.stat().st_mtime for p in sources] + [(SOURCE / "nbgrader_config.py").stat().st_mtime])
    if all(w.is_file() and w.stat().st_mtime >= newest for w in wanted):
        return
    course = out / "course"
    shutil.rmtree(course, ignore_errors=True)
    course.mkdir(parents=True)
    env = dict(os.environ, FRBOOK_COURSE_DIR=str(course),
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    done = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", "*", "--force"],
                          cwd=SOURCE, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise ExtensionError("nbgrader generate_assignment failed, so the assignments page cannot "
                             f"link the student notebooks:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    for source in sources:
        released = course / "release" / source.parent.name / source.name
        if not released.is_file():
            raise ExtensionError(f"nbgrader wrote no student version of {source.name} ({released})")
        shutil.copyfile(released, out / source.name)


def setup(app):
    app.connect("builder-inited", _generate)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
