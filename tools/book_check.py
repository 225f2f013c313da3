"""Static checks of the built book (`_build/html`), shared by the browser test and the unit tests.

Nothing here touches the network: internal links are resolved against the files on disk, and
external links (any URL with a scheme, ``https:``, ``mailto:``...) are only listed.

    python tools/book_check.py _build/html     # prints the problems and the external links

- :func:`check_links` walks every HTML page and reports each internal ``href``/``src`` that does
  not resolve to an existing file, or whose ``#fragment`` names no ``id`` in the target page.
- :func:`resolve` does the same for one link, for the links a browser sees on a page.
- :func:`raw_math` finds TeX that MathJax left untypeset (``$...$``, ``\\(...\\)``, ``\\[...\\]``).
"""
from __future__ import annotations

import re
import sys
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

# Attributes that point at another file: <a href>, <link href>, <img src>, <script src>, ...
LINK_ATTRS = {"a": "href", "link": "href", "img": "src", "script": "src", "source": "src",
              "iframe": "src", "embed": "src", "video": "src", "audio": "src"}


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[tuple[str, str]] = []  # (tag, url)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for key in ("id", "name") if tag == "a" else ("id",):  # <a name=...> is an anchor too
            if a.get(key):
                self.ids.add(a[key])
        attr = LINK_ATTRS.get(tag)
        if attr and a.get(attr) is not None:
            self.links.append((tag, a[attr].strip()))


def parse_page(html: str) -> tuple[set[str], list[tuple[str, str]]]:
    """The element ids of a page and its links, as ``(tag, url)`` pairs."""
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    return parser.ids, parser.links


@lru_cache(maxsize=256)
def _ids_of(path: Path) -> frozenset[str]:
    return frozenset(parse_page(path.read_text(encoding="utf-8", errors="replace"))[0])


def is_external(url: str) -> bool:
    """True for a URL with a scheme or a host (``https://...``, ``//host/...``, ``mailto:``)."""
    parts = urlsplit(url)
    return bool(parts.scheme or parts.netloc)


def resolve(root: Path, page: str, url: str, page_ids: set[str] | None = None) -> str | None:
    """Check one internal link found on ``page`` (a path relative to ``root``).

    Returns None when the link resolves, else a message naming the page, the link and the problem.
    External and empty links (``#``, ``javascript:``...) are not checked here and return None.
    ``page_ids`` are the ids the page has (e.g. read from the live DOM); by default the page's file.
    """
    root = Path(root).resolve()
    if not url or url == "#" or is_external(url):
        return None
    parts = urlsplit(url)
    here = (root / page).parent
    if parts.path:
        target = (root / parts.path.lstrip("/")) if parts.path.startswith("/") else (here / unquote(parts.path))
        target = target.resolve()
        if target.is_dir():
            target = target / "index.html"
        if root not in target.parents and target != root:
            return f"{page}: link {url!r} points outside the book ({target})"
        if not target.is_file():
            return f"{page}: link {url!r} -> missing file {target.relative_to(root)}"
    else:
        target = (root / page).resolve()
    fragment = unquote(parts.fragment)
    if fragment and target.suffix == ".html":
        ids = page_ids if (page_ids is not None and target == (root / page).resolve()) else _ids_of(target)
        if fragment not in ids:
            return f"{page}: link {url!r} -> no element with id {fragment!r} in {target.relative_to(root)}"
    return None


def html_pages(root: Path) -> list[str]:
    """Every HTML page of the built book, relative to ``root``, in sorted order."""
    root = Path(root)
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.html")
                  if "_static" not in p.relative_to(root).parts)


def check_links(root: Path, pages: list[str] | None = None) -> tuple[list[str], list[str]]:
    """Check the internal links of ``pages`` (default: all). Returns (problems, external links)."""
    root = Path(root)
    _ids_of.cache_clear()
    problems, external = [], set()
    for page in pages if pages is not None else html_pages(root):
        _, links = parse_page((root / page).read_text(encoding="utf-8", errors="replace"))
        for tag, url in links:
            if is_external(url):
                if urlsplit(url).scheme in ("http", "https", ""):
                    external.add(url)
                continue
            if urlsplit(url).scheme:  # javascript:, data:, mailto: ...
                continue
            msg = resolve(root, page, url)
            if msg:
                problems.append(f"{msg} (<{tag}>)")
    return problems, sorted(external)


# $...$ with no space just inside the dollars (so "costs $5 and $6" is not maths), one line long.
_DOLLAR_MATH = re.compile(r"(?<![\\$\w])\$(?=\S)([^$\n]{1,200}?)(?<=\S)\$(?![\w$])")
_DISPLAY_MATH = re.compile(r"\$\$.+?\$\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.S)


def raw_math(text: str) -> list[str]:
    """Snippets of TeX left as text: ``$...$``, ``$$...$$``, ``\\(...\\)`` or ``\\[...\\]``."""
    found = [m.group(0) for m in _DISPLAY_MATH.finditer(text)]
    found += [m.group(0) for m in _DOLLAR_MATH.finditer(_DISPLAY_MATH.sub(" ", text))]
    return [s if len(s) <= 80 else s[:77] + "..." for s in found]


def main(argv: list[str]) -> int:
    root = Path(argv[0] if argv else "_build/html")
    if not (root / "index.html").is_file():
        print(f"error: no built book at {root} (run `make book` first)", file=sys.stderr)
        return 2
    problems, external = check_links(root)
    print(f"{len(html_pages(root))} pages; {len(external)} external links (listed, not fetched):")
    for url in external:
        print(f"  {url}")
    for msg in problems:
        print(f"BROKEN {msg}")
    print(f"{len(problems)} broken internal links")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
