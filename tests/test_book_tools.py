"""The book's build helpers: papermill's injected cell is removed from the HTML."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from jb_papermill import tag_injected_cells  # noqa: E402


def test_injected_parameters_cell_gets_remove_cell():
    nb = {"cells": [
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "profile = 'quick'"},
        {"cell_type": "code", "metadata": {"tags": ["injected-parameters"]}, "source": "profile = 'paper'"},
    ]}
    out = json.loads(tag_injected_cells(json.dumps(nb)))
    assert out["cells"][0]["metadata"]["tags"] == ["parameters"]
    assert out["cells"][1]["metadata"]["tags"] == ["injected-parameters", "remove-cell"]


def test_other_text_is_left_alone():
    assert tag_injected_cells("# a markdown page") == "# a markdown page"
    plain = json.dumps({"cells": [{"cell_type": "markdown", "metadata": {}, "source": "x"}]})
    assert tag_injected_cells(plain) == plain
