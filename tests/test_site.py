"""Build the course website and check it in a real (headless) browser.

1. ``jupyter-book build`` must succeed with warnings as errors (``-W -n``),
   offline, from the outputs stored in the notebooks.
2. The built pages are served on 127.0.0.1 and opened in Debian's Chromium
   through Playwright: math is typeset by the bundled MathJax, the figure
   loads, the download/launch buttons are there, the site search finds the
   chapter, and no request leaves localhost (the site must work offline).

The browser part is skipped (with a message saying what to install) when
Chromium is missing, except under CI (CI set), where that is a failure; the build
part always runs.
"""

from __future__ import annotations

import dataclasses
import functools
import html.parser
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from helpers import REPO

# The jupyter-book executable of the environment running the tests.
JUPYTER_BOOK = Path(sys.executable).parent / "jupyter-book"
CHAPTER = "book/01_topk.html"
REPO_URL = yaml.safe_load((REPO / "_config.yml").read_text(encoding="utf-8"))["repository"]["url"]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 20_000  # per browser wait; pages are local, so this is generous


# --------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """Build the book into a temporary directory; return its html folder."""
    assert JUPYTER_BOOK.exists(), f"jupyter-book not found next to {sys.executable}"
    out = tmp_path_factory.mktemp("site")
    cmd = [
        str(JUPYTER_BOOK), "build", str(REPO),
        "--path-output", str(out),
        "-W", "-n", "--keep-going",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"book build failed:\n{log[-6000:]}"
    html_dir = out / "_build" / "html"
    assert (html_dir / CHAPTER).is_file(), f"{CHAPTER} was not built:\n{log[-3000:]}"
    return html_dir


class _RemoteResourceFinder(html.parser.HTMLParser):
    """Collect resources a page loads (not links it offers) from other hosts."""

    # tag -> attribute that makes the browser fetch something at page load
    LOADING_ATTRS = {"script": "src", "img": "src", "iframe": "src",
                     "link": "href", "source": "src", "video": "src",
                     "audio": "src", "embed": "src"}

    def __init__(self):
        super().__init__()
        self.remote: list[str] = []

    def handle_starttag(self, tag, attrs):
        attr = self.LOADING_ATTRS.get(tag)
        if attr is None:
            return
        attrs = dict(attrs)
        # <link rel="canonical"> and friends are not fetched.
        if tag == "link" and not {"stylesheet", "preload", "modulepreload", "icon"} & set(
            (attrs.get("rel") or "").split()
        ):
            return
        url = attrs.get(attr) or ""
        if url.startswith(("http://", "https://", "//")):
            self.remote.append(f"<{tag} {attr}={url!r}>")


def _toc_files(entry) -> set[str]:
    """All document paths ("root"/"file" keys) in a parsed _toc.yml."""
    if isinstance(entry, list):
        return set().union(*map(_toc_files, entry))
    if not isinstance(entry, dict):
        return set()
    found = {entry[key] for key in ("root", "file") if key in entry}
    return found.union(*map(_toc_files, entry.values()))


def test_site_builds_offline(site: Path):
    # Exactly the pages listed in _toc.yml are built, nothing else from the
    # repository (README, notebooks/, solutions/, ...).
    toc = yaml.safe_load((REPO / "_toc.yml").read_text(encoding="utf-8"))
    expected = {f"{name}.html" for name in _toc_files(toc)}
    generated = {"index.html", "search.html", "genindex.html"}  # Sphinx's own pages
    built = {p.relative_to(site).as_posix() for p in site.rglob("*.html")
             if not p.relative_to(site).parts[0].startswith("_")} - generated
    assert CHAPTER in expected
    assert built == expected
    assert (site / "index.html").is_file()

    # MathJax is shipped with the site (sphinx-mathjax-offline) ...
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file(), (
        "MathJax is not bundled: is sphinx-mathjax-offline in _config.yml?"
    )
    chapter = (site / CHAPTER).read_text(encoding="utf-8")
    assert 'src="../_static/mathjax/tex-chtml.js"' in chapter

    # ... and no page loads a script, stylesheet, image or frame from a CDN.
    for page in site.rglob("*.html"):
        finder = _RemoteResourceFinder()
        finder.feed(page.read_text(encoding="utf-8"))
        assert not finder.remote, f"{page.relative_to(site)} loads remote resources: {finder.remote}"


# --------------------------------------------------------------------------
# Browser
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(site: Path):
    """Serve the built site on 127.0.0.1 (random free port) in a thread."""

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

    handler = functools.partial(QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium")
    if chromium is None:
        message = ("chromium not found: install Debian's chromium (apt-get install chromium) "
                   "to run the browser check")
        if os.environ.get("CI"):  # .ci/run installs it: a missing browser there is a failure
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@dataclasses.dataclass
class Visit:
    """A browser page plus what happened on it."""

    page: object  # playwright.sync_api.Page
    requests: list[str] = dataclasses.field(default_factory=list)  # every URL requested
    errors: list[str] = dataclasses.field(default_factory=list)  # uncaught JS exceptions


@pytest.fixture
def visit(browser):
    """A fresh page that records every request and every JavaScript error.

    Requests to other hosts are recorded and then aborted, so that a stray
    remote load fails the test quickly instead of waiting on the network.
    """
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    visit = Visit(page=context.new_page())
    visit.page.on("request", lambda request: visit.requests.append(request.url))
    visit.page.on("pageerror", lambda exc: visit.errors.append(str(exc)))

    def only_localhost(route):
        if urlsplit(route.request.url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            route.abort()

    visit.page.route("**/*", only_localhost)
    yield visit
    context.close()


def _remote_requests(urls: list[str]) -> list[str]:
    remote = []
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob", "about"):
            continue
        if parts.hostname not in LOCAL_HOSTS:
            remote.append(url)
    return remote


# Text of the page outside code and rendered math: what is left of any
# formula MathJax did not typeset ($$, \(, \frac, ...) shows up here.
PROSE_TEXT_JS = """() => {
  const main = document.querySelector('main').cloneNode(true);
  main.querySelectorAll('pre, code, script, style, mjx-container').forEach(e => e.remove());
  return main.textContent;
}"""
RAW_TEX = re.compile(r"\$\$|\\[(\[]|\\[a-zA-Z]+")


def _check_rendered(page, server: str, *, min_math: int = 1) -> None:
    """At least ``min_math`` formulas, each typeset by the site's own MathJax; no raw TeX left
    in the prose; every figure loaded."""
    if page.locator(".math").count():
        page.wait_for_selector("mjx-container", state="attached")
        page.wait_for_function("() => window.MathJax?.startup?.promise")
        page.evaluate("() => MathJax.startup.promise")  # settles once typesetting is done
        mathjax_src = page.evaluate("() => document.querySelector('script[src*=\"tex-chtml\"]').src")
        assert mathjax_src.startswith(f"{server}/_static/mathjax/"), mathjax_src
    assert page.locator(".math").count() >= min_math, "too few formulas on the page"
    untypeset = page.locator(".math:not(:has(mjx-container))")
    assert untypeset.count() == 0, f"formula not typeset: {untypeset.first.inner_text()!r}"
    assert page.locator("mjx-merror").count() == 0, "MathJax reported a TeX error"
    leftovers = RAW_TEX.findall(page.evaluate(PROSE_TEXT_JS))
    assert not leftovers, f"raw TeX left in the page text: {leftovers}"
    images = page.locator(".cell_output img")
    for i in range(images.count()):
        assert images.nth(i).evaluate("img => img.complete && img.naturalWidth > 0"), (
            f"figure {images.nth(i).get_attribute('src')} did not load"
        )


def test_chapter_page_renders(visit, server, site: Path):
    page = visit.page
    page.goto(f"{server}/{CHAPTER}", wait_until="load")
    # Fail fast (rather than time out waiting for MathJax) if the page tried
    # to load something from elsewhere, e.g. MathJax from a CDN.
    assert _remote_requests(visit.requests) == [], "requests left localhost"

    _check_rendered(page, server, min_math=2)
    assert page.locator('mjx-container[display="true"]').count() >= 1, "no display math"
    assert "top-5" in page.inner_text("main")
    assert page.locator(".cell_output img").count() >= 1, "no figure in the chapter"

    # Download button: the .ipynb source is offered and actually served.
    download = page.locator("a.btn-download-source-button")
    assert download.count() == 1, "no download button"
    href = download.get_attribute("href")
    assert href.endswith("01_topk.ipynb"), href
    assert page.request.get(f"{server}/book/{href}").ok, f"cannot download {href}"

    # Launch, repository and issues buttons point at the course repository.
    owner_name = REPO_URL.removeprefix("https://github.com/")
    notebook = f"{owner_name}/blob/main/book/01_topk.ipynb"
    for selector in [
        f'a[href="https://colab.research.google.com/github/{notebook}"]',
        f'a[href="https://mybinder.org/v2/gh/{owner_name}/main'
        '?urlpath=tree/book/01_topk.ipynb"]',
        f'a[href="{REPO_URL}"]',
        f'a[href^="{REPO_URL}/issues/new"]',
    ]:
        assert page.locator(selector).count() >= 1, f"missing button {selector}"

    # The sidebar numbers the chapters ("1. Top-k error ..."), as the text refers to them.
    titles = page.evaluate("""() => [...document.querySelectorAll('nav.bd-links p.caption + ul > li.toctree-l1 > a')]
        .map(a => a.textContent.trim())""")
    assert len(titles) == len(CHAPTERS), titles
    for number, title in enumerate(titles, 1):
        assert re.match(rf"{number}\. \S", title), title

    # Everything (also what MathJax loaded later) came from localhost, and no
    # script failed.
    assert _remote_requests(visit.requests) == [], "requests left localhost"
    assert visit.errors == [], "JavaScript errors on the page"

    # Kept next to the built site for a human look (not part of the repo).
    page.screenshot(path=str(site.parents[1] / "01_topk.png"), full_page=True)


def test_search_finds_chapter(visit, server):
    page = visit.page
    page.goto(f"{server}/search.html?q=top-5", wait_until="load")
    # Sphinx's search script fills ul.search with one <li> per matching page.
    page.wait_for_selector('ul.search li a[href*="book/01_topk.html"]')
    assert _remote_requests(visit.requests) == [], "requests left localhost"
    assert visit.errors == [], "JavaScript errors on the page"


_TOC = yaml.safe_load((REPO / "_toc.yml").read_text(encoding="utf-8"))
CHAPTERS = sorted(f"{name}.html" for name in _toc_files(_TOC) if name != _TOC["root"])


# Blocks wider than their box (they would scroll sideways); collapsed ones measure 0.
OVERFLOWING_JS = """() => [...document.querySelectorAll('main pre')]
  .filter(p => p.scrollWidth > p.clientWidth + 1)
  .map(p => p.textContent.split('\\n').find(line => line.length > 0).slice(0, 80))"""
# Every figure of a cell's output: its alt text and whether it has a caption.
FIGURES_JS = """() => [...document.querySelectorAll('main .cell_output img')]
  .map(img => ({src: img.getAttribute('src'), alt: img.getAttribute('alt') || '',
                caption: (img.closest('figure')?.querySelector('figcaption')?.textContent || '').trim()}))"""


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_chapter_renders(visit, server, chapter):
    """Each chapter page: nothing requested from elsewhere, no JavaScript error, its math
    typeset, no raw TeX, its figures loaded (chapter 01 gets the full check above); it opens on
    the content, with captioned figures and no block that scrolls sideways at 1280 px; it links
    its assignment; it ends with questions whose answers open on request."""
    page = visit.page
    page.goto(f"{server}/{chapter}", wait_until="load")
    assert _remote_requests(visit.requests) == [], "requests left localhost"
    _check_rendered(page, server, min_math=0)

    # The first thing on the page is the chapter's text, the set-up code one click away.
    first_cell = page.locator("main .cell").first
    assert first_cell.locator("details.hide-input, details").count() >= 1, "the first code cell is not collapsed"
    assert page.locator("main section h1 ~ p, main section h1 ~ ul").first.is_visible()

    assert page.evaluate(OVERFLOWING_JS) == [], "blocks that scroll sideways at 1280 px"
    for figure in page.evaluate(FIGURES_JS):
        assert figure["caption"], f"figure {figure['src']} has no caption"
        assert len(figure["alt"]) > 20 and not figure["alt"].endswith(".png"), (
            f"figure {figure['src']} has no real alt text: {figure['alt']!r}")

    # The assignment: a link that downloads the student notebook.
    topic = chapter.removeprefix("book/").removesuffix(".html")
    download = page.locator(f'a.download[href$="{topic}.ipynb"]')
    assert download.count() >= 1, f"no download link to notebooks/{topic}/{topic}.ipynb"
    href = download.first.get_attribute("href")
    assert page.request.get(f"{server}/book/{href}").ok, f"cannot download {href}"

    # Check yourself: at least 5 questions; an answer is hidden until the reader opens it.
    assert page.locator("main .exercise").count() >= 5, "fewer than 5 questions"
    solution = page.locator("main .solution.dropdown").first
    body = solution.locator("section").first
    assert not body.is_visible(), "an answer is shown before the reader asks for it"
    solution.locator(".admonition-title").click()
    body.wait_for(state="visible")
    assert visit.errors == [], visit.errors
