"""The rendered book as a reader sees it: every page of ``_build/html`` in headless Chromium.

Each page is served from localhost and opened in Chromium; the test fails, naming the page, on
- a console error or an uncaught script error;
- a failed request, an HTTP error, or any request that leaves localhost (the book must work offline);
- maths not typeset: MathJax not loaded from the book itself, a ``.math`` element without its
  ``mjx-container``, a MathJax error, or TeX left as text (``$...$``, ``\\(...\\)``);
- an image that did not load (``naturalWidth`` 0);
- an internal link to a missing file, or to a ``#fragment`` with no such id in the target page;
- a table wider than the text column, or a figure drawn more than :data:`DOWNSCALE` times wider
  than it is shown;
- a table cell reading ``NaN`` or ``None``, or ``pending`` in the text a reader reads (code excluded).
The search page must find "sparsity". Screenshots of the landing page, the DDSA chapter and the
search results are saved in ``_build/screenshots`` (CI keeps them as artifacts).
"""
from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from browser_env import BOOK, SCREENSHOTS
from book_check import html_pages, raw_math, resolve  # noqa: I001 - browser_env puts tools/ on sys.path

PAGES = html_pages(BOOK) if (BOOK / "index.html").is_file() else ["index.html"]
# Landing page, and one chapter with results (the DDSA chapter: tables, figures, maths).
SCREENSHOT_PAGES = {"index.html": "landing.png", "book/04_ddsa.html": "ddsa-chapter.png"}

_WAIT_FOR_MATHJAX = """async () => {
  if (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) return false;
  await MathJax.startup.promise;
  return true;
}"""

_MATH = """() => ({
  elements: Array.from(document.querySelectorAll('.math')).map(e => ({
    typeset: !!e.querySelector('mjx-container'),
    error: !!e.querySelector('mjx-merror'),
    tex: e.textContent.trim().slice(0, 80),
  })),
  scripts: Array.from(document.scripts).map(s => s.src).filter(s => /mathjax/i.test(s)),
})"""

# The page's text as read, without code, scripts and typeset maths (whose TeX is kept for a11y).
_TEXT = """() => {
  const body = document.body.cloneNode(true);
  body.querySelectorAll('pre, code, kbd, samp, script, style, textarea, mjx-container, mjx-assistive-mml, .highlight')
      .forEach(e => e.remove());
  return body.textContent;
}"""

_IMAGES = """async () => {
  const imgs = Array.from(document.images);
  imgs.forEach(i => { i.loading = 'eager'; });   // lazy images below the fold load too
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(done => {
    i.addEventListener('load', done, {once: true});
    i.addEventListener('error', done, {once: true});
    setTimeout(done, 10000);
  })));
  return imgs.map(i => ({src: i.getAttribute('src'), width: i.naturalWidth, height: i.naturalHeight}));
}"""

_LINKS = """() => ({
  hrefs: Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href')),
  ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id)
       .concat(Array.from(document.querySelectorAll('a[name]')).map(a => a.name)),
})"""


# Tables and figures against the text column: a table wider than the column is clipped or scrolls,
# and a figure drawn much wider than it is shown has its labels shrunk (DOWNSCALE at most).
DOWNSCALE = 1.3
_LAYOUT = """() => {
  const column = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  const width = column.clientWidth;
  const wide = [];
  column.querySelectorAll('table').forEach(t => {
    const w = Math.max(t.getBoundingClientRect().width, t.scrollWidth);
    if (w > width + 1) wide.push(`table ${Math.round(w)} px wide in a ${width} px column: ${t.textContent.trim().slice(0, 60)}`);
  });
  column.querySelectorAll('img').forEach(i => {
    const shown = i.getBoundingClientRect().width;
    if (shown > 0 && i.naturalWidth > %s * shown)
      wide.push(`figure drawn ${i.naturalWidth} px wide, shown at ${Math.round(shown)} px: ${i.getAttribute('src')}`);
  });
  return wide;
}""" % DOWNSCALE
# What a reader should never see: a table cell reading NaN or None where a blank or a number belongs,
# and "pending" anywhere in the text (a missing record is an admonition naming its command).
MISSING_CELLS = ("NaN", "nan", "None")
PENDING = re.compile(r"\bpending\b", re.IGNORECASE)
_CELLS = "() => Array.from(document.querySelectorAll('td, th')).map(c => c.textContent.trim())"


def _check_layout(page) -> list[str]:
    return page.evaluate(_LAYOUT)


def _check_words(page) -> list[str]:
    cells = [c for c in page.evaluate(_CELLS) if c in MISSING_CELLS]
    problems = [f"{len(cells)} table cell(s) read {sorted(set(cells))}"] if cells else []
    text = page.evaluate(_TEXT)
    return problems + [f"'pending' in the text: ...{' '.join(text[max(0, m.start() - 60):m.end() + 30].split())}..."
                       for m in PENDING.finditer(text)]


def _watch(page, book_url: str) -> list[str]:
    """Record the page's console errors, script errors, failed and off-site requests."""
    problems: list[str] = []

    def guard(route):
        url = route.request.url
        if url.startswith(book_url):
            route.continue_()
        else:
            problems.append(f"request leaves the book (no network for readers offline): {url}")
            route.abort()

    page.route("**/*", guard)
    page.on("console", lambda m: m.type == "error" and problems.append(f"console error: {m.text} ({m.location.get('url', '')})"))
    page.on("pageerror", lambda e: problems.append(f"uncaught script error: {e}"))
    page.on("requestfailed", lambda r: r.url.startswith(book_url)
            and problems.append(f"request failed: {r.url} ({r.failure})"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"))
    return problems


def _page_path(url: str, book_url: str) -> str:
    """The page's path relative to the book root, from its URL (after any redirect)."""
    path = urlsplit(url).path[len(urlsplit(book_url).path):]
    return path + "index.html" if path == "" or path.endswith("/") else path


def _open(context, book_url: str, name: str):
    page = context.new_page()
    problems = _watch(page, book_url)
    page.goto(book_url + name, wait_until="load")
    page.wait_for_load_state("networkidle")
    if name == "index.html":  # the landing page is a meta-refresh to the root document
        page.wait_for_url(lambda u: not u.endswith("/index.html"), timeout=10_000)
        page.wait_for_load_state("networkidle")
    return page, problems


def _check_maths(page, book_url: str, mathjax: bool) -> list[str]:
    problems = []
    maths = page.evaluate(_MATH)
    elements = maths["elements"]
    if elements and not mathjax:
        problems.append(f"{len(elements)} maths elements but MathJax did not start")
    for src in maths["scripts"]:
        if not src.startswith(book_url):
            problems.append(f"MathJax is not served from the book: {src}")
    if elements and not maths["scripts"]:
        problems.append("maths on the page but no MathJax script")
    for e in elements:
        if e["error"]:
            problems.append(f"MathJax error typesetting {e['tex']!r}")
        elif not e["typeset"] and mathjax:
            problems.append(f"maths not typeset: {e['tex']!r}")
    for snippet in raw_math(page.evaluate(_TEXT)):
        problems.append(f"raw TeX left in the text: {snippet!r}")
    return problems


def _check_images(page) -> list[str]:
    return [f"image not loaded (naturalWidth {i['width']}): {i['src']}"
            for i in page.evaluate(_IMAGES) if not i["width"] or not i["height"]]


def _check_links(page, here: str) -> list[str]:
    links = page.evaluate(_LINKS)
    ids = set(links["ids"])
    problems = []
    for href in dict.fromkeys(links["hrefs"]):  # each distinct link once, in page order
        if href.startswith(("javascript:", "data:", "mailto:")):
            continue
        msg = resolve(BOOK, here, href, page_ids=ids)
        if msg:
            problems.append(msg)
    return problems


def test_book_is_built():
    assert (BOOK / "index.html").is_file(), f"no built book at {BOOK}: run `make book` first"
    chapters = [p for p in PAGES if p.startswith("book/")]
    assert chapters, f"no chapter pages under {BOOK / 'book'}"


@pytest.mark.parametrize("name", PAGES)
def test_page(context, book_url, name):
    page, problems = _open(context, book_url, name)
    here = _page_path(page.url, book_url)
    mathjax = page.evaluate(_WAIT_FOR_MATHJAX)
    problems += _check_maths(page, book_url, mathjax)
    problems += _check_images(page)
    problems += _check_links(page, here)
    problems += _check_layout(page)
    problems += _check_words(page)
    title = page.title()
    assert title and "404" not in title, f"{name}: page has no proper title ({title!r})"
    problems = list(dict.fromkeys(problems))  # a resource retried is one problem
    assert not problems, f"{len(problems)} problem(s) on {name} (shown as {here}):\n  " + "\n  ".join(problems)


def test_search_finds_sparsity(context, book_url):
    page, problems = _open(context, book_url, "search.html?q=sparsity")
    page.wait_for_function(
        "() => { const s = document.querySelector('#search-results .search-summary');"
        " return s && s.textContent.trim().length > 0; }", timeout=30_000)
    results = page.eval_on_selector_all("#search-results ul.search li a",
                                        "els => els.map(a => a.getAttribute('href'))")
    summary = page.inner_text("#search-results .search-summary")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "search-sparsity.png"), full_page=True)
    assert results, f"search.html?q=sparsity found nothing: {summary!r}"
    problems += [m for m in (resolve(BOOK, "search.html", h) for h in results) if m]
    assert not problems, "search page:\n  " + "\n  ".join(problems)
    assert any("04_ddsa" in h for h in results) or not (BOOK / "book" / "04_ddsa.html").exists(), \
        f"search for 'sparsity' does not list the DDSA chapter; results: {results}"


@pytest.mark.parametrize("name,filename", SCREENSHOT_PAGES.items())
def test_screenshot(context, book_url, name, filename):
    assert (BOOK / name).is_file(), f"{name} is not in the built book: nothing to screenshot"
    page, _ = _open(context, book_url, name)
    page.evaluate(_WAIT_FOR_MATHJAX)
    page.evaluate(_IMAGES)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    out = SCREENSHOTS / filename
    page.screenshot(path=str(out), full_page=True)
    assert out.stat().st_size > 10_000, f"screenshot of {name} looks empty: {out} ({out.stat().st_size} bytes)"
