"""The papermill-free recorder (``python -m ddsa_core record``) and the recorded paper-profile MNIST run."""
import pandas as pd
import pytest

from ddsa_core import cli, experiments, records, results, tables
from ddsa_core.config import make_config


def test_bad_stage_names_fail_before_any_compute(capsys):
    assert cli.main(["record", "--stages", "classifier", "tabel7"]) == 2
    assert "['tabel7'] unknown for dataset 'mnist'; allowed:" in capsys.readouterr().err
    assert cli.main(["record", "--dataset", "cifar10", "--stages", "baselines"]) == 2  # MagNet is MNIST only
    assert "['baselines'] unknown for dataset 'cifar10'" in capsys.readouterr().err
    assert experiments.stages_for("mnist") == [s for s in experiments.STAGES if s != "lr_sweep"] and "seeds" in experiments.STAGES  # issue 7's paper seeds
    assert "lr_sweep" in experiments.stages_for("cifar10") and "lr_sweep" not in experiments.stages_for("mnist")
    assert "baselines" not in experiments.stages_for("cifar10") and "gray_box" in experiments.stages_for("cifar10")


def test_the_reduced_stages_are_recordable_stages_in_dependency_order():
    cifar = experiments.stages_for("cifar10")  # chapter 4's reduced section names the command that records them
    assert [s for s in cifar if s in records.TABLE8_STAGES] == list(records.TABLE8_STAGES)


def test_a_failing_stage_is_reported_and_later_stages_still_run(monkeypatch, tmp_path):
    monkeypatch.setenv("DDSA_RESULTS", str(tmp_path))
    ran = []

    def broken(cfg):
        raise RuntimeError("boom")

    monkeypatch.setattr(experiments, "STAGES", {"a": broken, "b": lambda cfg: ran.append("b")})
    rows = cli.record_stages(make_config("quick", "mnist"), ["a", "b"])
    assert [r["status"] for r in rows] == ["failed", "recorded"] and ran == ["b"]


def test_recorded_stages_are_skipped_and_the_budget_stops_new_ones(monkeypatch, tmp_path):
    monkeypatch.setenv("DDSA_RESULTS", str(tmp_path))
    cfg = make_config("quick", "mnist")
    stage = lambda cfg: results.record("a", cfg, {}, {"this_run": 0.0}, __import__("torch").device("cpu"))
    monkeypatch.setattr(experiments, "STAGES", {"a": stage, "b": stage})
    assert [r["status"] for r in cli.record_stages(cfg, ["a"])] == ["recorded"]
    assert [r["status"] for r in cli.record_stages(cfg, ["a", "b"], budget_s=-1)] == ["recorded before", "not started (budget)"]
    assert cli.record_stages(cfg.replace(eps=0.2), ["a"])[0]["status"] == "recorded"  # another config is another run


def test_a_dry_run_lists_what_would_run_and_runs_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("DDSA_RESULTS", str(tmp_path))
    cfg = make_config("quick", "mnist")
    calls = []
    monkeypatch.setattr(experiments, "STAGES", {"a": calls.append, "b": calls.append})
    results.record("a", cfg, {}, {"this_run": 0.0}, __import__("torch").device("cpu"))
    assert [r["status"] for r in cli.record_stages(cfg, ["a", "b"], dry_run=True)] == ["recorded before", "would run"]
    assert calls == [] and [p.name for p in tmp_path.rglob("*.json")] == ["a.json"]


@pytest.fixture(scope="module")
def recorded_adaptive():
    frames = records.adaptive_frames("mnist")
    if frames is None:
        pytest.skip("no recorded paper-profile adaptive run")
    return frames


def test_recorded_worst_case_is_never_above_any_attack(recorded_adaptive):
    battery = recorded_adaptive["battery"]
    worst = battery[battery.attack == "worst case"].set_index("defense").accuracy
    others = battery[battery.attack != "worst case"]
    assert (others.apply(lambda r: worst[r.defense] <= r.accuracy + 1e-9, axis=1)).all()
    broken = {(r.defense, r.attack): set(r.broken) for r in battery.itertuples()}
    for defense in worst.index:  # the worst case breaks exactly the union of what the attacks break
        union = set().union(*(b for (d, a), b in broken.items() if d == defense and a not in ("worst case", "autoattack")))
        assert broken[(defense, "worst case")] == union


def test_the_verdict_names_every_attack_tied_at_the_lowest_accuracy():
    battery = pd.DataFrame({"defense": ["D"] * 4, "attack": ["pgd", "square", "apgd-t", "worst case"],
                            "accuracy": [0.0, 0.2, 0.0, 0.0], "images": [10] * 4})
    weaker = pd.DataFrame({"defense": ["D"], "threat_model": ["gray-box"], "accuracy": [0.9], "images": [20]})
    assert tables.verdict(battery.replace({"D": "DDSA"}), weaker.replace({"D": "DDSA"}))["ddsa_breaker"] == ("pgd", "apgd-t")
    tied = pd.DataFrame({"defense": ["DDSA"] * 6, "attack": ["pgd", "square", "apgd-t", "apgd-ce", "fab-t", "worst case"],
                         "accuracy": [0.0] * 6, "images": [10] * 6})  # five at the lowest: every one named
    assert tables.verdict(tied, weaker.replace({"D": "DDSA"}))["ddsa_breaker"] == ("pgd", "square", "apgd-t", "apgd-ce", "fab-t")


def test_the_verdict_gives_the_defenses_the_battery_attacked():
    battery = pd.DataFrame({"defense": ["DDSA"] * 2, "attack": ["pgd", "worst case"], "accuracy": [0.0, 0.0], "images": [10] * 2})
    weaker = pd.DataFrame({"defense": ["DDSA"], "threat_model": ["gray-box"], "accuracy": [0.9], "images": [20]})
    out = tables.verdict(battery, weaker)
    assert "magnet_worst" not in out and (out["ddsa_worst"], out["ddsa_gray_pgd"]) == (0.0, 0.9)
    assert (out["images"], out["gray_images"]) == (10, 20)  # the battery's and the gray-box rows' own counts


def test_the_verdict_category_follows_the_adaptive_and_gray_box_numbers():
    battery = lambda w: pd.DataFrame({"defense": ["DDSA"] * 2, "attack": ["pgd", "worst case"], "accuracy": [w, w], "images": [10] * 2})
    weaker = lambda g: pd.DataFrame({"defense": ["DDSA"], "threat_model": ["gray-box"], "accuracy": [g], "images": [20]})
    category = lambda w, g: tables.verdict(battery(w), weaker(g))["category"]
    assert category(0.0, 0.9) == "gray-box only"
    assert category(0.0, 0.16) == category(0.2, 0.2) == "no robustness"  # near chance: at most 2 x 10 %
    assert category(0.5, 0.9) == "overstated" and category(0.85, 0.9) == "holds"
    assert {category(w, g) for w in (0, 0.3, 0.9) for g in (0, 0.5, 0.95)} == set(tables.VERDICT_CATEGORIES)

def test_seed_table_gives_mean_and_sample_std_per_cell():
    rows = [{"seed": s, "cell": "gray-box PGD", "defense": "DDSA", "accuracy": a} for s, a in enumerate((0.1, 0.2, 0.3))]
    table = tables.seed_table({"rows": rows, "seeds": [0, 1, 2]})
    got = table.loc[("gray-box PGD", "DDSA")]
    assert got["mean"] == pytest.approx(0.2) and got["std"] == pytest.approx(0.1) and got["seeds"] == 3


def test_defended_systems_builds_only_what_is_asked(monkeypatch):
    from ddsa_core import baselines, experiments

    def refuse(*args, **kwargs):
        raise AssertionError("trained a defense that was not asked for")

    monkeypatch.setattr(baselines, "magnet", refuse)
    monkeypatch.setattr(baselines, "adversarial_training", refuse)
    cfg = make_config("quick", "mnist", device="cpu")
    assert list(experiments.defended_systems(cfg, only=("No defense",))) == ["No defense"]
    with pytest.raises(ValueError, match=r"\['Magnet'\] unknown for mnist; allowed"):
        experiments.defended_systems(cfg, only=("Magnet",))


def test_a_cpu_record_names_the_cpu_model(tmp_path, monkeypatch):
    """Two CPUs of one architecture ran the same 10 CIFAR-10 epochs in 21 and 51 minutes: a recorded
    wall time says which CPU it came from, read from /proc/cpuinfo (or ``platform.processor``)."""
    import platform

    import torch
    from ddsa_core import runtime

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC  7B13 64-Core Processor\n")
    assert runtime.cpu_model(str(info)) == "AMD EPYC 7B13 64-Core Processor"
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(platform, "processor", lambda: "aarch64")  # what Linux gives on many ARM machines
    assert runtime.cpu_model(str(tmp_path / "missing")) == ""
    monkeypatch.setattr(platform, "processor", lambda: "Neoverse-V2")
    assert runtime.cpu_model(str(tmp_path / "also-missing")) == "Neoverse-V2"  # cached per path
    monkeypatch.setattr(runtime, "cpu_model", lambda: "Neoverse-V2")
    threads = torch.get_num_threads()
    assert runtime.device_name(torch.device("cpu")) == f"cpu (Neoverse-V2, aarch64, {threads} threads)"
    monkeypatch.setattr(runtime, "cpu_model", lambda: "")
    assert runtime.device_name(torch.device("cpu")) == f"cpu (aarch64, {threads} threads)"


def test_only_the_record_command_writes_results(monkeypatch, tmp_path):
    monkeypatch.delenv("DDSA_RESULTS", raising=False)
    monkeypatch.setenv("DDSA_LIVE_RECORDS", str(tmp_path / "live"))
    monkeypatch.setattr(results, "REPO_ROOT", tmp_path)  # results/ of a throwaway tree
    monkeypatch.setattr(results, "results_root", lambda: tmp_path / "results")
    cfg = make_config("quick", "mnist")
    write = lambda cfg: results.record("a", cfg, {}, {"this_run": 0.0}, __import__("torch").device("cpu"))
    write(cfg)  # as a chapter cell calls a stage
    assert (tmp_path / "live/quick/mnist/a.json").exists() and not (tmp_path / "results").exists()
    monkeypatch.setattr(experiments, "STAGES", {"a": write})
    assert cli.record_stages(cfg, ["a"])[0]["status"] == "recorded"
    assert (tmp_path / "results/quick/mnist/a.json").exists()
