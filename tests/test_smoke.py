"""Every recording stage of CIFAR-10 runs end to end in the ``smoke`` profile.

The book's default build runs CIFAR-10 through chapters 2 and 3 only, and no paper-scale CIFAR-10
run has been recorded yet, so this is what keeps the CIFAR-10 path of chapters 4 to 7 and of
``python -m ddsa_core record`` from breaking unseen (it found a cache digest that crashed on the
CIFAR-10 denoiser's BatchNorm counter, and MagNet's stage run on CIFAR-10).
"""
from pathlib import Path

import nbformat
import papermill
import pytest

from ddsa_core import cli, experiments, results
from ddsa_core.config import make_config

BOOK = Path(__file__).resolve().parents[1] / "book"
pytestmark = pytest.mark.slow  # each test trains every CIFAR-10 model of the smoke profile, or runs a chapter


def test_every_cifar10_stage_records_in_the_smoke_profile(monkeypatch, tmp_path):
    monkeypatch.setenv("DDSA_RESULTS", str(tmp_path))
    cfg = make_config("smoke", "cifar10", device="cpu")
    rows = cli.record_stages(cfg, experiments.stages_for("cifar10"))
    assert {r["stage"]: r["status"] for r in rows} == {s: "recorded" for s in experiments.stages_for("cifar10")}
    gray = results.load_record("smoke", "cifar10", "gray_box")
    assert gray["data_source"].startswith("cifar10") and gray["config"]["profile"] == "smoke"


@pytest.mark.parametrize("chapter", ["04_ddsa", "06_results", "07_adaptive"])
def test_cifar10_chapters_execute_in_the_smoke_profile(chapter, monkeypatch, tmp_path):
    # The default build runs chapters 4 to 7 on MNIST; this runs them on CIFAR-10, with the committed
    # recorded runs in place so the CIFAR-10 build's reading of MNIST's records is exercised too.
    (tmp_path / "results").mkdir()
    for profile in ("paper", "reduced"):
        if (results.results_root() / profile).is_dir():
            (tmp_path / "results" / profile).symlink_to(results.results_root() / profile)
    monkeypatch.setenv("DDSA_RESULTS", str(tmp_path / "results"))
    out = tmp_path / f"{chapter}.ipynb"
    papermill.execute_notebook(cli.chapter_notebook(BOOK / f"{chapter}.md"), str(out), parameters={"profile": "smoke", "dataset": "cifar10"},
                               cwd=str(BOOK), kernel_name="python3", progress_bar=False)
    glued = {o["metadata"]["scrapbook"]["name"]: o["data"].get("application/papermill.record/text/plain", "")
             for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", []) if "scrapbook" in o.get("metadata", {})}
    assert glued, "the chapter glued nothing"
    if chapter == "04_ddsa":  # the landing page's MNIST row reads MNIST's record in a CIFAR-10 build too
        mnist = results.load_record("paper", "mnist", "gray_box")["results"]["sparsity"]["DDSA"]["mu_hat_near_target"]
        assert float(glued["rec_mnist_near_ddsa"]) == pytest.approx(mnist)
    assert (tmp_path / "results" / "smoke" / "cifar10").is_dir()  # it recorded its CIFAR-10 runs
