"""Sphinx extension: drop the cell papermill injects from the rendered book.

`papermill -p NAME VALUE` adds a code cell tagged ``injected-parameters`` after the cell tagged
``parameters``. The book only renders notebooks that papermill has already executed
(``execute_notebooks: "off"``), so that cell would show up in every chapter. papermill has no
option to tag the cell it injects, and myst-nb only removes cells tagged ``remove-cell`` (or
``remove-input``/``remove-output``). This extension adds ``remove-cell`` to every cell tagged
``injected-parameters`` while Sphinx reads the notebook (the ``source-read`` event, whose text
myst-nb parses). Nothing on disk is changed: the cell is absent from the rendered HTML and the
search index, while the downloadable ``.ipynb`` (a copy of the executed notebook) keeps it, so a
reader can see which parameters the chapter was run with.

Enabled from ``_config.yml``::

    sphinx:
      local_extensions:
        jb_papermill: tools
"""
from __future__ import annotations

import json
from typing import Any

from sphinx.application import Sphinx

INJECTED_TAG = "injected-parameters"
REMOVE_TAG = "remove-cell"


def tag_injected_cells(notebook_json: str) -> str:
    """Return the notebook text with ``remove-cell`` added to papermill's injected cell(s).

    The text is returned unchanged when it is not a notebook or has no injected cell.
    """
    try:
        nb = json.loads(notebook_json)
    except json.JSONDecodeError:
        return notebook_json
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        return notebook_json
    changed = False
    for cell in nb["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if INJECTED_TAG in tags and REMOVE_TAG not in tags:
            cell.setdefault("metadata", {})["tags"] = [*tags, REMOVE_TAG]
            changed = True
    return json.dumps(nb, ensure_ascii=False) if changed else notebook_json


def _on_source_read(app: Sphinx, docname: str, source: list[str]) -> None:
    if str(app.env.doc2path(docname)).endswith(".ipynb"):
        source[0] = tag_injected_cells(source[0])


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("source-read", _on_source_read)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
