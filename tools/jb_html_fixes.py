"""Sphinx extension: drop inline scripts that appear twice in a page's <head>.

Sphinx 7.4 registers an inline script (``app.add_js_file(None, body=...)``) once with filename
``None`` and once more, when the HTML builder copies the registry, with filename ``''``; its
duplicate check compares filenames, so every page gets the script twice. sphinx-thebe's
``const THEBE_JS_URL = ...`` then fails the second time ("Identifier 'THEBE_JS_URL' has already
been declared"), an uncaught script error on every page of the book (found by the browser test,
tests_browser/). This keeps the first of each identical script, whatever its filename spelling.

Enabled from ``_config.yml``::

    sphinx:
      local_extensions:
        jb_html_fixes: tools
"""
from __future__ import annotations

from typing import Any


def script_key(script: Any) -> tuple:
    """What makes two script entries the same script: file (None and '' alike), priority, attributes."""
    if isinstance(script, str):
        return (script, 500, ())
    attributes = getattr(script, "attributes", {}) or {}
    return (script.filename or "", getattr(script, "priority", 500), tuple(sorted(attributes.items())))


def dedupe_scripts(scripts: list) -> list:
    """The scripts in order, each identical one kept once (the first)."""
    seen, kept = set(), []
    for script in scripts:
        key = script_key(script)
        if key not in seen:
            seen.add(key)
            kept.append(script)
    return kept


def _on_page_context(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    scripts = context.get("script_files")
    if scripts:
        scripts[:] = dedupe_scripts(scripts)  # in place: Sphinx restores its own list after the page


def setup(app) -> dict[str, Any]:
    app.connect("html-page-context", _on_page_context, priority=900)  # after other extensions add theirs
    return {"parallel_read_safe": True, "parallel_write_safe": True}
