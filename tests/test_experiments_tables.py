import json

import pandas as pd
import pytest
import torch

from ddsa_core import experiments, paper, records, results, tables
from ddsa_core.config import make_config


def test_record_carries_provenance_and_is_loadable(tmp_path, monkeypatch):
    monkeypatch.setenv("DDSA_RESULTS", str(tmp_path))
    cfg = make_config("quick", "mnist")
    results.record("demo", cfg, {"acc": 0.5}, {"train": 1.0}, torch.device("cpu"))
    doc = json.loads((tmp_path / "quick" / "mnist" / "demo.json").read_text())
    assert set(doc["provenance"]) >= {"commit", "device", "date", "torch"}
    assert (doc["profile"], doc["data_source"], doc["seed"], doc["wall_s"]) == ("quick", "mnist", 0, {"train": 1.0})
    assert results.load_record("quick", "mnist", "demo")["results"] == {"acc": 0.5}
    assert results.load_record("paper", "mnist", "demo") is None



def test_provenance_table_lists_each_record_and_only_its_deviations(tmp_path, monkeypatch):
    monkeypatch.setenv("DDSA_RESULTS", str(tmp_path))
    plain = results.record("a", make_config("paper", "mnist"), {}, {"this_run": 120.0}, torch.device("cpu"))
    changed = results.record("b", make_config("paper", "mnist", cw_size=100), {}, {"this_run": 30.0}, torch.device("cpu"))
    table = results.provenance_table([plain, changed])
    assert list(table.index) == ["paper/mnist/a", "paper/mnist/b"]
    assert table["wall time (min)"].tolist() == [2.0, 0.5]
    assert table["deviations"].tolist() == ["", "cw_size=100"]
    assert table["commit"].str.len().eq(7).all()
    assert table["classifier"].tolist() == ["dropout 0.75"] * 2


def test_provenance_of_lists_the_records_that_exist_in_the_order_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("DDSA_RESULTS", str(tmp_path))
    for name in ("b", "a"):
        results.record(name, make_config("paper", "mnist"), {}, {"this_run": 60.0}, torch.device("cpu"))
    table = results.provenance_of(["paper/mnist/a", "paper/mnist/missing", "paper/mnist/b"])
    assert list(table.index) == ["paper/mnist/a", "paper/mnist/b"]


def test_provenance_table_names_the_classifier_of_a_record_older_than_the_recipe_fields(tmp_path, monkeypatch):
    monkeypatch.setenv("DDSA_RESULTS", str(tmp_path))
    old = results.record("a", make_config("paper", "mnist"), {}, {"this_run": 60.0}, torch.device("cpu"))
    for field in ("clf_loss", "clf_dropout", "clf_checkpoint"):  # as written before these fields existed
        del old["config"][field]
    row = results.provenance_table([old]).iloc[0]
    assert (row["classifier"], row["deviations"]) == ("Table 3 literal", "")  # the recipe shows once, as the classifier
    keras = results.record("b", make_config("paper", "mnist", clf_loss="keras_clipped", clf_checkpoint="best_val"),
                           {}, {"this_run": 60.0}, torch.device("cpu"))
    assert results.provenance_table([keras]).iloc[0]["classifier"] == "Keras loss + dropout 0.75 + best epoch"

def test_no_defense_table_puts_ours_beside_the_paper():
    run = {"rows": [{"attack": "fgsm", "accuracy": 0.30, "images": 10}, {"attack": "pgd", "accuracy": 0.0, "images": 10}]}
    table = tables.no_defense_table(run, "mnist")
    assert list(table.index) == ["fgsm", "pgd"]
    assert table.loc["fgsm", ("No defense", "paper")] == paper.GRAY_BOX["mnist"]["no_defense"]["fgsm"]
    assert abs(table.loc["fgsm", ("No defense", "diff")] - (0.30 - 0.249)) < 1e-12
    assert table.loc["pgd", ("", "images")] == 10


def test_recorded_no_defense_says_pending_when_absent(tmp_path, monkeypatch):
    monkeypatch.setenv("DDSA_RESULTS", str(tmp_path))
    from ddsa_core import records

    assert records.table_of(tables.no_defense_table, "cifar10", "attacks_no_defense", "cifar10").startswith("pending")


def test_pgd_iterations_run_attacks_with_each_iteration_count_on_the_adaptive_slice(tmp_path, monkeypatch):
    monkeypatch.setenv("DDSA_CACHE", str(tmp_path))
    cfg = make_config("quick", "mnist", device="cpu", train_size=64, test_size=32, clf_epochs=1, ae_epochs=1,
                      ae_val_size=16, adaptive_size=12)
    frame = experiments.pgd_iterations_run(cfg, iterations=(1, 3))
    assert sorted(frame.nb_iter.unique()) == [1, 3] and set(frame.images) == {12}
    assert set(frame.defense) == {"No defense", "DDSA", "DDA"}
    none = frame[frame.defense == "No defense"].set_index("nb_iter").accuracy
    assert none[3] <= none[1]  # eps 0.3: three steps of 0.01 from the same random start do no worse than one


def test_recorded_denoised_examples_draw_as_the_live_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("DDSA_RESULTS", str(tmp_path))
    torch.manual_seed(0)
    live = {k: torch.rand(3, 3, 32, 32) for k in experiments.EXAMPLE_IMAGES} | {"y": torch.tensor([3, 8, 8])}
    live |= {k: torch.rand(3, 10).max(1) for k in experiments.EXAMPLE_PREDICTIONS}
    monkeypatch.setattr(experiments.defenses, "denoiser", lambda cfg, name: type("T", (), {"model": None}))
    monkeypatch.setattr(experiments, "craft_and_denoise", lambda run, cfg, attack, n: live)
    experiments.denoised_examples_run(make_config("smoke", "cifar10"))
    back = records.denoised_images("cifar10", "smoke")
    assert set(back) == set(live)
    for part in experiments.EXAMPLE_IMAGES:  # 8-bit pixels: within half a level of the float image
        assert back[part].shape == live[part].shape and (back[part] - live[part]).abs().max() <= 0.5 / 255 + 1e-6
    assert torch.equal(back["y"], live["y"])
    for part in experiments.EXAMPLE_PREDICTIONS:
        assert torch.allclose(back[part][0], live[part].values) and torch.equal(back[part][1], live[part].indices)


def test_recorded_epsilon_sweep_reads_back_as_the_live_frame(tmp_path, monkeypatch):
    """Figure 5 recorded as ``epsilon_sweep`` comes back as the frame the live chapter draws."""
    from ddsa_core import experiments, figures, records

    monkeypatch.setenv("DDSA_RESULTS", str(tmp_path))
    live = pd.DataFrame([{"attack": a, "defense": d, "images": 20, "eps": e, "clean_accuracy": 0.9 + (d == "DDSA") / 20,
                          "accuracy": 0.5 - e + (a == "pgd") / 10 + (d == "DDSA") / 5} for a in ("fgsm", "pgd", "mim")
                         for d in ("No defense", "DDSA") for e in (0.1, 0.2)])
    stub = lambda minutes: type("T", (), {"model": None, "key": "k", "train_wall_s": 60.0 * minutes, "cached": True})
    monkeypatch.setattr(experiments.defenses, "denoiser", lambda cfg, name: stub(3))
    monkeypatch.setattr(experiments, "classifier", lambda cfg: stub(2))
    monkeypatch.setattr(experiments, "epsilon_sweep", lambda cfg, model, clf: live)
    assert records.rows("cifar10", "epsilon_sweep") is None  # before the run: pending
    assert records.epsilon_sweep_numbers("cifar10") is None
    experiments.epsilon_sweep_run(make_config("paper", "cifar10", attack_size=20))  # the sweep itself is the stub above
    back = records.rows("cifar10", "epsilon_sweep")
    pd.testing.assert_frame_equal(back, live, check_like=True)  # the record sorts its keys
    figures.accuracy_vs_eps(back)  # draws
    gray_rows = [{**r, "eps": 0.2, "images": 10_000} for r in live[live.eps == 0.2].to_dict("records")]
    results.record("gray_box", make_config("paper", "cifar10"), {"rows": gray_rows}, {}, torch.device("cpu"))
    numbers = records.epsilon_sweep_numbers("cifar10")  # at CIFAR-10's paper eps, 0.2
    assert (numbers["clean"], numbers["ddsa_clean"], numbers["ddsa_pgd"]) == pytest.approx((0.9, 0.95, 0.6))
    assert (numbers["images"], numbers["gb_images"]) == (20, 10_000)
    assert (numbers["train_clf"], numbers["train_ddsa"]) == (2.0, 3.0)
    assert numbers["device"].startswith("cpu")


def test_changed_weights_names_the_models_whose_keys_differ_from_the_gray_box_run():
    from ddsa_core.records import changed_weights

    sweep = lambda device, clf_key: {"provenance": {"device": device},
                                     "results": {"weights": {"classifier": {"key": clf_key}, "ddsa": {"key": "d"}}}}
    gray = {"provenance": {"device": "cuda (H100)"}, "results": {"classifier_key": "c", "weights_keys": {"ddsa": "d"}}}
    assert changed_weights(sweep("cuda (H100)", "c"), gray) == []
    assert changed_weights(sweep("cpu", "c"), gray) == []  # another device: the same models retrained, not other ones
    assert changed_weights(sweep("cpu", "other"), gray) == ["classifier"]


def test_beta_sweep_records_each_rate_on_validation_images_and_names_the_best(tmp_path, monkeypatch):
    """The beta sweep trains one DDSA per rate, judges each on the validation images its training
    watched, and its glue names the best rate against the book's with one measurement's noise."""
    from ddsa_core import experiments, records
    from ddsa_core.models import build_denoiser
    from ddsa_core.training import Trained

    monkeypatch.setenv("DDSA_RESULTS", str(tmp_path))
    final = {0.1: 0.90, 1.0: 0.95, 10.0: 0.97}
    trained = []

    def fake_denoiser(cfg, name):
        trained.append((cfg.sparsity_beta, name))
        history = [{"epoch": e, "loss": 0.1, "val_acc_pgd_graybox": final[cfg.sparsity_beta] - (1 - e) / 10,
                    "val_acc_clean": 0.98, "val_mse_pgd": 0.01} for e in (0, 1)]
        return Trained(build_denoiser("mnist").eval(), history, f"k{cfg.sparsity_beta}", 60.0, cfg.sparsity_beta == 1.0)

    monkeypatch.setattr(experiments.defenses, "denoiser", fake_denoiser)
    assert records.rows("mnist", "beta_sweep", index="beta") is None
    assert records.beta_sweep_numbers("mnist") is None
    experiments.beta_sweep_run(make_config("paper", "mnist", ae_val_size=20))
    assert trained == [(0.1, "ddsa"), (1.0, "ddsa"), (10.0, "ddsa")]
    frame = records.rows("mnist", "beta_sweep", index="beta")
    assert list(frame.index) == [0.1, 1.0, 10.0] and frame.val_acc_pgd_graybox.tolist() == [0.90, 0.95, 0.97]
    assert frame.mu_hat_near_target.eq(0).all()  # an untrained layer's mu_hat is still 0, far from mu
    assert set(records.beta_sweep_history("mnist").beta) == {"0.1", "1", "10"}
    assert set(results.load_record("paper", "mnist", "beta_sweep")["wall_s"]) == {f"train beta {b}" for b in ("0.1", "1", "10")} | {"this_run"}
    bs = records.beta_sweep_numbers("mnist")
    assert (bs["images"], bs["split"], bs["betas"]) == (20, "val", [0.1, 1.0, 10.0])
    assert (bs["book"], bs["rival"], bs["rival_acc"]) == (0.95, 10.0, 0.97)
    assert bs["lead"] == pytest.approx(-2.0) and bs["noise"] == pytest.approx(7.5, abs=0.1)  # 20 images


def test_beta_sweep_rejects_a_bad_rate_before_training_any(monkeypatch):
    import pytest

    monkeypatch.setattr(experiments.defenses, "denoiser", lambda cfg, name: pytest.fail("trained before validating"))
    cfg = make_config("paper", "mnist")
    with pytest.raises(ValueError, match="sparsity_beta"):
        experiments.beta_sweep(cfg, betas=(1.0, -1.0))
    with pytest.raises(ValueError, match="at least one sparsity rate"):
        experiments.beta_sweep(cfg, betas=())
    with pytest.raises(ValueError, match="dataset 'cifar10' has none"):  # it would judge on test images
        experiments.beta_sweep(make_config("paper", "cifar10"))


def test_lr_sweep_records_each_rate_and_sets_table_3s_rate_against_the_others(tmp_path, monkeypatch):
    """The learning-rate sweep trains one classifier per rate, all else equal; its glue sets Table 3's rate
    against the others (loss, test accuracy, one measurement's noise) and says which rates it trained."""
    import pytest
    import torch
    from types import SimpleNamespace

    from ddsa_core import experiments, records
    from ddsa_core.training import Trained

    monkeypatch.setenv("DDSA_RESULTS", str(tmp_path))
    final = {1e-3: (0.80, 0.60), 1e-4: (0.30, 0.75)}  # lr -> (training loss, test accuracy) at the last epoch
    trained = []

    def fake_classifier(cfg):
        trained.append(cfg.clf_lr)
        loss, _ = final[cfg.clf_lr]
        history = [{"epoch": e, "loss": loss + (2 - e) / 10, "test_acc": 0.5} for e in (1, 2)]
        return Trained(SimpleNamespace(lr=cfg.clf_lr), history, f"k{cfg.clf_lr:g}", 60.0, cfg.clf_lr == 1e-4)

    monkeypatch.setattr(experiments, "classifier", fake_classifier)
    monkeypatch.setattr(experiments, "accuracy", lambda model, x, y, batch: final[model.lr][1])
    monkeypatch.setattr(experiments.data, "load", lambda dataset, split, n: (torch.zeros(n, 3, 32, 32), torch.zeros(n, dtype=torch.long)))
    assert records.lr_sweep_doc("cifar10") is None
    assert records.lr_sweep_numbers("cifar10") is None
    cfg = make_config("reduced", "cifar10", test_size=20)
    with pytest.raises(ValueError, match="clf_lr"):  # every rate is validated before any training
        experiments.lr_sweep(cfg, lrs=(1e-3, -1.0))
    with pytest.raises(ValueError, match="at least one learning rate"):
        experiments.lr_sweep(cfg, lrs=())
    assert trained == []
    experiments.lr_sweep_run(cfg)
    assert trained == [1e-3, 1e-4]
    assert records.lr_sweep_doc("cifar10")["profile"] == "reduced"  # no paper-profile sweep recorded: the reduced one
    frame = records.rows("cifar10", "lr_sweep", "reduced", index="lr")
    assert list(frame.index) == [1e-3, 1e-4] and frame.test_accuracy.tolist() == [0.60, 0.75]
    assert frame.min_loss.tolist() == pytest.approx([0.80, 0.30]) and set(records.history("cifar10", "lr_sweep", "lr", "reduced").lr) == {"0.001", "0.0001"}
    assert set(results.load_record("reduced", "cifar10", "lr_sweep")["wall_s"]) == {"train_classifier", "train lr 0.0001", "this_run"}
    lr = records.lr_sweep_numbers("cifar10")
    assert (lr["profile"], lr["epochs"], lr["images"], lr["other"]) == ("reduced", 10, 20, 0.0001)
    assert list(records.lr_deviations(results.load_record("reduced", "cifar10", "lr_sweep")).index) == ["clf_epochs", "test_size"]
    assert (lr["t3_min_loss"], lr["t3_final_loss"], lr["t3_acc"]) == pytest.approx((0.8, 0.8, 0.6))
    assert (lr["other_final_loss"], lr["other_acc"]) == pytest.approx((0.3, 0.75))
    assert lr["gap"] == pytest.approx(15.0) and lr["noise"] == pytest.approx(19.0, abs=0.05)  # 20 images
    assert lr["paper_epochs"] == 0  # no paper-profile classifier recorded here
    paper = [{"epoch": e, "loss": abs(e - 11) / 10 + 0.7, "test_acc": 0.6} for e in range(1, 13)]  # lowest at epoch 11
    results.record("classifier", make_config("paper", "cifar10"), {"history": paper}, {"train": 1.0}, torch.device("cpu"))
    lr = records.lr_sweep_numbers("cifar10")
    assert (lr["paper_low_loss"], lr["paper_low_epoch"], lr["paper_epochs"]) == (pytest.approx(0.7), 11, 12)


def test_profile_settings_state_each_profiles_sizes_as_configured():
    from ddsa_core import tables
    from ddsa_core.config import make_config

    settings, quick = tables.profile_settings(), make_config("quick", "cifar10")
    assert settings["quick_cifar10_clf_batch_size"] == quick.clf_batch_size and settings["quick_mnist_cw_max_iter"] == 100
    assert settings["paper_mnist_train_size"] == 50_000 and settings["paper_cifar10_attack_size"] == 10_000  # None: the whole split
    assert settings["quick_mnist_ae_train_size"] == make_config("quick", "mnist").ae_train_size
    assert len(settings) == 2 * 2 * len(tables.SETTING_FIELDS)
    whole = tables.whole_splits()
    assert {"paper_mnist_train_size", "paper_mnist_test_size", "paper_mnist_attack_size"} <= whole
    assert not {"paper_mnist_cw_size", "quick_mnist_test_size", "quick_mnist_train_size", "paper_mnist_clf_epochs"} & whole

def _magnet_rows():
    return [{"defense": "MagNet", "attack": "fgsm", "accuracy": 1.0, "detected": 0.9, "classified": 0.2},
            {"defense": "DDSA", "attack": "fgsm", "accuracy": 0.8, "detected": None, "classified": None}]


def test_paper_scoring_takes_magnets_reformer_alone_and_other_systems_accuracy():
    frame = pd.DataFrame(_magnet_rows())
    assert tables.paper_score(frame).tolist() == [0.2, 0.8]
    table = tables.versus_paper_table(_magnet_rows(), {"magnet": {"fgsm": 0.094}, "ddsa": {"fgsm": 0.614}})
    assert table.loc[("MagNet", "ours"), "fgsm"] == 0.2 and table.loc[("DDSA", "ours"), "fgsm"] == 0.8
    assert list(table.index) == [("MagNet", "paper"), ("MagNet", "ours"), ("MagNet", "diff"),
                                 ("DDSA", "paper"), ("DDSA", "ours"), ("DDSA", "diff")]
    assert table.loc[("DDSA", "diff"), "fgsm"] == 0.8 - 0.614 and list(table.columns) == ["fgsm"]


def test_magnet_scores_show_both_ways_and_are_empty_without_magnet():
    scores = tables.magnet_scores(_magnet_rows())
    assert scores.loc["fgsm"].tolist() == [0.2, 0.9, 1.0]
    assert tables.magnet_scores(_magnet_rows()[1:]).empty


def test_agreement_table_has_one_column_per_protocol_and_substitute():
    own = [{"defense": d, "attack": a, "substitute_agreement": v} for d, v in (("No defense", 0.8), ("DDSA", 0.7))
           for a in ("fgsm", "pgd")]
    shared = [{"substitute": s, "defense": d, "attack": "fgsm", "substitute_agreement": v}
              for s, d, v in (("MLP (model E)", "No defense", 0.78), ("MLP (model E)", "DDSA", 0.75),
                              ("conv (model B)", "No defense", 0.9), ("conv (model B)", "DDSA", 0.85))]
    table = tables.agreement_table({"black_box": own, "black_box_shared": shared})
    assert list(table.columns) == ["substitute per system", "shared: MLP (model E)", "shared: conv (model B)"]
    assert table.loc["DDSA"].tolist() == [0.7, 0.75, 0.85]
    assert list(tables.agreement_table({"black_box": own}).columns) == ["substitute per system"]  # a record before the shared protocol


def test_shared_substitute_table_stacks_one_paper_table_per_substitute():
    rows = [{"substitute": s, **r} for s in ("MLP (model E)", "conv (model B)") for r in _magnet_rows()]
    table = tables.shared_substitute_table(rows, {"ddsa": {"fgsm": 0.614}})
    assert list(table.index.get_level_values("substitute").unique()) == ["MLP (model E)", "conv (model B)"]
    assert table.loc[("conv (model B)", "DDSA", "paper"), "fgsm"] == 0.614
    assert tables.shared_substitute_table([], {}).empty  # a record before the shared protocol


def test_a_missing_value_renders_as_a_blank_cell_not_nan():
    from ddsa_core import figures

    frame = pd.DataFrame({"No defense": [0.5, float("nan")], "DDSA": [0.9, 0.4]}, index=["pgd", "bpda"])
    html = figures.blank_missing_html(frame)
    assert "NaN" not in html and "<td></td>" in html and "0.4" in html
    figures.set_style()  # outside IPython it only sets the Styler's option
    assert ">nan<" not in frame.style.to_html()


def test_pgd_iterations_end_reads_figure_6s_last_point():
    rows = pd.DataFrame([{"defense": d, "nb_iter": n, "accuracy": acc, "images": 500}
                         for d, curve in (("DDSA", (0.9, 0.85)), ("DDA", (0.8, 0.7))) for n, acc in zip((10, 1000), curve)])
    assert tables.pgd_iterations_end(rows) == {"ddsa": 0.85, "dda": 0.7, "iterations": 1000, "images": 500}
