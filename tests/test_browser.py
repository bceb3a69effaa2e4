"""The built book, read in a real browser: every page of the table of contents.

The HTML (``$FRBOOK_HTML``, by default ``_build/html`` at the repository root; ``make book``
builds it) is served on a loopback port, and every page that ``_toc.yml`` lists is opened in
headless Chromium (the system's, driven by Playwright's Python package). Each page is loaded once,
in a fresh browser context cut off from the network; the tests then judge what was recorded:

- ``test_page_loads_cleanly``: no console error, no uncaught exception, no failed request to the
  local server and no HTTP status >= 400 from it.
- ``test_page_works_offline``: the page asks nothing of another host, except the optional scripts
  in ``OPTIONAL_EXTERNAL``. Every request to another host is blocked, so what a page needs from a
  CDN (MathJax, for one) is missing here exactly as it is for a reader offline.
- ``test_images_load_and_are_described``: every ``<img>`` has loaded (``naturalWidth > 0``, after
  lazy images were made eager and scrolled into view), and every image in the page content is
  described: by an ``alt`` text, or by the ``<figcaption>`` of the ``<figure>`` it is in. An
  ``alt`` that is just the image's file name describes nothing: it is what myst-nb and docutils
  write when the author gave no alt text (see the notes at the end of this module). A cell
  whose code calls ``plt.show()`` must show an image: a kernel run with ``MPLBACKEND=Agg``
  draws no inline figure and says nothing.
- ``test_math_is_rendered``: every ``.math`` element holds a MathJax ``mjx-container``; MathJax
  reported no TeX error (``mjx-merror``) and met no undefined macro; the visible text, code left
  out, holds no raw TeX (``$$``, ``\\begin{``, ``\\(``, ``$\\cmd`` ...).
- ``test_no_error_output``: no cell output shows a traceback, no stderr output names an
  exception, an error or a warning (progress bars and plain log lines pass), and no Markdown
  table output was left unparsed (a paragraph of pipes and dashes). A cell tagged
  ``raises-exception`` shows an error on purpose and is exempt.
- ``test_widget_pages_have_a_static_figure``: a page with widget output also shows at least one
  loaded image in its cell outputs, since a static page cannot run the widget.
- ``test_multi_panel_figures_stay_legible_on_a_narrow_screen``: at 400 px, a row-of-panels
  figure is shown at no less than ``MIN_SHOWN`` of its size (it scrolls inside its box) and the
  page does not scroll sideways.
- ``test_index_redirects_to_root``: ``index.html`` loads cleanly and leads to the root page.
- ``test_search_finds_arcface``: the built-in search lists at least one page for "ArcFace".

A full-page screenshot of every page goes to ``<html>/../screenshots/<page>.png`` (by default
``_build/screenshots/``). Where Chromium, Playwright or the built HTML is missing, the tests skip
and say how to fix it; ``FRBOOK_BROWSER_REQUIRED=1`` (for CI) makes that a failure instead.
Other settings: ``FRBOOK_CHROMIUM`` (the browser binary), ``FRBOOK_TOC`` (another book's TOC).
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
HTML_DIR = Path(os.environ.get("FRBOOK_HTML") or REPO / "_build" / "html").resolve()
SCREENSHOTS = HTML_DIR.parent / "screenshots"
TOC_FILE = Path(os.environ.get("FRBOOK_TOC") or REPO / "_toc.yml").resolve()

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium phones home at start-up, which a closed network refuses.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Requests to other hosts that a page may make and still pass the offline test. They are blocked
# like all others; what they would bring must not be needed to read the page. Live ipywidgets
# need require.js and the widget manager from a CDN: without them a widget is simply absent,
# which is why a page with widgets must also show a static figure.
OPTIONAL_EXTERNAL = [
    re.compile(r"/require\.js/[\d.]+/require(\.min)?\.js$"),
    re.compile(r"/npm/@jupyter-widgets/"),
]

# The width at which pages are read (the "wide screen"), in CSS pixels.
VIEWPORT_WIDTH = 1400

# How long a page may take for its images, its mathematics or its search, in milliseconds.
SETTLE_MS = 20_000

# Raw TeX left in the visible text where mathematics was not rendered.
RAW_TEX = re.compile(r"\$\$|\\begin\{|\\end\{|\\\(|\\\)|\\\[|\\\]|\$\\[A-Za-z]+")
# A stderr output that reports a problem (not a progress bar or a log line).
STDERR_PROBLEM = r"Traceback \(most recent call last\)|\b\w*(Error|Exception|Warning)\b"
# What myst-nb and docutils write as the alt text of an image the author did not describe.
IMAGE_FILE = re.compile(r"\.(png|jpe?g|gif|svg|webp|pdf)$", re.IGNORECASE)


def unavailable(reason: str):
    """Skip, or fail where the environment says the browser test must run."""
    if os.environ.get("FRBOOK_BROWSER_REQUIRED"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


# ---------------------------------------------------------------------------------------------
# The table of contents


def toc_pages(toc_file: Path = TOC_FILE) -> list[str]:
    """The pages of a jb-book ``_toc.yml`` in reading order, as paths without a suffix."""
    toc = yaml.safe_load(toc_file.read_text())
    if toc.get("format") != "jb-book":
        raise ValueError(f"{toc_file}: format {toc.get('format')!r}; this test reads jb-book")
    pages = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                pages.append(entry["file"])
            elif "glob" in entry:
                pages.extend(
                    p.relative_to(toc_file.parent).with_suffix("").as_posix()
                    for p in sorted(toc_file.parent.glob(entry["glob"]))
                    if p.suffix in (".md", ".ipynb", ".rst")
                )
            # An entry with only a "url" links outside the book: no page to visit.
            walk(entry.get("sections"))

    for part in toc.get("parts") or [{"chapters": toc.get("chapters")}]:
        walk(part.get("chapters"))
    return [re.sub(r"\.(md|ipynb|rst)$", "", p) for p in pages]


PAGES = toc_pages()
ROOT_PAGE = PAGES[0]


# ---------------------------------------------------------------------------------------------
# One server and one browser for the session


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        pass


@pytest.fixture(scope="session")
def book_url():
    if not (HTML_DIR / "index.html").is_file():
        unavailable(
            f"no built book at {HTML_DIR} (no index.html): build it with `make book`, "
            "or point FRBOOK_HTML at a built _build/html"
        )
    handler = functools.partial(_QuietHandler, directory=str(HTML_DIR))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def launch_chromium():
    """Playwright's Chromium, started once per session by the ``chromium`` fixture of conftest.py
    (one sync Playwright per process: test_jupyterlab.py drives the same browser)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is missing: `pip install -r requirements.txt`")
    binary = os.environ.get("FRBOOK_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(binary).is_file():
        looked = (
            f"FRBOOK_CHROMIUM={binary} is no file"
            if os.environ.get("FRBOOK_CHROMIUM")
            else "no `chromium` on PATH nor /usr/bin/chromium"
        )
        unavailable(
            f"no Chromium ({looked}): on Debian or Ubuntu `apt-get install chromium "
            "chromium-driver`, or set FRBOOK_CHROMIUM to a Chromium binary"
        )
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=binary, args=CHROMIUM_ARGS)
    except Exception as error:
        playwright.stop()
        pytest.fail(f"Chromium ({binary}) did not start: {error}", pytrace=False)
    yield browser
    browser.close()
    playwright.stop()


# ---------------------------------------------------------------------------------------------
# Visiting a page: what the tests judge is recorded here


# The elements that make a page scroll sideways: the outermost ones whose right edge passes the
# viewport and that no scrolling (or clipping) box holds, so that a failure names its culprit.
_OVERFLOWING = r"""
() => {
  const width = document.scrollingElement.clientWidth;
  const held = (el) => {
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      if (getComputedStyle(a).overflowX !== 'visible') return true;
    }
    return false;
  };
  const found = [];
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.right <= width + 1 || found.some(f => f.el.contains(el))) continue;
    const style = getComputedStyle(el);  // an off-canvas drawer does not widen the page
    if (style.visibility === 'hidden' || style.position === 'fixed' || held(el)) continue;
    found.push({el, right: Math.round(box.right)});
    if (found.length === 5) break;
  }
  return found.map(({el, right}) => {
    const name = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
      + (typeof el.className === 'string' && el.className ? '.' + el.className.trim().split(/\s+/)[0] : '');
    return `${name} reaches ${right} px: ${(el.textContent || '').trim().replace(/\s+/g, ' ').slice(0, 70)}`;
  });
}
"""


@dataclass
class Visit:
    url: str
    final_url: str = ""
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)
    lost_figures: list[str] = field(default_factory=list)
    math: dict = field(default_factory=dict)
    error_outputs: list[str] = field(default_factory=list)
    widgets: int = 0
    layout: dict = field(default_factory=dict)
    page_overflow: int = 0
    overflowing: list[str] = field(default_factory=list)
    extracted: object = None

    @property
    def load_problems(self) -> list[str]:
        return (
            [f"console error: {e}" for e in self.console_errors]
            + [f"uncaught exception: {e}" for e in self.page_errors]
            + [f"failed request: {e}" for e in self.failed_requests]
        )


# Runs before the page's own scripts: notes a MathJax script that failed to load, so that a
# page whose MathJax will never come is not waited for.
_INIT_SCRIPT = r"""
window.addEventListener('error', (event) => {
  const t = event.target;
  if (t && t.tagName === 'SCRIPT' && /mathjax/i.test(t.src || '')) {
    window.__frbookMathJaxFailed = true;
  }
}, true);
"""

_IMAGES = r"""
async (timeoutMs) => {
  const images = [...document.querySelectorAll('img')];
  for (const img of images) img.loading = 'eager';
  for (const img of images) img.scrollIntoView({block: 'center'});
  window.scrollTo(0, 0);
  await Promise.all(images.map((img) => img.complete ? null : new Promise((done) => {
    img.addEventListener('load', done, {once: true});
    img.addEventListener('error', done, {once: true});
    setTimeout(done, timeoutMs);
  })));
  const content = document.querySelector('article.bd-article, main') || document.body;
  // A cell that calls plt.show() but shows no image lost its figure (a kernel started with
  // MPLBACKEND=Agg draws nothing inline, silently).
  const source = (cell) => cell.querySelector('.cell_input pre')?.textContent || '';
  const lost = [...document.querySelectorAll('div.cell')]
    .filter((cell) => /\bplt\.show\(/.test(source(cell)))
    .filter((cell) => !cell.querySelector('.cell_output img'))
    .map((cell) => source(cell).trim().slice(0, 160));
  // What a reader sees at a figure's right edge with the figure near the top of the window, where
  // the theme's sticky page contents sit: the figure itself, or something drawn over it.
  const coveredBy = (img) => {
    const box = img.closest('figure') || img.closest('div.cell_output') || img;
    window.scrollTo(0, box.getBoundingClientRect().top + window.scrollY - 80);
    const r = img.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) return null;
    const x = Math.min(r.right, window.innerWidth) - 4, y = r.top + Math.min(40, r.height / 2);
    const top = document.elementFromPoint(x, y);
    if (!top || top === img || box.contains(top)) return null;
    return (top.className && typeof top.className === 'string' ? top.className.split(' ')[0] : top.tagName)
      + ` at x = ${Math.round(x)} px`;
  };
  const covered = images.map((img) => img.closest('div.cell_output') ? coveredBy(img) : null);
  window.scrollTo(0, 0);
  const found = images.map((img, k) => {
    const caption = img.closest('figure')?.querySelector('figcaption');
    return {
      coveredBy: covered[k],
      src: img.getAttribute('src') || '',
      alt: img.getAttribute('alt'),
      naturalWidth: img.naturalWidth,
      naturalHeight: img.naturalHeight,
      shownWidth: img.getBoundingClientRect().width,
      inContent: content.contains(img),
      inCellOutput: !!img.closest('div.cell_output'),
      caption: caption ? caption.innerText.trim() : '',
    };
  });
  return {images: found, lost};
}
"""

_WAIT_FOR_MATHJAX = r"""
() => window.__frbookMathJaxFailed || window.MathJax?.startup?.promise?.then(() => true)
"""

_MATH = r"""
() => {
  const math = [...document.querySelectorAll('.math')];
  const unrendered = math.filter((el) => !el.querySelector('mjx-container'))
                         .map((el) => el.textContent.trim().slice(0, 120));
  const errors = [...document.querySelectorAll('mjx-merror')]
      .map((el) => el.getAttribute('data-mjx-error') || el.textContent.trim().slice(0, 120));
  // An undefined macro is no merror: MathJax's noundefined extension sets its name in red.
  const startup = window.MathJax?.startup;
  if (startup?.document && typeof startup.toMML === 'function') {
    for (const item of startup.document.math) {
      const mml = startup.toMML(item.root);
      for (const m of mml.matchAll(/<mtext mathcolor="red">(\\[^<]*)<\/mtext>/g)) {
        errors.push(`undefined control sequence ${m[1]} in: ${item.math.trim().slice(0, 120)}`);
      }
    }
  }
  // The visible text with code left out (innerText skips what is not displayed).
  const style = document.createElement('style');
  style.textContent = 'pre, code, .highlight { display: none !important; }';
  document.head.appendChild(style);
  const text = document.body.innerText;
  style.remove();
  return {count: math.length, unrendered, errors, text, mathjaxLoaded: !!startup};
}
"""

_OUTPUTS = r"""
(stderrProblem) => {
  const problem = new RegExp(stderrProblem);
  const onPurpose = (el) => !!el.closest('.cell.tag_raises-exception');
  const found = [];
  const all = (selector) => [...document.querySelectorAll(selector)].filter((el) => !onPurpose(el));
  for (const el of all('.cell_output .output.traceback, .cell_output .output.error')) {
    found.push('traceback: ' + el.innerText.trim().slice(-400));
  }
  for (const el of all('.cell_output .output.stderr')) {
    if (problem.test(el.innerText)) found.push('stderr: ' + el.innerText.trim().slice(0, 400));
  }
  // A Markdown table the renderer did not parse shows up as a paragraph of pipes and dashes
  // (the dashes may have become em dashes on the way).
  for (const el of all('.cell_output p')) {
    const text = el.innerText.trim();
    if (text.startsWith('|') && /\|\s*[-\u2013\u2014]+\s*\|/.test(text)) {
      found.push('unrendered Markdown table: ' + text.slice(0, 200));
    }
  }
  const widgets = document.querySelectorAll(
    'script[type="application/vnd.jupyter.widget-view+json"], .jupyter-widgets').length;
  return {found, widgets};
}
"""


# Display equations that do not fit: wider than their box (they scroll or are clipped), or
# overlapping their equation number.
_LAYOUT = r"""
() => {
  const equations = [];
  for (const math of document.querySelectorAll('.bd-article div.math')) {
    const jax = math.querySelector('mjx-container');
    if (!jax) continue;
    const label = (math.querySelector('.eqno')?.innerText || math.id || '').trim();
    const box = jax.getBoundingClientRect(), column = math.getBoundingClientRect();
    const inner = jax.firstElementChild?.getBoundingClientRect() || box;
    if (jax.scrollWidth > jax.clientWidth + 1 || inner.width > column.width + 1 || box.right > column.right + 1) {
      equations.push(`${label || 'an equation'} is ${Math.round(Math.max(inner.width, jax.scrollWidth))} px wide in a ${Math.round(column.width)} px column`);
    }
    const eqno = math.querySelector('.eqno');
    if (eqno) {
      const n = eqno.getBoundingClientRect();
      if (n.width && n.left < inner.right - 1 && n.right > inner.left && n.top < inner.bottom && n.bottom > inner.top) {
        equations.push(`${label}: the equation runs under its number`);
      }
    }
  }
  const style = document.createElement('style');
  style.textContent = 'script, style { display: none !important; }';
  document.head.appendChild(style);
  const text = document.body.innerText;
  style.remove();
  // Citations: the same visible label must not lead to two different bibliography entries.
  const citations = {};
  for (const a of document.querySelectorAll('.bd-article a[href*="#"]')) {
    if (!a.closest('.bibtex-citation, span[id^="id"]') && !/references(\.html)?#/.test(a.getAttribute('href'))) continue;
    const label = a.innerText.trim();
    if (!/\d{4}/.test(label)) continue;
    (citations[label] ||= new Set()).add(a.href.replace(/^.*#/, '#'));
  }
  const ambiguous = Object.entries(citations).filter(([, targets]) => targets.size > 1)
    .map(([label, targets]) => `${label} -> ${[...targets].join(', ')}`);
  return {equations, text, ambiguous};
}
"""


def _is_local(url: str, origin: str) -> bool:
    return url.startswith(origin) or urlsplit(url).scheme in ("data", "blob", "about")


def visit(
    browser,
    url: str,
    screenshot: Path | None = None,
    expect_url: str | None = None,
    ready: str | None = None,
    extract: str | None = None,
    width: int = VIEWPORT_WIDTH,
) -> Visit:
    """Open ``url`` in a fresh context, let it settle, and record what the tests judge.

    ``expect_url``: a glob of where the page should lead (a redirect), waited for. ``ready``: a
    JavaScript predicate waited for after the load; ``extract``: a JavaScript function whose
    result is kept in ``Visit.extracted``. Neither is asserted here: the caller judges.
    """
    from playwright.sync_api import Error as PlaywrightError  # timeouts included

    origin = "{0.scheme}://{0.netloc}/".format(urlsplit(url))
    record = Visit(url=url)
    context = browser.new_context(viewport={"width": width, "height": 900})
    context.add_init_script(_INIT_SCRIPT)

    def route(route):
        if _is_local(route.request.url, origin):
            route.continue_()
        else:
            record.external_requests.append(route.request.url)
            route.abort("blockedbyclient")

    def on_console(message):
        if message.type != "error":
            return
        source = (message.location or {}).get("url", "")
        # A blocked request to another host is for the offline test to judge, not this one.
        if source in record.external_requests:
            return
        # Chromium asks for /favicon.ico by itself; the book declares no icon and needs none.
        if source.endswith("/favicon.ico"):
            return
        where = f" ({source}:{message.location.get('lineNumber')})" if source else ""
        record.console_errors.append(message.text + where)

    def on_request_failed(request):
        if _is_local(request.url, origin):
            record.failed_requests.append(f"{request.url}: {request.failure}")

    def on_response(response):
        if response.status >= 400 and _is_local(response.url, origin):
            record.failed_requests.append(f"{response.url}: HTTP {response.status}")

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", on_console)
    page.on("pageerror", lambda error: record.page_errors.append(str(error)))
    page.on("requestfailed", on_request_failed)
    page.on("response", on_response)
    try:
        page.goto(url, wait_until="load")
        for wait in (
            lambda: expect_url and page.wait_for_url(expect_url, timeout=SETTLE_MS),
            lambda: ready and page.wait_for_function(ready, timeout=SETTLE_MS),
        ):
            try:
                wait()
            except PlaywrightError:  # a timeout: the caller judges where the page stands
                pass
        record.final_url = page.url
        if extract:
            record.extracted = page.evaluate(extract)
        images = page.evaluate(_IMAGES, SETTLE_MS)
        record.images, record.lost_figures = images["images"], images["lost"]
        if page.evaluate("() => document.querySelectorAll('.math').length"):
            try:
                page.wait_for_function(_WAIT_FOR_MATHJAX, timeout=SETTLE_MS)
            except PlaywrightError:  # what is left untypeset, the math test reports
                pass
        record.math = page.evaluate(_MATH)
        record.layout = page.evaluate(_LAYOUT)
        record.page_overflow = page.evaluate(
            "() => document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth")
        if record.page_overflow > 1:
            record.overflowing = page.evaluate(_OVERFLOWING)
        outputs = page.evaluate(_OUTPUTS, STDERR_PROBLEM)
        record.error_outputs, record.widgets = outputs["found"], outputs["widgets"]
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
    finally:
        context.close()
    return record


@pytest.fixture(scope="session")
def visits(chromium, book_url):
    """The visit of a TOC page, made the first time a test asks for it."""
    made: dict[str, Visit] = {}

    def get(name: str) -> Visit:
        if name not in made:
            html = HTML_DIR / f"{name}.html"
            if not html.is_file():
                pytest.fail(f"{name} is in the TOC but {html} was not built", pytrace=False)
            made[name] = visit(chromium, f"{book_url}{name}.html", SCREENSHOTS / f"{name}.png")
        return made[name]

    return get


def fail_on(problems: list[str], title: str) -> None:
    """Fail with every problem listed."""
    if problems:
        pytest.fail(title + ":\n" + "\n".join(f"  - {p}" for p in problems), pytrace=False)


# ---------------------------------------------------------------------------------------------
# The tests: one per TOC page and check


@pytest.mark.parametrize("name", PAGES)
def test_page_loads_cleanly(visits, name):
    fail_on(visits(name).load_problems, f"{name} did not load cleanly")


@pytest.mark.parametrize("name", PAGES)
def test_page_works_offline(visits, name):
    needed = [
        url
        for url in visits(name).external_requests
        if not any(pattern.search(url) for pattern in OPTIONAL_EXTERNAL)
    ]
    fail_on(needed, f"{name} loads from other hosts, so it breaks for a reader offline")


@pytest.mark.parametrize("name", PAGES)
def test_images_load_and_are_described(visits, name):
    v = visits(name)
    problems = [
        f"a cell calls plt.show() but shows no figure (built with MPLBACKEND=Agg?): {source!r}"
        for source in v.lost_figures
    ]
    for img in v.images:
        if img["naturalWidth"] == 0:
            problems.append(f"did not load: {img['src']} (alt {img['alt']!r})")
        if not img["inContent"]:
            continue
        alt = (img["alt"] or "").strip()
        undescribed = (
            not alt
            or alt == img["src"]
            or Path(alt).name == Path(img["src"]).name
            or IMAGE_FILE.search(alt)
        )
        if undescribed and not img["caption"]:
            problems.append(
                f"not described: {img['src']} has alt {img['alt']!r} and no figure caption "
                "(give the cell `mystnb: {image: {alt: ...}}` or `{figure: {caption: ...}}` "
                "metadata)"
            )
    fail_on(problems, f"{name} has image problems")


@pytest.mark.parametrize("name", PAGES)
def test_math_is_rendered(visits, name):
    v = visits(name)
    problems = []
    if v.math["count"] and not v.math["mathjaxLoaded"]:
        sources = [u for u in v.external_requests if "mathjax" in u.lower()]
        problems.append(
            "MathJax did not load" + (f": it comes from {sources[0]}" if sources else "")
        )
    problems += [f"not typeset: {t!r}" for t in v.math["unrendered"]]
    problems += [f"TeX error: {e}" for e in v.math["errors"]]
    problems += [
        f"raw TeX in the page text: {line.strip()[:160]!r}"
        for line in v.math["text"].splitlines()
        if RAW_TEX.search(line)
    ]
    fail_on(problems, f"{name} has unrendered mathematics")


@pytest.mark.parametrize("name", PAGES)
def test_no_error_output(visits, name):
    fail_on(visits(name).error_outputs, f"{name} shows error output")


@pytest.mark.parametrize("name", PAGES)
def test_widget_pages_have_a_static_figure(visits, name):
    v = visits(name)
    static = [i for i in v.images if i["inCellOutput"] and i["naturalWidth"] > 0]
    if v.widgets and not static:
        pytest.fail(
            f"{name} has {v.widgets} widget output(s) but no loaded image in its cell outputs: "
            "a static page cannot run a widget, so show its default figure as well",
            pytrace=False,
        )


# What a reader should never meet on a page: development notes and the traces of one machine.
UNCLEAN_TEXT = {
    "a machine path": re.compile(r"(?<![\w.~])/(?:tmp|work|root|home)/\S*"),
    "a thread count": re.compile(r"\b\d+ threads?\b"),
    "a dirty-checkout flag": re.compile(r"uncommitted changes|\+ changes\]|\bgit_dirty\b"),
    "an output folder": re.compile(r"--out[ =]\S+"),
    "development history": re.compile(
        r"no longer keeps|goal ratio|the goal the\s+benchmark|GPU_NOTES|notes file|maxrss", re.I),
    "a label run into its text": re.compile(r"\b(?:commands?|commits?|device|dates):[^\s]"),
    "a cross-reference read as a word": re.compile(r"\bChapter (?:The|A|An)\b"),
}


@pytest.mark.parametrize("name", PAGES)
def test_page_text_is_clean(visits, name):
    text = visits(name).layout["text"]
    problems = [
        f"{what}: {' '.join(text[max(0, m.start() - 60):m.end() + 60].split())!r}"
        for what, pattern in UNCLEAN_TEXT.items()
        for m in pattern.finditer(text)
    ]
    fail_on(problems, f"{name} shows text a reader should not meet")


@pytest.mark.parametrize("name", PAGES)
def test_citations_are_unambiguous(visits, name):
    fail_on(visits(name).layout["ambiguous"], f"{name} cites different works under the same label")


@pytest.mark.parametrize("name", PAGES)
def test_equations_fit_their_column(visits, name):
    fail_on(visits(name).layout["equations"], f"{name} has equations that do not fit")


# A figure is legible if it is shown at no less than MIN_SHOWN of its natural width and its
# smallest text (matplotlib's "small", 0.833 of font.size, at figure.dpi) is MIN_TEXT_PX tall.
MIN_SHOWN = 0.8
MIN_TEXT_PX = 9.0


def _smallest_figure_text_px() -> float:
    """The natural height in pixels of the smallest text the book's figures use."""
    import matplotlib
    from matplotlib.font_manager import font_scalings

    rc = matplotlib.rcParams
    return rc["font.size"] * font_scalings["small"] * rc["figure.dpi"] / 72


@pytest.mark.parametrize("name", PAGES)
def test_figures_are_legible(visits, name):
    natural_text = _smallest_figure_text_px()
    problems = []
    for img in visits(name).images:
        if not (img["inCellOutput"] and img["naturalWidth"] > 0 and img["shownWidth"] > 0):
            continue
        ratio = img["shownWidth"] / img["naturalWidth"]
        if img["coveredBy"]:
            problems.append(f"{img['src']} ({img['caption'][:60] or img['alt']!r}) is hidden at its right edge "
                            f"under {img['coveredBy']} at {VIEWPORT_WIDTH} px")
        if ratio < MIN_SHOWN or ratio * natural_text < MIN_TEXT_PX:
            problems.append(
                f"{img['src']} ({img['caption'][:60] or img['alt']!r}) is {img['naturalWidth']} px wide, "
                f"shown at {img['shownWidth']:.0f} px ({ratio:.2f}): its smallest text is "
                f"{ratio * natural_text:.1f} px tall at {VIEWPORT_WIDTH} px"
            )
    fail_on(problems, f"{name} has figures shown too small to read")


# On a phone-sized screen a multi-panel figure (a row of panels, as frbook.js judges it: wider
# than 2.2 times its height) keeps MIN_SHOWN of its size and scrolls inside its own box; the page
# itself never scrolls sideways.
NARROW_WIDTH = 400


@pytest.mark.parametrize("name", PAGES)
def test_multi_panel_figures_stay_legible_on_a_narrow_screen(chromium, book_url, name):
    v = visit(chromium, f"{book_url}{name}.html", SCREENSHOTS / f"narrow-{Path(name).name}.png", width=NARROW_WIDTH)
    problems = []
    if v.page_overflow > 1:
        problems.append(f"the page scrolls sideways by {v.page_overflow} px at {NARROW_WIDTH} px, "
                        f"past its edge: {'; '.join(v.overflowing) or 'no single element found'}")
    for img in v.images:
        if not (img["inCellOutput"] and img["naturalWidth"] > 2.2 * img["naturalHeight"] > 0):
            continue
        ratio = img["shownWidth"] / img["naturalWidth"]
        if ratio < MIN_SHOWN - 0.01:
            problems.append(f"{img['src']} ({img['caption'][:60] or img['alt']!r}) is shown at {ratio:.2f} "
                            f"of its {img['naturalWidth']} px at {NARROW_WIDTH} px")
    fail_on(problems, f"{name} at {NARROW_WIDTH} px")


def test_index_redirects_to_root(chromium, book_url):
    v = visit(chromium, book_url + "index.html", expect_url=f"**/{ROOT_PAGE}.html")
    fail_on(v.load_problems, "index.html did not load cleanly")
    if not v.final_url.endswith(f"/{ROOT_PAGE}.html"):
        pytest.fail(f"index.html did not lead to {ROOT_PAGE}.html: it ended at {v.final_url}")


def test_search_finds_arcface(chromium, book_url):
    v = visit(
        chromium,
        book_url + "search.html?q=ArcFace",
        SCREENSHOTS / "search.png",
        ready="() => document.querySelectorAll('#search-results li').length > 0"
        " || /finished|did not match/i.test(document.querySelector('.search-summary')?.innerText)",
        extract="() => ({hits: [...document.querySelectorAll('#search-results li')]"
        ".map((li) => li.querySelector('a')?.innerText || li.innerText),"
        " summary: document.querySelector('#search-results')?.innerText"
        " || '(no #search-results)'})",
    )
    fail_on(v.load_problems, "search.html did not load cleanly")
    if not v.extracted["hits"]:
        summary = " ".join(v.extracted["summary"].split())[:300]
        pytest.fail(f"searching the book for ArcFace found nothing: {summary}", pytrace=False)


# Notes on what the toolchain emits (jupyter-book 1.0.4, myst-nb 1.4, sphinx-book-theme 1.3),
# which the rules above rely on:
# - A figure in a cell output is <img alt="_images/<hash>.png" src="_images/<hash>.png">: with
#   no alt of the author's, the alt is the file name. Cell metadata gives a real one:
#   {"mystnb": {"image": {"alt": "..."}}}; {"mystnb": {"figure": {"caption": "...", "name":
#   "fig-..."}}} wraps the image in <figure> with a <figcaption> (and makes it referable).
# - An error output is div.output.traceback inside div.cell_output; stderr is div.output.stderr;
#   a cell's tags become classes of its div.cell (tag_raises-exception, tag_hide-input, ...).
# - A widget output is <script type="application/vnd.jupyter.widget-view+json">; it renders only
#   where require.js and @jupyter-widgets/html-manager load, from a CDN.


# ---------------------------------------------------------------------------------------------
# Live figures (frbook.viz.live): they draw and redraw in the page itself, offline

# Pages with live figures, and the slider each test moves there.
LIVE_PAGES = {"book/ch03_margins": ("margin", "m"), "book/ch06_p2sgrad": ("gradient", "s"),
              "book/ch07_search": ("reduction", "a")}
# The curve of each kind that the tests compare with the library.
LIVE_CURVES = {"margin": "target_logit", "gradient": "target_probability", "reduction": "reduction"}

# The first drawn live figure of a kind (a page may hold several kinds).
_LIVE_FIND = r"""
(kind) => [...document.querySelectorAll('.frbook-live[data-draws]')]
  .find((root) => JSON.parse(root.dataset.config).kind === kind) || null
"""

_LIVE_READ = r"""
(root) => ({
  draws: Number(root.dataset.draws || 0),
  state: JSON.parse(root.dataset.state || 'null'),
  curves: [...root.querySelectorAll('path.fl-curve')].map((p) => ({
    name: p.dataset.name, d: p.getAttribute('d'),
    x: JSON.parse(p.dataset.x), y: JSON.parse(p.dataset.y)})),
})
"""

_LIVE_MOVE = r"""
([root, key]) => {
  const input = root.querySelector(`input[name="${key}"]`);
  if (!input) return false;
  const span = Number(input.max) - Number(input.min);
  input.value = String(Math.min(Number(input.max), Number(input.value) + span / 4));
  input.dispatchEvent(new Event('input', {bubbles: true}));
  return true;
}
"""


def _expected_curve(kind: str, state: dict, name: str, x):
    """What frbook says a live figure's curve ``name`` holds at ``x`` (angles; for the
    reduction, softmax probabilities p)."""
    import torch

    from frbook import losses
    from frbook.losses import gradients
    from frbook.search import reduce_probability

    if kind == "reduction":
        if name != "reduction":
            raise AssertionError(f"no expected values for curve {name}")
        return reduce_probability(torch.tensor(x, dtype=torch.float64), state["params"]["a"])
    theta = torch.tensor(x, dtype=torch.float64)
    params = dict(state["params"])
    loss = losses.get(state["loss"], **params)
    if name == "target_logit":
        return loss.target_logit(theta)
    if name == "target_probability":
        return gradients.target_probability(loss, theta, state["num_classes"])
    raise AssertionError(f"no expected values for curve {name}")


def exercise_live_figure(page, kind: str, key: str, screenshot_stem: str | None = None) -> list[str]:
    """Move slider ``key`` of the page's first live figure of ``kind``; return what went wrong
    (empty if nothing): it must have drawn, redrawn on the move, and drawn the library's values."""
    problems = []
    root = page.wait_for_function(_LIVE_FIND, arg=kind, timeout=SETTLE_MS).as_element()
    root.scroll_into_view_if_needed()
    curve = LIVE_CURVES[kind]
    if screenshot_stem:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        root.screenshot(path=str(SCREENSHOTS / f"{screenshot_stem}-before.png"))
    before = page.evaluate(_LIVE_READ, root)
    if not page.evaluate(_LIVE_MOVE, [root, key]):
        return [f"the live {kind} figure has no slider {key!r}"]
    after = page.evaluate(_LIVE_READ, root)
    if screenshot_stem:
        root.screenshot(path=str(SCREENSHOTS / f"{screenshot_stem}-after.png"))
    if after["draws"] <= before["draws"]:
        problems.append(f"moving {key} did not redraw the {kind} figure")
    drawn_before = {c["name"]: c for c in before["curves"]}
    drawn = {c["name"]: c for c in after["curves"]}
    if curve not in drawn:
        return problems + [f"the {kind} figure draws no {curve} curve: {sorted(drawn)}"]
    if drawn[curve]["d"] == drawn_before.get(curve, {}).get("d"):
        problems.append(f"moving {key} left the {curve} curve as it was")
    if before["state"]["params"][key] == after["state"]["params"][key]:
        problems.append(f"moving {key} did not change the figure's {key}")
    import math

    values = drawn[curve]
    picks = [i for i in range(0, len(values["x"]), max(1, len(values["x"]) // 7))]
    x = [values["x"][i] for i in picks]
    expected = _expected_curve(kind, after["state"], curve, x)
    for i, want in zip(picks, expected.tolist()):
        got = values["y"][i]
        if got is None or not math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12):
            problems.append(f"{curve} at x={values['x'][i]:.4f}: drawn {got}, frbook {want}")
    return problems


def _offline_page(browser, origin: str | None = None):
    """A page in a fresh context that may reach nothing but ``origin`` (None: no host at all)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    blocked = []

    def route(route):
        url = route.request.url
        if (origin and url.startswith(origin)) or urlsplit(url).scheme in ("data", "blob", "about", "file"):
            route.continue_()
        else:
            blocked.append(url)
            route.abort("blockedbyclient")

    context.route("**/*", route)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return context, page, blocked, errors


def test_live_figures_work_offline_standalone(chromium, tmp_path):
    """The figures' own HTML (what a notebook output holds), with no book and no network."""
    from frbook.viz import live

    page_file = tmp_path / "live.html"
    page_file.write_text(
        "<!doctype html><html><head><meta charset='utf-8'></head><body>"
        + live.margin_figure("arcface").data
        + live.gradient_figure("cosface", num_classes=1000).data
        + live.reduction_figure().data
        + "</body></html>"
    )
    context, page, blocked, errors = _offline_page(chromium)
    try:
        page.goto(page_file.as_uri())
        problems = exercise_live_figure(page, "margin", "m", "live-standalone-margin")
        problems += exercise_live_figure(page, "gradient", "s", "live-standalone-gradient")
        problems += exercise_live_figure(page, "reduction", "a", "live-standalone-reduction")
        problems += _check_reduction_readout(page)
        figures = page.query_selector_all(".frbook-live[data-draws]")
        if len(figures) != 3:
            problems.append(f"{len(figures)} live figures drawn, not 3")
    finally:
        context.close()
    fail_on(problems + [f"uncaught exception: {e}" for e in errors]
            + [f"asked the network for {u}" for u in blocked], "the live figures failed")


def _check_reduction_readout(page) -> list[str]:
    """Moving s changes the reduction figure's readout, which states frbook's CosFace margin."""
    from frbook.search import cosface_margin

    root = page.wait_for_function(_LIVE_FIND, arg="reduction", timeout=SETTLE_MS).as_element()
    read = "(root) => [root.querySelector('.fl-readout').textContent, JSON.parse(root.dataset.state).params]"
    before, _ = page.evaluate(read, root)
    if not page.evaluate(_LIVE_MOVE, [root, "s"]):
        return ["the live reduction figure has no slider 's'"]
    after, params = page.evaluate(read, root)
    margin = f"m = log(1 − a) / s = {round(cosface_margin(params['a'], params['s']), 3):g}"
    problems = [] if after != before else ["moving s left the reduction figure's readout as it was"]
    if margin not in after:
        problems.append(f"the reduction figure's readout {after!r} does not state {margin!r}")
    return problems


@pytest.mark.parametrize("name", sorted(LIVE_PAGES))
def test_live_figure_redraws_on_page(chromium, book_url, name):
    """On the built page, offline: a slider moves, the drawing changes, the values are the library's."""
    kind, key = LIVE_PAGES[name]
    if not (HTML_DIR / f"{name}.html").is_file():
        pytest.fail(f"{name} was not built", pytrace=False)
    origin = "{0.scheme}://{0.netloc}/".format(urlsplit(book_url))
    context, page, blocked, errors = _offline_page(chromium, origin)
    try:
        page.goto(f"{book_url}{name}.html", wait_until="load")
        problems = exercise_live_figure(page, kind, key, f"live-{Path(name).name}")
    finally:
        context.close()
    fail_on(problems + [f"uncaught exception: {e}" for e in errors], f"{name}: the live figure failed")


def test_assignments_page_links_the_student_notebooks(chromium, book_url):
    """The assignments page offers each student notebook for download, without its solutions."""
    import urllib.request

    names = sorted(p.name for p in (REPO / "book" / "assignments" / "source").glob("*/*.ipynb"))
    v = visit(chromium, book_url + "book/assignments.html",
              extract="() => [...document.querySelectorAll('a.download, a[download]')].map((a) => a.href)")
    fail_on(v.load_problems, "the assignments page did not load cleanly")
    links = {Path(urlsplit(href).path).name: href for href in v.extracted}
    problems = [f"no download link to {name}" for name in names if name not in links]
    for name in names:
        if name in links:
            text = urllib.request.urlopen(links[name], timeout=10).read().decode()
            if "BEGIN SOLUTION" in text or "BEGIN HIDDEN TESTS" in text:
                problems.append(f"{name} as linked still holds solutions or hidden tests")
    fail_on(problems, "the assignments page does not offer the student notebooks")
