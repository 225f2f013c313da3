"""What the chapters read from the committed records: tables, frames and numbers, or the admonition of a missing record."""
import pytest

from ddsa_core import experiments, records, results, tables

def test_tables_say_pending_when_absent(tmp_path, monkeypatch):
    monkeypatch.setenv("DDSA_RESULTS", str(tmp_path))
    assert records.table_of(tables.baselines_table, "mnist", "baselines").startswith("pending")
    assert records.adaptive_accuracy_table("mnist").startswith("pending")
    assert records.adaptive_frames("mnist") is None and records.rows("mnist", "pgd_iterations") is None
    assert records.gray_box_tables("mnist", records.document("mnist", "gray_box")).startswith("pending")
    assert records.history("mnist", "gray_box", "defense") is None
    assert records.magnet_detector_aware("mnist") == "pending"
    assert records.magnet_detector_aware("cifar10").startswith("not run")
    absent = records.table_of(tables.seed_table, "mnist", "seeds")  # a notebook shows one admonition: the record's path and its command
    html = absent._repr_html_()
    assert isinstance(absent, records.Missing) and 'class="admonition warning"' in html
    assert "results/paper/mnist/seeds.json" in html and "--profile paper --dataset mnist --stages seeds" in html


def test_plateau_finds_where_a_validation_curve_levels_off():
    history = [{"epoch": e + 1, "acc": a} for e, a in enumerate((0.5, 0.8, 0.90, 0.95, 0.96, 0.955, 0.958))]
    flat = tables.plateau(history, "acc", within=0.01)
    assert flat["best"] == 0.96 and flat["best_epoch"] == 5 and flat["first_within"] == 4
    assert flat["tail_epochs"] == 2 and (flat["tail_min"], flat["tail_max"]) == (0.955, 0.958)


def test_recorded_gradient_masking_numbers_have_every_attack_and_variant():
    from ddsa_core import experiments, records

    rec = records.gradient_diagnostics("mnist")
    numbers = records.gradient_masking_numbers(rec)
    for variant in experiments.GRADIENT_VARIANTS:
        for attack in experiments.LINF_ATTACKS:
            assert 0 <= numbers[f"{attack}_{variant}"] <= 1 and numbers[f"{attack}_{variant}_s"] > 0
    assert numbers["margin"] == rec["masking"]["saturation"]["median_top2_margin"]
    assert numbers["device"] == rec["device"]


def test_detector_aware_table_reads_only_the_detector_aware_rows():
    import pandas as pd

    from ddsa_core import tables

    battery = pd.DataFrame([{"defense": "MagNet", "attack": a, "eps": 0.3, "images": 10, "accuracy": acc}
                            for a, acc in (("pgd", 1.0), ("detector-aware", 0.4), ("worst case", 0.4))])
    table = tables.detector_aware_table(battery, steps=100, restarts=10)
    assert table.to_dict("records") == [{"eps": 0.3, "steps": 100, "restarts": 10, "images": 10, "accuracy": 0.4}]
    assert list(table.index) == ["MagNet, detectors in the loop"]
    none = tables.detector_aware_table(battery[battery.attack != "detector-aware"], steps=100, restarts=10)
    assert none == tables.MAGNET_MNIST_ONLY


def _seed_run(clean: tuple[float, ...]) -> dict:
    rows = [{"seed": s, "cell": cell, "defense": d, "accuracy": a if cell == "clean" else 0.5}
            for s, a in enumerate(clean) for d in ("DDSA", "DDA")
            for cell in ("clean", "gray-box PGD", "white-box PGD", "adaptive PGD")]
    return {"rows": rows, "seeds": list(range(len(clean)))}


def test_a_seed_whose_denoiser_did_not_train_is_named():
    run = _seed_run((0.98, 0.134, 0.97))
    assert tables.failed_seeds(run).to_dict() == {1: 0.134}
    assert tables.failed_seeds(_seed_run((0.98, 0.97, 0.97))).empty
    table = tables.seed_table(run)
    assert table.loc[("gray-box PGD", "DDSA"), "mean"] == 0.5 and table.loc[("gray-box PGD", "DDSA"), "std"] == 0.0
    assert table.loc[("clean", "DDSA"), "min"] == 0.134 and table.loc[("clean", "DDSA"), "seeds"] == 3


def test_the_restarted_table_lists_each_denoiser_whose_first_epoch_was_rerun():
    run = _seed_run((0.98, 0.97, 0.97))
    assert tables.restarted_table(run | {"restarted": []}).empty
    notes = [{"seed": 1, "defense": "DDSA", "collapsed_again": False}, {"seed": 2, "defense": "DDA", "collapsed_again": True}]
    assert tables.restarted_table(run | {"restarted": notes}).to_dict("records") == notes


def test_seeds_run_records_the_denoisers_whose_first_epoch_was_rerun(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import pandas as pd

    from ddsa_core.config import make_config

    monkeypatch.setenv("DDSA_RESULTS", str(tmp_path))
    note = {"collapsed_first_epoch": {"epoch": 1}, "collapsed_again": False}
    monkeypatch.setattr(experiments, "classifier", lambda c: "clf")
    monkeypatch.setattr(experiments, "defended_systems", lambda c, only, clf: {d: (SimpleNamespace(
        meta={"restarted": note if (c.seed, d) == (1, "DDA") else None}), "key") for d in only})
    rows = lambda: [{"defense": d, "accuracy": 0.5, "clean_accuracy": 0.9, "images": 10} for d in experiments.SEED_DEFENSES]
    monkeypatch.setattr(experiments.threat_models, "gray_box", lambda c, clf, systems, attacks: rows())
    monkeypatch.setattr(experiments.threat_models, "white_box", lambda c, systems, attacks: rows())
    monkeypatch.setattr(experiments.adaptive, "battery", lambda c, systems, attacks: pd.DataFrame(
        [{"defense": d, "attack": "pgd", "accuracy": 0.4, "images": 5} for d in experiments.SEED_DEFENSES]))
    run = experiments.seeds_run(make_config("quick", "mnist"), seeds=(0, 1))
    assert run["restarted"] == [{"seed": 1, "defense": "DDA", "collapsed_again": False}]
    assert tables.restarted_table(run).to_dict("records") == [{"seed": 1, "defense": "DDA", "collapsed_again": False}]
    assert results.load_record("quick", "mnist", "seeds")["results"]["restarted"] == run["restarted"]


def test_the_recorded_seeds_table_is_missing_until_recorded(tmp_path, monkeypatch):
    import torch

    from ddsa_core.config import make_config

    monkeypatch.setenv("DDSA_RESULTS", str(tmp_path))
    assert records.table_of(tables.seed_table, "mnist", "seeds").startswith("pending") and "--stages seeds" in records.table_of(tables.seed_table, "mnist", "seeds")
    run = _seed_run((0.98, 0.134, 0.97)) | {"images": {"paper PGD": 10_000, "adaptive PGD": 1_000}}
    results.record("seeds", make_config("paper", "mnist"), run, {"this_run": 240.0}, torch.device("cpu"))
    assert records.table_of(tables.seed_table, "mnist", "seeds").loc[("clean", "DDSA"), "seeds"] == 3


def test_a_seeds_run_without_seeds_fails_before_any_compute():
    from ddsa_core.config import make_config

    with pytest.raises(ValueError, match="seeds must name at least one seed"):
        experiments.seeds_run(make_config("quick", "mnist"), seeds=())


def test_the_landing_page_reads_recorded_keys_only():
    """The landing page quotes the records; the live numbers of a build stay in its chapters' "your rerun" sections."""
    import re
    from pathlib import Path

    intro = (Path(__file__).resolve().parents[1] / "book" / "intro.md").read_text()
    keys = set(re.findall(r"\.ipynb::(\w+?):", intro))
    assert keys and all(re.match(r"(rec|r|t7|pap)_", key) for key in keys), keys


def test_reduced_run_lists_its_deviations_and_keeps_its_keys_when_pending(tmp_path, monkeypatch):
    import json

    from ddsa_core.config import make_config

    monkeypatch.setenv("DDSA_RESULTS", str(tmp_path))
    assert records.table8_numbers("cifar10") == {}
    assert "--profile reduced --dataset cifar10" in records.reduced_tables("cifar10")
    cfg = make_config("reduced", "cifar10")
    rows = [{"attack": a, "defense": d, "accuracy": 0.5, "clean_accuracy": 0.6, "images": 1000}
            for a in ("fgsm", "rfgsm", "cw", "mim", "pgd") for d in ("No defense", "DDSA", "DDA")]
    for name, res, wall in (("classifier", {"test_accuracy": 0.7, "test_size": 1000}, {"train": 60.0, "this_run": 1.0}),
                            ("attacks_no_defense", {"rows": [r | {"mean_l2": 0.2 * 3072 ** 0.5} for r in rows]},
                             {"this_run": 10.0, "craft_pgd": 120.0}),  # reloaded: its sets' crafting counts
                            ("gray_box", {"rows": rows, "history": {"ddsa": [{"val_mse_pgd": 0.04}, {"val_mse_pgd": 0.01}]}},
                             {"train_dda": 500.0, "train_ddsa": 600.0, "this_run": 1200.0}),
                            ("denoised_examples", {}, {"this_run": 60.0})):
        path = tmp_path / "reduced" / "cifar10" / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"dataset": "cifar10", "config": cfg.to_dict(), "wall_s": wall, "results": res,
                                    "provenance": {"device": "cpu", "commit": "abcdef0", "date": "2026-11-25"}}))
    n = records.table8_numbers("cifar10")
    assert (n["clean"], n["clean_images"]) == (0.7, 1000)
    assert n["minutes"] == pytest.approx(24.0)  # 60 s of training, not the reload's 1 s, + 120 s (not 10) + 1,200 s + 60 s
    assert n["steps"] == -(-cfg.ae_train_size // cfg.ae_batch_size) * cfg.ae_epochs
    assert n["paper_steps"] == 5880  # ceil(50,000 / 256) x 30
    assert n["pairs"] == cfg.ae_train_size
    assert (n["pgd_rms"], n["ddsa_rms"]) == pytest.approx((0.2, 0.1))  # the last epoch's MSE
    assert n["pairs_s"] == pytest.approx(cfg.ae_train_size * cfg.ae_epochs / 500)
    assert (n["ddsa_pgd"], n["ddsa_clean"], n["gap_low"], n["gap_high"]) == pytest.approx((0.5, 0.6, -10, -10))
    table, dev = records.reduced_tables("cifar10")
    assert table.loc["pgd", ("DDSA", "ours")] == 0.5 and table.loc["pgd", ("DDSA", "paper")] == 0.611
    assert (dev.loc["clf_epochs", "paper profile"], dev.loc["clf_epochs", "this run"]) == ("64", str(cfg.clf_epochs))
    assert dev.loc["ae_train_size", "paper profile"] == "all"  # None reads as "all", not "None"
    assert set(dev.index) == {k for k, v in cfg.to_dict().items()
                              if k not in ("profile", "device") and v != getattr(make_config("paper", "cifar10"), k)}


def test_table8_numbers_read_the_paper_profiles_record(tmp_path, monkeypatch):
    """The paper-profile CIFAR-10 record (a GPU's): its denoisers learn from every training image."""
    import json

    from ddsa_core.config import make_config

    monkeypatch.setenv("DDSA_RESULTS", str(tmp_path))
    cfg = make_config("paper", "cifar10")
    rows = [{"attack": a, "defense": d, "accuracy": 0.2, "clean_accuracy": 0.25, "images": n}
            for a, n in (("pgd", 10_000), ("cw", 1_000)) for d in ("No defense", "DDSA", "DDA")]
    docs = {"classifier": {"test_accuracy": 0.485, "test_size": 10_000},
            "attacks_no_defense": {"rows": [r | {"mean_l2": 0.1 * 3072 ** 0.5} for r in rows]},
            "gray_box": {"rows": rows, "history": {"ddsa": [{"val_mse_pgd": 0.0081}]}}, "denoised_examples": {}}
    for name, res in docs.items():
        path = tmp_path / "paper" / "cifar10" / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"dataset": "cifar10", "config": cfg.to_dict(), "results": res,
                                    "wall_s": {"train": 300.0, "train_dda": 150.0, "this_run": 60.0},
                                    "provenance": {"device": "NVIDIA H100", "commit": "abcdef0", "date": "2026-11-25"}}))
    n = records.table8_numbers("cifar10", "paper")
    assert (n["clean"], n["clean_images"]) == (0.485, 10_000)
    assert n["pairs"] == 50_000 and n["steps"] == n["paper_steps"] == 5880
    assert n["pairs_s"] == pytest.approx(10_000)  # 50,000 pairs x 30 epochs / 150 s
    assert (n["cw_images"], n["val_images"]) == (1_000, 2_000)
    assert n["paper_hours"] == pytest.approx(150 / 3600)
    with pytest.raises(ValueError, match="profile must be one of"):
        records.table8_numbers("cifar10", "quick")
    assert (n["pgd_rms"], n["ddsa_rms"]) == pytest.approx((0.1, 0.09))


def test_training_summary_reads_the_test_curve_where_there_is_no_validation_split():
    """CIFAR-10's classifier is monitored on test images (``test_acc``): its best epoch and its loss drift."""
    history = [{"epoch": e + 1, "loss": loss, "test_acc": acc}
               for e, (loss, acc) in enumerate(((1.5, 0.5), (0.8, 0.7), (1.1, 0.6), (1.2, 0.48)))]
    summary = tables.training_summary(history, last_epochs=2)
    assert summary == pytest.approx({"metric": "test_acc", "peak": 0.7, "peak_epoch": 2, "tail_low": 0.48, "tail_high": 0.6,
                                     "tail_mean": 0.54, "low_loss": 0.8, "low_loss_epoch": 2, "last_loss": 1.2, "last_epoch": 4})
    assert tables.training_summary([{"epoch": 1, "loss": 1.0, "val_acc": 0.9, "test_acc": 0.1}])["metric"] == "val_acc"


def test_flagged_curves_give_their_largest_rise_in_images():
    import pandas as pd

    curve = lambda defense, vals: pd.DataFrame({"defense": defense, "steps": [10, 20, 50], "accuracy": vals, "images": 200})
    flag = lambda check, defense, passed=False: {"check": check, "defense": defense, "passed": passed, "detail": ""}
    rec = {"checks": pd.DataFrame([flag("doubling iterations does not raise accuracy", "DDSA"),
                                   flag("chance level by eps 0.5", "MagNet"),
                                   flag("accuracy falls as eps grows", "DDA", passed=True)]),
           "steps": pd.concat([curve("DDSA", [0.10, 0.05, 0.08]), curve("MagNet", [0.9, 0.6, 0.5])]),
           "restarts": pd.DataFrame({"defense": "MagNet", "restarts": [10, 20], "accuracy": [0.4, 0.35], "images": 200}),
           "unbounded": pd.DataFrame([{"defense": "MagNet", "eps": 1.0, "accuracy": 0.995, "images": 200}]),
           "battery": pd.DataFrame({"defense": ["DDSA", "MagNet"]}), "config": {"dataset": "mnist"}}
    rises = tables.flagged_curve_rises(rec["checks"], rec)
    assert rises.to_dict("records") == [{"defense": "DDSA", "check": "doubling iterations does not raise accuracy",
                                         "rise_images": 6, "images": 200}]  # 0.05 -> 0.08 on 200 images; DDA's passed
    assert tables.flagged_curve_rises(rec["checks"].assign(passed=True), rec).empty


def test_table8_numbers_give_the_denoisers_range_around_the_clean_accuracy_they_leave():
    doc = results.load_record("paper", "cifar10", "gray_box")
    if doc is None:
        pytest.skip("no recorded paper-profile gray-box run of cifar10")
    gaps = [r["accuracy"] - r["clean_accuracy"] for r in doc["results"]["rows"] if r["defense"] != "No defense"]
    n = records.table8_numbers("cifar10", "paper")
    assert min(gaps) < 0 < max(gaps)  # the chapter's "differs ... by -x to +y points"
    assert (n["gap_low"], n["gap_high"]) == pytest.approx((100 * min(gaps), 100 * max(gaps)))


def test_cifar10_costs_come_from_the_records_that_exist(tmp_path, monkeypatch):
    costs = records.cifar10_costs()
    if results.load_record("reduced", "cifar10", "lr_sweep") is None:
        pytest.skip("no recorded reduced-profile learning-rate sweep of cifar10")
    assert costs["lr_cost_cpu_device"] == results.load_record("reduced", "cifar10", "lr_sweep")["provenance"]["device"]
    monkeypatch.setenv("DDSA_RESULTS", str(tmp_path))
    assert records.cifar10_costs() == {}


def test_the_classifier_cost_counts_each_run_of_the_same_weights(tmp_path, monkeypatch):
    """The same reduced classifier trained twice, at 21 and 51 min: the cost gives both and the range
    they imply, not the first alone; cached in the sweep, it gives one."""
    import json

    def write(name, doc):
        path = tmp_path / "reduced" / "cifar10" / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc))

    monkeypatch.setenv("DDSA_RESULTS", str(tmp_path))
    prov = lambda day: {"device": "cpu (x86_64, 2 threads)", "date": f"2026-11-{day}T00:00:00+00:00"}
    write("classifier", {"config": {"clf_lr": 0.001, "clf_epochs": 10}, "provenance": prov(25),
                         "wall_s": {"train": 21 * 60}, "results": {"weights_key": "k1"}})
    sweep = {"provenance": prov(28), "results": {"weights": {"0.001": {"key": "k1", "cached": False, "train_wall_s": 51 * 60},
                                                             "0.0001": {"key": "k2", "cached": False, "train_wall_s": 50 * 60}}}}
    write("lr_sweep", sweep)
    costs = records.cifar10_costs()
    assert (costs["clf_hours_low"], costs["clf_hours_high"]) == pytest.approx((21 * 6.4 / 60, 51 * 6.4 / 60))
    assert (costs["red_clf_runs"], costs["red_clf_minutes_low"], costs["red_clf_minutes_high"]) == (2, 21, 51)
    assert (costs["lr_cost_cpu_low"], costs["lr_cost_cpu_high"]) == pytest.approx((50, 51))
    sweep["results"]["weights"]["0.001"]["cached"] = True  # loaded, not retrained: one run only
    write("lr_sweep", sweep)
    costs = records.cifar10_costs()
    assert costs["red_clf_runs"] == 1 and costs["clf_hours_low"] == costs["clf_hours_high"]


def test_paper_scale_states_the_paper_profile_as_configured():
    from ddsa_core.config import make_config

    cfg, scale = make_config("paper", "mnist"), records.paper_scale("mnist")
    assert scale["clf_epochs"] == cfg.clf_epochs and scale["restarts"] == cfg.adaptive_restarts
    assert (scale["train"], scale["test"], scale["cw"]) == (50_000, 10_000, cfg.cw_size)
    assert records.paper_scale("cifar10")["train"] == 50_000


def test_recorded_on_names_each_device_with_its_runs(tmp_path, monkeypatch):
    import torch

    from ddsa_core.config import make_config

    monkeypatch.setenv("DDSA_RESULTS", str(tmp_path))
    assert records.recorded_on("mnist", ("adaptive", "seeds")) == records.PENDING
    cfg = make_config("paper", "mnist")
    results.record("adaptive", cfg, {}, {"this_run": 60.0}, torch.device("cpu"))
    cpu = results.load_record("paper", "mnist", "adaptive")["provenance"]["device"]
    assert records.recorded_on("mnist", ("adaptive", "seeds")) == cpu  # one device: just its name; seeds not recorded
    doc = results.load_record("paper", "mnist", "adaptive")
    doc["provenance"]["device"] = "NVIDIA H100 80GB HBM3"  # as if another stage ran on a GPU
    results.result_path("paper", "mnist", "sparsity_ablation").write_text(__import__("json").dumps(doc))
    assert records.recorded_on("mnist", ("adaptive", "sparsity_ablation")) == \
        f"{cpu} (adaptive); NVIDIA H100 80GB HBM3 (sparsity_ablation)"


def test_chapters_6_and_7_read_the_recorded_mnist_run_in_every_build():
    """The paper's Tables 6, 7 and 9 and our adaptive run are MNIST's: the recorded sections read them
    whatever ``dataset`` the chapter ran, so their prose (which names MNIST's tables) stays true."""
    import re
    from pathlib import Path

    from ddsa_core.cli import chapter_notebook

    for name in ("06_results", "07_adaptive"):
        nb = chapter_notebook(Path(__file__).resolve().parents[1] / "book" / f"{name}.md")
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        assert 'rec_dataset = "mnist"' in code
        assert not re.search(r"records\.\w+\(dataset\b", code), name  # the build's dataset: CIFAR-10 in a CIFAR-10 build


def test_the_cpu_scale_adaptive_numbers_read_the_run_and_the_clean_accuracy_of_the_same_weights(tmp_path, monkeypatch):
    import json
    import shutil

    monkeypatch.setenv("DDSA_RESULTS", str(tmp_path))
    assert records.cpu_adaptive_table("cifar10") == (f"{records.PENDING}: results/quick/cifar10/adaptive.json "
                                                      "(python -m ddsa_core record --profile quick --dataset cifar10 --stages gray_box adaptive)")
    assert records.cpu_adaptive_numbers("cifar10") is None
    here = tmp_path / "quick" / "cifar10"
    here.mkdir(parents=True)
    for name in ("adaptive", "gray_box"):  # the committed records (.gitignore keeps these two of results/quick)
        shutil.copy(results.REPO_ROOT / f"results/quick/cifar10/{name}.json", here)
    run = json.loads((here / "adaptive.json").read_text())["results"]
    worst = {r["defense"]: r["accuracy"] for r in run["battery"] if r["attack"] == "worst case"}
    gray = json.loads((here / "gray_box.json").read_text())
    clean = {r["defense"]: r["clean_accuracy"] for r in gray["results"]["rows"] if r["attack"] == "pgd"}
    assert len({r["clean_accuracy"] for r in gray["results"]["rows"] if r["defense"] == "DDSA"}) > 1  # C&W's rows differ
    n = records.cpu_adaptive_numbers("cifar10")
    assert n["ddsa_worst"] == worst["DDSA"]
    assert (n["clean_none"], n["clean_ddsa"], n["clean_dda"]) == (clean["No defense"], clean["DDSA"], clean["DDA"])
    gray_pgd = {r["defense"]: r["accuracy"] for r in run["weaker"] if r["threat_model"] == "gray-box"}
    assert n["gain"] == pytest.approx(gray_pgd["DDSA"] - gray_pgd["No defense"])
    assert (n["clean_images"], n["gray_images"], n["images"], n["eps"]) == (100, 100, 50, 0.2)
    checks = run["checks"]
    assert (n["checks_passed"], n["checks"]) == (sum(c["passed"] for c in checks), len(checks))
    assert list(records.cpu_adaptive_table("cifar10").columns) == list(dict.fromkeys(r["defense"] for r in run["battery"]))
    for field, name in (("weights_keys", "ddsa"), ("weights_keys", "dda"), ("classifier_key", None)):
        other = json.loads(json.dumps(gray))  # a gray-box record of other weights is not quoted
        if name:
            other["results"][field][name] = "another model"
        else:
            other["results"][field] = "another model"
        (here / "gray_box.json").write_text(json.dumps(other))
        assert "clean_ddsa" not in records.cpu_adaptive_numbers("cifar10"), field


def test_a_committed_record_that_is_missing_fails_unless_it_is_pending(monkeypatch):
    monkeypatch.delenv("DDSA_RESULTS", raising=False)
    with pytest.raises(FileNotFoundError, match=r"results/paper/mnist/no_such_stage\.json .*PENDING_RECORDS.*--stages no_such_stage"):
        records.document("mnist", "no_such_stage")
    profile, dataset, name = sorted(records.PENDING_RECORDS)[0]
    assert records.document(dataset, name, profile) is None
    assert isinstance(records.table_of(tables.seed_table, dataset, name, profile=profile), records.Missing)


def test_every_pending_record_is_still_missing():
    # a record made since must leave the list, so that the chapter reads it instead of its admonition
    recorded = [key for key in records.PENDING_RECORDS if results.result_path(*key).exists()]
    assert not recorded, f"recorded, so remove them from records.PENDING_RECORDS: {recorded}"


def test_another_results_folder_may_lack_any_record(tmp_path, monkeypatch):
    monkeypatch.setenv("DDSA_RESULTS", str(tmp_path))
    assert records.document("mnist", "classifier") is None
