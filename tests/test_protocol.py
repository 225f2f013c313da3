"""The classifier recipes of the paper's code lineage: Keras' loss, the dropout reading, the checkpoint rule."""
import json
import math

import pytest
import torch
import torch.nn.functional as F

from ddsa_core import protocol, training
from ddsa_core.config import make_config
from ddsa_core.models import build_classifier


def test_keras_loss_matches_keras_forward_value():
    # Keras 2.2.4: output /= sum(output); clip to [1e-7, 1 - 1e-7]; -sum(target * log(output)), batch mean
    logits = torch.tensor([[2.0, 1.0, 0.1], [0.0, 30.0, 0.0], [-40.0, 0.0, 0.0]])
    y = torch.tensor([0, 1, 0])
    p = torch.softmax(logits, 1).numpy().astype("float64")
    p = (p / p.sum(1, keepdims=True)).clip(1e-7, 1 - 1e-7)
    expected = -sum(math.log(p[i, y[i]]) for i in range(3)) / 3
    assert training.keras_cross_entropy(logits, y).item() == pytest.approx(expected, rel=1e-5)


def test_keras_loss_gradient_is_zero_for_confident_images_and_softmax_ce_otherwise():
    logits = torch.tensor([[2.0, 1.0, 0.1], [0.0, 30.0, 0.0]], requires_grad=True)
    y = torch.tensor([0, 1])
    grad, = torch.autograd.grad(training.keras_cross_entropy(logits, y), logits)
    assert torch.all(grad[1] == 0)  # p_y rounds to 1 > 1 - 1e-7: clipped, no gradient
    ref = logits.detach()[:1].clone().requires_grad_(True)
    ref_grad, = torch.autograd.grad(F.cross_entropy(ref, y[:1]) / 2, ref)  # batch mean over two images
    assert torch.allclose(grad[0], ref_grad[0], atol=1e-6)
    # the logits loss keeps a (tiny) gradient on the confident image, which Adam's scaling amplifies
    g2, = torch.autograd.grad(F.cross_entropy(logits, y), logits)
    assert g2[1].abs().max() > 0


def test_keras_loss_clips_a_misclassified_image_at_minus_log_eps():
    logits, y = torch.tensor([[0.0, 200.0]]), torch.tensor([0])
    assert training.keras_cross_entropy(logits, y).item() == pytest.approx(-math.log(1e-7), rel=1e-5)


def test_dropout_is_the_drop_probability():
    model = build_classifier("mnist", dropout=0.75).train()
    torch.manual_seed(0)
    kept = (model[3](torch.ones(1, 10_000)) != 0).float().mean().item()
    assert kept == pytest.approx(0.25, abs=0.02)


def test_best_epoch_is_the_first_to_reach_the_maximum():
    history = [{"epoch": 1, "val_acc": 0.5}, {"epoch": 2, "val_acc": 0.9}, {"epoch": 3, "val_acc": 0.9},
               {"epoch": 4, "val_acc": 0.8}]
    assert training.best_epoch(history, "val_acc") == 2


def test_each_variant_keeps_its_recorded_key_and_the_paper_profile_is_the_closest():
    root = protocol.results.results_root() / "paper/mnist"
    variants = json.loads((root / "classifier_variants.json").read_text())["results"]
    paper_cfg = make_config("paper", "mnist")
    for row in variants["rows"]:  # a variant is defined against Table 3 read literally, whatever the profile
        assert training.classifier_key(protocol.variant_config(paper_cfg, row["variant"])) == row["weights_key"]
    closest = next(r for r in variants["rows"] if r["variant"] == variants["closest"])
    assert training.classifier_key(paper_cfg) == closest["weights_key"]
    doc = json.loads((root / "classifier.json").read_text())
    assert doc["results"]["weights_key"] == closest["weights_key"]


@pytest.mark.parametrize("field,value", [("clf_loss", "mse"), ("clf_dropout", 1.0), ("clf_checkpoint", "best"),
                                         ("clf_augment", "random_crop")])
def test_bad_recipe_fields_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        make_config("paper", "mnist", **{field: value})


def test_unknown_variant_is_rejected_before_training():
    with pytest.raises(ValueError, match="variant for mnist must be one of"):
        protocol.classifier_variants_run(make_config("smoke", "mnist"), names=("no such variant",))
    # CIFAR-10 has no validation split: a best-epoch rule would select on the test images
    with pytest.raises(ValueError, match="variant for cifar10 must be one of"):
        protocol.classifier_variants_run(make_config("smoke", "cifar10"), names=("best epoch",))


def test_cifar10_variants_change_one_recipe_field_each_and_keep_table_3s_key():
    cfg = make_config("reduced", "cifar10")
    keys = {name: training.classifier_key(protocol.variant_config(cfg, name)) for name in protocol.VARIANTS["cifar10"]}
    assert keys["Table 3"] == training.classifier_key(cfg)  # the recorded reduced classifier's key
    assert len(set(keys.values())) == len(keys)
    assert protocol.variant_config(cfg, "augmentation").clf_augment == "shift_flip"
    assert protocol.results.classifier_recipe(protocol.variant_config(cfg, "Keras loss + augmentation").to_dict()) \
        == "Keras loss + augmentation"


def test_augmentation_changes_what_the_classifier_trains_on(tmp_path, monkeypatch):
    from ddsa_core import cache, data

    data.load("cifar10", "test", 1)  # decoded once into the shared cache; the models train in an empty one
    (tmp_path / "data").symlink_to(cache.artifact_path("data", "x").parent)
    monkeypatch.setenv("DDSA_CACHE", str(tmp_path))
    cfg = make_config("smoke", "cifar10", device="cpu", train_size=64, clf_epochs=1, test_size=32)
    plain = training.classifier(cfg)
    again = training.classifier(cfg.replace(clf_augment="shift_flip"))
    assert not again.cached and again.key != plain.key
    assert not torch.equal(plain.model[0].weight, again.model[0].weight)  # same seed and order, other images


def test_one_run_gives_last_and_best_epoch_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("DDSA_CACHE", str(tmp_path))
    cfg = make_config("smoke", "mnist", device="cpu", train_size=256, clf_epochs=3, test_size=100)
    last = training.classifier(cfg)
    best = training.classifier(cfg.replace(clf_checkpoint="best_val"))
    assert best.cached and best.key != last.key  # no second training run
    kept = best.meta["kept_epoch"]
    assert kept == training.best_epoch(last.history, "val_acc")
    from ddsa_core import data
    from ddsa_core.evaluation import accuracy
    xv, yv = data.load("mnist", "val", 100)
    assert accuracy(best.model, xv, yv) == pytest.approx(last.history[kept - 1]["val_acc"])
    assert not list(tmp_path.rglob("*.ckpt"))  # checkpoints and the kept epoch's file are gone


def test_variant_row_measures_the_paper_numbers(tmp_path, monkeypatch):
    monkeypatch.setenv("DDSA_CACHE", str(tmp_path))
    cfg = make_config("smoke", "mnist", device="cpu", train_size=256, clf_epochs=1, test_size=40, attack_size=40,
                      cw_size=4, cw_max_iter=5)
    row = protocol.variant_row(cfg, "Keras loss")
    assert set(row["no_defense"]) == {"fgsm", "rfgsm", "cw", "mim", "pgd"}
    assert set(row["predicted_labels"]) == set(protocol.PREDICTED_LABEL_ATTACKS)
    assert row["cw_images"] == 4 and len(row["margin_percentiles"]) == 101
    # a lower C&W confidence asks less of the attack, so it can only leave fewer images correct
    assert row["cw_low_confidence"]["accuracy"] <= row["no_defense"]["cw"]
    assert row["paper_distance"] == pytest.approx(protocol.paper_distance(row["test_accuracy"], row["no_defense"], "mnist"))


def test_tables_read_a_record():
    row = {"variant": "best epoch", "kept_epoch": 35, "test_accuracy": 0.99, "median_top2_margin": 50.0,
           "zero_grad_images": 0.1, "paper_distance": 0.2, "margin_percentiles": list(range(101)),
           "no_defense": {"fgsm": 0.5, "rfgsm": 0.4, "cw": 0.0, "mim": 0.3, "pgd": 0.02},
           "predicted_labels": {"fgsm": 0.45, "rfgsm": 0.41}}
    doc = {"results": {"rows": [row], "paper": {"test_accuracy": 0.9896, "no_defense": protocol.paper.GRAY_BOX["mnist"]["no_defense"]}}}
    versus = protocol.variants_versus_paper(doc, ("best epoch",))
    assert versus.loc["FGSM", ("best epoch", "Δ")] == pytest.approx(0.5 - 0.249)
    assert versus.loc["clean", ("paper", "")] == pytest.approx(0.9896)
    assert protocol.variants_frame(doc).loc["best epoch", "epoch kept"] == 35
    assert protocol.predicted_labels_frame(doc).loc[("best epoch", "FGSM"), "predicted labels"] == 0.45
    assert protocol.paper_distance(0.9896, protocol.paper.GRAY_BOX["mnist"]["no_defense"], "mnist") == 0


def test_share_below_reads_the_margin_percentiles():
    doc = {"results": {"rows": [{"variant": "v", "margin_percentiles": [float(i) for i in range(101)]}]}}
    assert protocol.share_below(doc, 25.0) == {"v": 0.25}
