import nbformat
import pytest
from nbclient import NotebookClient
from tqdm.std import tqdm as text_tqdm

from ddsa_core.runtime import progress

WIDGET = "application/vnd.jupyter.widget-view+json"


def test_text_style_gives_tqdms_text_bar(monkeypatch):
    monkeypatch.setenv("DDSA_PROGRESS", "text")
    bar = progress(range(3), disable=True)
    assert type(bar) is text_tqdm


def test_unknown_style_is_rejected_by_name(monkeypatch):
    monkeypatch.setenv("DDSA_PROGRESS", "widget")
    with pytest.raises(ValueError, match="DDSA_PROGRESS must be one of .*'widget'"):
        progress(range(3))


@pytest.mark.parametrize("style, widgets", [("auto", True), ("text", False)])
def test_an_executed_notebook_holds_a_widget_view_only_in_auto_style(monkeypatch, style, widgets):
    # Why the book build sets DDSA_PROGRESS=text: with ipywidgets installed, tqdm.auto executes into a
    # widget view, which the HTML can only draw by loading a widget manager from a CDN.
    monkeypatch.setenv("DDSA_PROGRESS", style)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from ddsa_core.runtime import progress\nfor _ in progress(range(3)): pass")])
    NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    mimes = {m for out in nb.cells[0].outputs for m in out.get("data", {})}
    assert (WIDGET in mimes) is widgets
