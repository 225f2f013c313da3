"""Fixtures of the browser test: the built book served on localhost, and headless Chromium.

Kept out of ``tests/`` on purpose: ``make test`` runs before the book is built. Run with
``make browser-test`` (after ``make book``), or ``.venv/bin/python -m pytest tests_browser``.

Environment:
    BOOK_HTML         the built book (default ``_build/html``)
    BOOK_SCREENSHOTS  where screenshots go (default ``_build/screenshots``)
    CHROMIUM          the Chromium binary (default: ``chromium`` on PATH, Debian's package)
"""
from __future__ import annotations

import functools
import os
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from browser_env import BOOK


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


@pytest.fixture(scope="session")
def book_url():
    """Base URL (ending in '/') of ``_build/html`` served by a local HTTP server on a free port."""
    if not (BOOK / "index.html").is_file():
        pytest.fail(f"no built book at {BOOK}: run `make book` first", pytrace=False)
    handler = functools.partial(_QuietHandler, directory=str(BOOK))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def chromium_path() -> str:
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and (found := shutil.which(candidate)):
            return found
    pytest.fail("no Chromium found: `apt-get install -y chromium` (Debian), or set CHROMIUM=/path/to/chrome",
                pytrace=False)


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium (the system's binary, so Playwright downloads nothing)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: `make venv` installs it from requirements.lock", pytrace=False)
    with sync_playwright() as pw:
        chrome = pw.chromium.launch(executable_path=chromium_path(), headless=True)
        yield chrome
        chrome.close()


@pytest.fixture()
def context(browser):
    """A fresh browser context (one tab's worth of state) for each test, at a fixed window size."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(30_000)
    yield ctx
    ctx.close()
