"""Ship MathJax inside the built book, so that its mathematics renders offline."""

import shutil
from pathlib import Path

import mathjax  # PyPI django-static-mathjax: the MathJax 3 files, nothing of Django needed

ES5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"


def _copy_mathjax(app):
    if app.builder.format == "html":
        shutil.copytree(ES5, Path(app.outdir) / "_static" / "mathjax", dirs_exist_ok=True)


def setup(app):
    app.connect("builder-inited", _copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
