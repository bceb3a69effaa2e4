"""The book's own stylesheet and layout script (_ext/static/), added to every HTML page.

- Wide figures may use the page's right margin, as the theme's ``full-width`` cells do, so that a
  multi-panel figure is not shrunk to the 768 px text column (frbook.js marks them).
- Display equations keep their number beside them and scroll inside the column when wider.
"""
from pathlib import Path

STATIC = Path(__file__).parent / "static"


def _add_static(app):
    if app.builder.format == "html":
        app.config.html_static_path.append(str(STATIC))


def setup(app):
    app.connect("builder-inited", _add_static)
    app.add_css_file("frbook.css")
    app.add_js_file("frbook.js", loading_method="defer")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
