"""Every recording stage of CIFAR-10 runs end to end in the ``smoke`` profile.

The book's default build runs CIFAR-10 through chapters 2 and 3 only, and no paper-scale CIFAR-10
run has been recorded yet, so this is what keeps the CIFAR-10 path of chapters 4 to 7 and of
``python -m ddsa_core.record`` from breaking unseen (it found a cache digest that crashed on the
CIFAR-10 denoiser's BatchNorm counter, and MagNet's stage run on CIFAR-10).
"""
from ddsa_core import record, results
from ddsa_core.config import make_config


def test_every_cifar10_stage_records_in_the_smoke_profile(monkeypatch, tmp_path):
    monkeypatch.setenv("DDSA_RESULTS", str(tmp_path))
    cfg = make_config("smoke", "cifar10", device="cpu")
    rows = record.run(cfg, record.stages_for("cifar10"))
    assert {r["stage"]: r["status"] for r in rows} == {s: "recorded" for s in record.stages_for("cifar10")}
    gray = results.load("smoke", "cifar10", "gray_box")
    assert gray["data_source"].startswith("cifar10") and gray["config"]["profile"] == "smoke"
