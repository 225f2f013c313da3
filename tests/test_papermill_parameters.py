"""Chapters run by papermill with the parameters a reader would pass, bad and good.

Each bad run must fail in the chapter's first code cell with the configuration's ValueError,
naming the parameter, and write nothing to the results or the model cache.
"""
import json
import subprocess
from pathlib import Path

import papermill
import pytest

from ddsa_core import config
from ddsa_core.cli import chapter_notebook, chapters

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = chapters()
BAD = {
    "profile": ({"profile": "fast"}, "'profile'"),
    "dataset": ({"dataset": "svhn"}, "'dataset'"),
    "seed": ({"seed": -1}, "'seed'"),
    "device": ({"device": "gpu"}, "'device'"),
    "misspelt name": ({"seeed": 1}, "'seeed' is unknown"),
}


@pytest.fixture()
def isolated(tmp_path, monkeypatch):
    """Empty results and cache folders, inherited by papermill's kernel."""
    for var in ("DDSA_RESULTS", "DDSA_LIVE_RECORDS", "DDSA_CACHE"):
        (tmp_path / var).mkdir()
        monkeypatch.setenv(var, str(tmp_path / var))
    monkeypatch.setenv("DDSA_PROGRESS", "text")
    return tmp_path


def _first_code_cell_after_parameters(nb: dict) -> int:
    tagged = [i for i, c in enumerate(nb["cells"]) if "parameters" in c["metadata"].get("tags", [])][0]
    return next(i for i, c in enumerate(nb["cells"]) if i > tagged and c["cell_type"] == "code"
                and "injected-parameters" not in c["metadata"].get("tags", []))


@pytest.mark.slow
@pytest.mark.parametrize("case", BAD)
@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_a_bad_parameter_fails_in_the_first_cell_and_writes_nothing(chapter, case, isolated):
    params, message = BAD[case]
    out = isolated / "out.ipynb"
    with pytest.raises(papermill.PapermillExecutionError) as err:
        papermill.execute_notebook(chapter_notebook(chapter), str(out), parameters=params, cwd=str(chapter.parent),
                                   progress_bar=False, kernel_name="python3")
    assert err.value.ename == "ValueError" and message in err.value.evalue
    nb = json.loads(out.read_text())
    failed = [i for i, c in enumerate(nb["cells"]) if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert failed == [_first_code_cell_after_parameters(nb)]
    assert not any(any((isolated / var).rglob("*")) for var in ("DDSA_RESULTS", "DDSA_LIVE_RECORDS", "DDSA_CACHE"))


def test_check_parameters_reads_only_papermills_injected_cell():
    good = {"profile": "quick", "dataset": "both", "seed": 0, "device": "auto"}
    config.check_parameters({**good, "In": ["", "# Parameters\nseed = 1\n"], "cfgs": {}})  # a chapter's own names pass
    with pytest.raises(ValueError, match="'sed' is unknown"):
        config.check_parameters({**good, "In": ["", "# Parameters\nsed = 1\n"]})
    with pytest.raises(ValueError, match="'dataset' must be one of"):
        config.check_parameters({**good, "dataset": "svhn"})


def _results_state() -> tuple:
    files = sorted((p.relative_to(ROOT), p.stat().st_mtime_ns, p.stat().st_size) for p in (ROOT / "results").rglob("*"))
    status = subprocess.run(["git", "status", "--porcelain", "--", "results"], cwd=ROOT, capture_output=True, text=True)
    return files, status.stdout


@pytest.mark.slow
def test_a_good_run_carries_its_parameters_into_its_records_and_leaves_results_untouched(isolated, monkeypatch):
    """A reader's run: another dataset and seed, at the smoke scale. It reads the committed records and
    writes its own under DDSA_LIVE_RECORDS, never under results/."""
    monkeypatch.delenv("DDSA_RESULTS")  # the repository's results/, as a reader has it
    chapter = ROOT / "book" / "02_classifiers.md"
    before = _results_state()
    papermill.execute_notebook(chapter_notebook(chapter), str(isolated / "out.ipynb"), cwd=str(chapter.parent), progress_bar=False,
                               parameters={"profile": "smoke", "dataset": "cifar10", "seed": 1}, kernel_name="python3")
    assert _results_state() == before
    doc = json.loads((isolated / "DDSA_LIVE_RECORDS" / "smoke" / "cifar10" / "classifier.json").read_text())
    assert (doc["profile"], doc["dataset"], doc["seed"]) == ("smoke", "cifar10", 1)
    assert not (isolated / "DDSA_LIVE_RECORDS" / "smoke" / "mnist").exists()
