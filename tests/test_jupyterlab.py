"""A chapter as a reader meets it in JupyterLab (``make lab``), in the real browser.

JupyterLab is started on a free loopback port, without a token, with its configuration,
runtime, settings and workspaces in a temporary folder and with ``lab/`` on
JUPYTER_CONFIG_PATH, as ``make lab`` does. Chapter 3 is opened in headless Chromium (the system's,
through Playwright) and the test checks what a reader sees:

- the MyST is rendered (jupyterlab-myst): no raw ``:::{`` fence, no ``{cite}``/``{eq}``/``{ref}``
  role, and none of the book's macros left as raw TeX (they come from the hidden first cell);
- no solution is visible (they are ``:class: dropdown`` and stay collapsed), nor the source of a
  hidden claims cell (``jupyter.source_hidden``);
- nbgrader's notebook tools (the Validate button) are not there;
- the live margin figure, once its cell runs, redraws when a slider moves (screenshots before
  and after go to ``_build/screenshots/lab-live-margin-{before,after}.png``).

It skips, saying why, where JupyterLab, jupyterlab-myst, Playwright or Chromium is missing
(``FRBOOK_BROWSER_REQUIRED=1`` makes that a failure).
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from test_browser import unavailable

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
CHAPTER = "ch03_margins.ipynb"
LIVE_CELL = "live-margin"
MACROS = re.compile(r"\\(?:vx|vw|vW|R|norm|onehot)\b")
RAW_MYST = re.compile(r":::\{|\{(?:cite|cite:t|cite:p|eq|ref|doc|numref)\}`")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab_url(tmp_path_factory):
    jupyter = Path(sys.executable).with_name("jupyter")
    if not jupyter.is_file():
        unavailable(f"no jupyter beside {sys.executable}: `pip install -r requirements.txt`")
    try:
        import jupyterlab_myst  # noqa: F401
    except ImportError:
        unavailable("jupyterlab-myst is missing: `pip install -r requirements.txt`")
    home = tmp_path_factory.mktemp("lab")
    settings = home / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # Every cell in the page (no windowing), so that what is hidden is hidden by the notebook.
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    port = _free_port()
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_CONFIG_PATH=str(REPO / "lab"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    )
    env.pop("MPLBACKEND", None)
    command = [
        str(jupyter), "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
        "--IdentityProvider.token=", "--ServerApp.password=", "--ServerApp.open_browser=False",
        f"--ServerApp.root_dir={REPO / 'book'}", f"--LabApp.user_settings_dir={home / 'settings'}",
        f"--LabApp.workspaces_dir={home / 'workspaces'}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    log = (home / "lab.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(240):
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited ({server.returncode}): {(home / 'lab.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(url + "api/status", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not answer within 2 minutes")
        yield url
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def chapter_page(lab_url, chromium):
    browser = chromium
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    # Offline but for the server itself.
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(lab_url)
                  else route.abort("blockedbyclient"))
    page = context.new_page()
    page.goto(f"{lab_url}lab/tree/{CHAPTER}")
    page.wait_for_selector(".jp-Notebook .jp-MarkdownCell", timeout=120_000)
    # jupyterlab-myst renders asynchronously: wait until no markdown cell shows its fences (the
    # test then says what is left if some still do).
    try:
        page.wait_for_function("() => !document.querySelector('.jp-Notebook').innerText.includes(':::{')",
                               timeout=60_000)
    except Exception:  # a timeout: test_myst_and_macros_render reports the raw text
        pass
    page.wait_for_timeout(3000)
    yield page
    context.close()


def _notebook():
    return json.loads((REPO / "book" / CHAPTER).read_text())


def _visible_text(page) -> str:
    return page.evaluate("() => document.querySelector('.jp-Notebook').innerText")


def test_myst_and_macros_render(chapter_page):
    text = _visible_text(chapter_page)
    problems = [f"raw MyST: {text[max(0, m.start() - 50):m.end() + 50]!r}" for m in RAW_MYST.finditer(text)]
    problems += [f"raw macro: {text[max(0, m.start() - 50):m.end() + 50]!r}" for m in MACROS.finditer(text)]
    errors = chapter_page.evaluate("() => [...document.querySelectorAll('.katex-error, .myst-error')]"
                                   ".map((e) => e.textContent.slice(0, 120))")
    problems += [f"math error: {e}" for e in errors]
    assert not problems, "\n".join(problems[:20])


def test_solutions_and_claims_stay_hidden(chapter_page):
    text = _visible_text(chapter_page)
    shown = []
    for cell in _notebook()["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            for body in re.findall(r":::\{solution\}[^\n]*\n(?::[^\n]*\n)*(.*?)\n:::", source, re.S):
                line = next(l for l in body.splitlines() if l.strip() and "$" not in l[:40])
                if line.strip()[:40] in text:
                    shown.append(f"solution: {line.strip()[:60]!r}")
        elif "remove-cell" in cell["metadata"].get("tags", []):
            # A collapsed cell shows its first line as a placeholder; the rest must not show.
            line = [l for l in source.splitlines() if l.strip()][-1]
            if len(source.splitlines()) > 1 and line.strip() in text:
                shown.append(f"hidden claims cell: {line.strip()[:60]!r}")
    assert not shown, "visible in JupyterLab:\n" + "\n".join(shown)


def test_no_nbgrader_tools(chapter_page):
    toolbar = chapter_page.evaluate(
        "() => [...document.querySelectorAll('.jp-NotebookPanel-toolbar')].map((t) => t.innerText).join(' ')")
    assert "Validate" not in toolbar


def test_live_figure_redraws_in_lab(chapter_page):
    from test_browser import exercise_live_figure

    page = chapter_page
    index = next(i for i, c in enumerate(_notebook()["cells"]) if c.get("id") == LIVE_CELL)
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    cell.scroll_into_view_if_needed()
    cell.click()
    page.keyboard.press("Escape")  # command mode: Shift+Enter runs the cell
    page.keyboard.press("Shift+Enter")
    problems = exercise_live_figure(page, "margin", "m", "lab-live-margin")
    assert not problems, "\n".join(problems)
