import torch
from torch import nn

from ddsa_core import attacks, data, threat_models
from ddsa_core.config import make_config
from ddsa_core.evaluation import System, accuracy
from ddsa_core.training import classifier


def test_gray_box_crafts_on_the_classifier_and_evaluates_through_the_defense(tmp_path, monkeypatch):
    monkeypatch.setenv("DDSA_CACHE", str(tmp_path))
    cfg = make_config("quick", "mnist", device="cpu", train_size=256, test_size=64, attack_size=64, clf_epochs=1)
    clf = classifier(cfg)
    blur = nn.AvgPool2d(3, stride=1, padding=1)  # a stand-in defense with no parameters of its own
    systems = {"No defense": System(clf.model, clf.key), "blur": System(nn.Sequential(blur, clf.model), f"blur+{clf.key}")}
    rows = threat_models.gray_box(cfg, clf, systems, ("fgsm",))
    x, y = data.load("mnist", "test", 64)
    x_adv = attacks.build("fgsm", clf.model, "mnist", eps=cfg.eps)(x, y)  # FGSM is deterministic
    by = {r["defense"]: r for r in rows}
    assert by["No defense"]["accuracy"] == accuracy(clf.model, x_adv, y)
    assert by["blur"]["accuracy"] == accuracy(nn.Sequential(blur, clf.model), x_adv, y)
    assert by["blur"]["clean_accuracy"] == accuracy(nn.Sequential(blur, clf.model), x, y)
    swept = threat_models.gray_box(cfg, clf, {"No defense": System(clf.model, clf.key)}, ("fgsm",), eps=0.0)
    assert swept[0]["eps"] == 0.0 and swept[0]["accuracy"] == swept[0]["clean_accuracy"]


def test_white_box_crafts_against_the_whole_defended_system(tmp_path, monkeypatch):
    monkeypatch.setenv("DDSA_CACHE", str(tmp_path))
    cfg = make_config("quick", "mnist", device="cpu", train_size=256, test_size=64, attack_size=64, clf_epochs=1)
    clf = classifier(cfg)
    blurred = nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1), clf.model)  # a stand-in defended system
    systems = {"No defense": System(clf.model, clf.key), "blur": System(blurred, f"blur+{clf.key}")}
    rows = {r["defense"]: r for r in threat_models.white_box(cfg, systems, ("fgsm",))}
    x, y = data.load("mnist", "test", 64)
    through = attacks.build("fgsm", blurred, "mnist", eps=cfg.eps)(x, y)  # gradients through blur and classifier
    assert rows["blur"]["accuracy"] == accuracy(blurred, through, y)
    gray = {r["defense"]: r for r in threat_models.gray_box(cfg, clf, systems, ("fgsm",))}
    assert rows["No defense"]["accuracy"] == gray["No defense"]["accuracy"]  # same attack on the same model
    assert rows["blur"]["accuracy"] != gray["blur"]["accuracy"]  # white-box examples differ from transferred ones


def test_jacobian_augmentation_steps_along_the_sign_of_the_label_logit_gradient():
    torch.manual_seed(0)
    sub = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    x, labels = torch.rand(4, 1, 28, 28) * 0.5 + 0.25, torch.tensor([0, 1, 2, 3])
    up = threat_models.jacobian_augmentation(sub, x, labels, 0.1)
    down = threat_models.jacobian_augmentation(sub, x, labels, -0.1)
    logit = lambda t: sub(t).gather(1, labels.view(-1, 1)).squeeze(1)
    assert (logit(up) > logit(x)).all() and (logit(down) < logit(x)).all()
    assert torch.allclose((up - x).abs(), torch.full_like(x, 0.1), atol=1e-6)  # a full sign step (no clipping here)
    assert threat_models.jacobian_augmentation(sub, torch.ones(1, 1, 28, 28), labels[:1], 0.5).max() <= 1.0


def test_black_box_trains_a_substitute_from_the_holdout_and_attacks_the_rest(tmp_path, monkeypatch):
    monkeypatch.setenv("DDSA_CACHE", str(tmp_path))
    cfg = make_config("quick", "mnist", device="cpu", train_size=1000, test_size=300, attack_size=100, clf_epochs=1,
                      bb_rounds=3, bb_epochs=5)
    clf = classifier(cfg)
    rows = threat_models.black_box(cfg, {"No defense": System(clf.model, clf.key)}, ("fgsm",))
    (row,) = rows
    assert row["images"] == 100 and row["substitute_points"] == 150 * 4  # two augmentations double it twice
    assert row["substitute_agreement"] > 0.5  # far above chance (0.1) after three rounds
    sub = threat_models.substitute(cfg, clf.model, clf.key)
    assert sub.cached and [h["training_points"] for h in sub.history] == [150, 300, 600]
    x, y = data.load("mnist", "test", 250)
    x_adv = attacks.build("fgsm", sub.model, "mnist", eps=cfg.eps)(x[150:], y[150:])  # crafted on the substitute
    assert row["accuracy"] == accuracy(clf.model, x_adv, y[150:])  # ... and evaluated on the target


def test_shared_substitute_keeps_true_seed_labels_and_sends_one_attack_to_every_system(tmp_path, monkeypatch):
    monkeypatch.setenv("DDSA_CACHE", str(tmp_path))
    cfg = make_config("quick", "mnist", device="cpu", train_size=1000, test_size=300, attack_size=100, clf_epochs=1,
                      bb_rounds=2, bb_epochs=3)
    clf = classifier(cfg)
    blurred = nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1), clf.model)
    systems = {"No defense": System(clf.model, clf.key), "blur": System(blurred, f"blur+{clf.key}")}
    rows = threat_models.black_box_shared(cfg, systems, ("fgsm",))
    assert {(r["substitute"], r["defense"]) for r in rows} == {(a, d) for a in threat_models.SHARED_SUBSTITUTES for d in systems}
    assert all(r["substitute_points"] == 300 and r["images"] == 100 for r in rows)
    sub = threat_models.shared_substitute(cfg, clf.model, clf.key, "MLP (model E)")
    assert sub.cached and sub.key != threat_models.substitute(cfg, clf.model, clf.key).key
    x, y = data.load("mnist", "test", 250)
    x, y = x[150:], y[150:]
    guess = sub.model(x).argmax(1)  # the substitute's labels, not the true ones
    x_adv = attacks.build("fgsm", sub.model, "mnist", eps=cfg.eps)(x, guess)
    by = {r["defense"]: r for r in rows if r["substitute"] == "MLP (model E)"}
    assert by["No defense"]["accuracy"] == accuracy(clf.model, x_adv, y)
    assert by["blur"]["accuracy"] == accuracy(blurred, x_adv, y)  # the same examples go to every system


def test_unclipped_augmentation_may_leave_the_image_range():
    sub = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    x, labels = torch.ones(2, 1, 28, 28), torch.tensor([0, 1])
    assert threat_models.jacobian_augmentation(sub, x, labels, 0.5, clip=False).max() > 1.0


def test_model_b_keeps_a_fifth_of_its_inputs_in_training():
    from ddsa_core.models import substitute_model_b
    model = substitute_model_b("mnist")
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    torch.manual_seed(0)
    kept = (model.train()[0](torch.ones(1, 10_000)) != 0).float().mean().item()
    assert abs(kept - 0.2) < 0.02
