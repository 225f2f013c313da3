"""The static checks behind the browser test (tools/book_check.py) and the HTML fix-up extension
(tools/jb_html_fixes.py), on tiny synthetic pages: no browser and no built book needed."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from book_check import check_links, html_pages, raw_math, resolve  # noqa: E402
from jb_html_fixes import dedupe_scripts  # noqa: E402


@pytest.fixture()
def book(tmp_path):
    """A two-page book: index.html links into book/a.html, which links back and to an image."""
    (tmp_path / "book").mkdir()
    (tmp_path / "_images").mkdir()
    (tmp_path / "_images" / "fig.png").write_bytes(b"\x89PNG")
    (tmp_path / "index.html").write_text(
        '<html><body><a href="book/a.html">A</a> <a href="book/a.html#results">results</a>'
        ' <a href="https://arxiv.org/abs/1706.06083">Madry</a> <a href="mailto:x@y.z">mail</a>'
        ' <a href="#">top</a> <a href="book/">dir</a></body></html>')
    (tmp_path / "book" / "index.html").write_text("<html><body>dir index</body></html>")
    (tmp_path / "book" / "a.html").write_text(
        '<html><body><h1 id="results">Results</h1><a name="old-anchor"></a>'
        '<img src="../_images/fig.png"> <a href="../index.html">home</a>'
        ' <a href="#old-anchor">anchor</a> <a href="a.html?highlight=x#results">search hit</a></body></html>')
    return tmp_path


def test_a_sound_book_passes_and_lists_external_links(book):
    problems, external = check_links(book)
    assert problems == []
    assert external == ["https://arxiv.org/abs/1706.06083"]  # listed, never fetched
    assert html_pages(book) == ["book/a.html", "book/index.html", "index.html"]


def test_a_missing_page_is_reported_with_the_page_and_the_link(book):
    (book / "book" / "index.html").write_text('<a href="../chapters/b.html">b</a>')
    problems, _ = check_links(book)
    assert problems == ["book/index.html: link '../chapters/b.html' -> missing file chapters/b.html (<a>)"]


def test_a_missing_fragment_is_reported(book):
    (book / "index.html").write_text('<a href="book/a.html#no-such-section">x</a>')
    problems, _ = check_links(book)
    assert problems == ["index.html: link 'book/a.html#no-such-section' -> no element with id "
                        "'no-such-section' in book/a.html (<a>)"]


def test_a_missing_image_is_reported(book):
    (book / "_images" / "fig.png").unlink()
    problems, _ = check_links(book)
    assert problems == ["book/a.html: link '../_images/fig.png' -> missing file _images/fig.png (<img>)"]


def test_resolve_uses_the_ids_given_for_the_page_itself(book):
    # ids that exist only in the live page (added by a script) count for same-page links
    assert resolve(book, "book/a.html", "#made-by-js") is not None
    assert resolve(book, "book/a.html", "#made-by-js", page_ids={"made-by-js"}) is None
    assert resolve(book, "book/a.html", "../../etc/passwd").startswith("book/a.html: link '../../etc/passwd' points outside")


@pytest.mark.parametrize("text,found", [
    ("the loss $J(x, y)$ rises", ["$J(x, y)$"]),
    ("display $$\\epsilon = 0.3$$ maths", ["$$\\epsilon = 0.3$$"]),
    ("inline \\(x^2\\) left", ["\\(x^2\\)"]),
    ("it costs $5 and $6 a day", []),       # prices, not maths
    ("no maths here, 98.96 %", []),
])
def test_raw_math(text, found):
    assert raw_math(text) == found


def test_identical_inline_scripts_are_kept_once():
    from sphinx.builders.html._assets import _JavaScript

    body = 'const THEBE_JS_URL = "x"'
    scripts = [_JavaScript("_static/doctools.js", priority=200), _JavaScript(None, body=body),
               _JavaScript("", body=body), _JavaScript("", body="var other = 1")]
    kept = dedupe_scripts(scripts)
    assert [s.attributes.get("body") for s in kept] == [None, body, "var other = 1"]
    assert kept[0].filename == "_static/doctools.js"
