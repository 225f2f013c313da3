import torch
from torch import nn

from ddsa_core import attacks, data, threat_models
from ddsa_core.config import make_config
from ddsa_core.evaluation import accuracy
from ddsa_core.training import classifier


def test_gray_box_crafts_on_the_classifier_and_evaluates_through_the_defense(tmp_path, monkeypatch):
    monkeypatch.setenv("DDSA_CACHE", str(tmp_path))
    cfg = make_config("quick", "mnist", device="cpu", train_size=256, test_size=64, attack_size=64, clf_epochs=1)
    clf = classifier(cfg)
    blur = nn.AvgPool2d(3, stride=1, padding=1)  # a stand-in defense with no parameters of its own
    rows = threat_models.gray_box(cfg, clf, {"No defense": nn.Identity(), "blur": blur}, ("fgsm",))
    x, y = data.load("mnist", "test", 64)
    x_adv = attacks.build("fgsm", clf.model, "mnist", eps=cfg.eps)(x, y)  # FGSM is deterministic
    by = {r["defense"]: r for r in rows}
    assert by["No defense"]["accuracy"] == accuracy(clf.model, x_adv, y)
    assert by["blur"]["accuracy"] == accuracy(nn.Sequential(blur, clf.model), x_adv, y)
    assert by["blur"]["clean_accuracy"] == accuracy(nn.Sequential(blur, clf.model), x, y)
    swept = threat_models.gray_box(cfg, clf, {"No defense": nn.Identity()}, ("fgsm",), eps=0.0)
    assert swept[0]["eps"] == 0.0 and swept[0]["accuracy"] == swept[0]["clean_accuracy"]
