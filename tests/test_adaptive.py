import pandas as pd
import pytest
import torch
from torch import nn

from ddsa_core import adaptive, baselines, sanity
from ddsa_core.config import make_config
from ddsa_core.defenses import Defended
from ddsa_core.evaluation import System
from ddsa_core.training import classifier


@pytest.fixture(scope="module")
def quick():
    cfg = make_config("quick", "mnist", device="cpu")
    clf = classifier(cfg)
    return cfg, clf


def test_bpda_runs_the_defense_forward_and_the_identity_backward():
    torch.manual_seed(0)
    defense, clf = nn.Sequential(nn.Flatten(), nn.Linear(4, 4), nn.Tanh(), nn.Unflatten(1, (1, 2, 2))), \
        nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    x = torch.rand(5, 1, 2, 2, requires_grad=True)
    out = adaptive.BPDA(defense, clf)(x)
    assert torch.allclose(out, clf(defense(x)))
    (g_bpda,) = torch.autograd.grad(out[:, 0].sum(), x)
    d = defense(x).detach().requires_grad_(True)
    (g_at_defense,) = torch.autograd.grad(clf(d)[:, 0].sum(), d)  # the classifier's gradient at defense(x)
    assert torch.allclose(g_bpda, g_at_defense)
    (g_true,) = torch.autograd.grad(clf(defense(x))[:, 0].sum(), x)
    assert not torch.allclose(g_bpda, g_true)  # the true gradient goes through the defense's Jacobian


def test_restart_pgd_stays_in_the_ball_and_reports_success_truthfully(quick, mnist_test_batch):
    cfg, clf = quick
    x, y = mnist_test_batch[0][:50], mnist_test_batch[1][:50]
    torch.manual_seed(0)
    attack = adaptive.RestartPGD(clf.model, "mnist", eps=0.1, steps=10, restarts=2)
    x_adv = attack(x, y)
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    wrong = clf.model(x_adv).argmax(1) != y
    assert torch.equal(wrong, attack.last_success)
    assert 0 < wrong.sum() < 50  # eps 0.1, 10 steps: some images hold, some break


def test_more_restarts_never_break_fewer_images(quick, mnist_test_batch):
    cfg, clf = quick
    x, y = mnist_test_batch[0][:50], mnist_test_batch[1][:50]
    broken = []
    for restarts in (1, 3):
        torch.manual_seed(0)
        attack = adaptive.RestartPGD(clf.model, "mnist", eps=0.1, steps=5, restarts=restarts)
        attack(x, y)
        broken.append(attack.last_success)
    assert (broken[1] >= broken[0]).all()  # the first restart draws the same start both times


def test_torchattacks_runs_leave_the_global_rng_alone(quick, mnist_test_batch):
    cfg, clf = quick
    x, y = mnist_test_batch[0][:4], mnist_test_batch[1][:4]
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    adaptive.build_attack("apgd-ce", clf.model, cfg, steps=2)(x, y)  # torchattacks reseeds the global RNG inside
    assert torch.equal(torch.rand(3), expected)


def test_battery_drives_the_undefended_classifier_to_at_most_one_percent(quick):
    cfg, clf = quick
    frame = adaptive.battery(cfg, {"No defense": System(clf.model, clf.key)})
    acc = frame.set_index("attack").accuracy
    assert set(acc.index) == {"pgd", "apgd-ce", "apgd-t", "fab-t", "square", "autoattack", "worst case"}
    assert acc["worst case"] <= 0.01, acc.to_dict()
    assert (acc["worst case"] <= acc).all() and (acc["autoattack"] <= acc[list(adaptive.AUTOATTACK)]).all()


def test_worst_case_is_the_per_image_and_of_every_attack(quick):
    cfg, clf = quick
    blurred = Defended(nn.AvgPool2d(3, stride=1, padding=1), clf.model)  # a purifier: BPDA applies
    frame = adaptive.battery(cfg, {"blur": (blurred, f"blur/{clf.key}")}, ("pgd", "bpda", "square"), n=40, eps=0.1,
                             steps=10, restarts=1)
    flags = frame.set_index("attack").robust
    assert set(flags.index) == {"pgd", "bpda", "square", "worst case"}
    assert torch.equal(flags["worst case"], flags["pgd"] & flags["bpda"] & flags["square"])
    assert (frame.set_index("attack").accuracy["worst case"] <= frame.accuracy).all()


def test_detector_aware_success_means_misclassified_and_undetected(quick, mnist_test_batch):
    cfg, clf = quick
    torch.manual_seed(0)
    ae = nn.Sequential(nn.Flatten(), nn.Linear(784, 784), nn.Sigmoid(), nn.Unflatten(1, (1, 28, 28)))
    magnet = baselines.MagNet(ae, {"detector_l2": ae}, {"detector_l2": 2}, {"detector_l2": 0.08}, clf.model)
    x, y = mnist_test_batch[0][:30], mnist_test_batch[1][:30]
    attack = adaptive.build_attack("detector-aware", magnet, cfg, eps=0.3, steps=10, restarts=1)
    x_adv = attack(x, y)
    ok = (magnet(x_adv).argmax(1) != y) & ~magnet.detect(x_adv)
    assert torch.equal(ok, attack.last_success)
    assert adaptive.build_attack("detector-aware", clf.model, cfg) is None and adaptive.build_attack("bpda", clf.model, cfg) is None


def test_bad_attack_names_fail_before_any_compute(quick):
    cfg, clf = quick
    with pytest.raises(ValueError, match="adaptive attacks \\['pgd-1000'\\] unknown; allowed"):
        adaptive.battery(cfg, {"No defense": System(clf.model, clf.key)}, ("pgd", "pgd-1000"))
    with pytest.raises(ValueError, match="vary must be 'eps', 'steps' or 'restarts'"):
        sanity.curve(cfg, {}, "lr", (0.1,))
    with pytest.raises(ValueError, match="adaptive_restarts"):
        make_config("quick", "mnist", adaptive_restarts=0)


def _frames(eps_acc, steps_acc=(0.5, 0.4), square=0.3, unbounded=0.0, gray=0.6):
    flags = torch.ones(100, dtype=torch.bool)
    battery = pd.DataFrame([{"defense": "D", "attack": a, "accuracy": v, "images": 100, "robust": flags}
                            for a, v in (("pgd", 0.3), ("square", square), ("worst case", min(0.3, square)))])
    eps = pd.DataFrame({"defense": "D", "eps": [0.1, 0.3, 0.5], "accuracy": eps_acc})
    steps = pd.DataFrame({"defense": "D", "steps": [50, 100], "accuracy": steps_acc})
    restarts = pd.DataFrame({"defense": "D", "restarts": [1, 2], "accuracy": [0.3, 0.3]})
    unb = pd.DataFrame({"defense": ["D"], "accuracy": [unbounded]})
    weaker = pd.DataFrame({"defense": ["D"], "threat_model": ["gray-box"], "accuracy": [gray], "images": [500]})
    return sanity.checks(battery, eps, steps, restarts, unb, weaker).set_index("check").passed


def test_sanity_checks_pass_a_sound_evaluation_and_flag_each_failure():
    assert _frames([0.6, 0.3, 0.05]).all()
    assert not _frames([0.6, 0.7, 0.05])["accuracy falls as eps grows"]
    assert not _frames([0.6, 0.3, 0.4])["chance level by eps 0.5"]
    assert not _frames([0.6, 0.3, 0.05], steps_acc=(0.3, 0.5))["doubling iterations does not raise accuracy"]
    assert not _frames([0.6, 0.3, 0.05], square=0.1)["gradient-free (Square) does no better than gradient attacks"]
    assert not _frames([0.6, 0.3, 0.05], unbounded=0.02)["an unbounded attack reaches 100% success"]
    assert not _frames([0.6, 0.3, 0.05], gray=0.1)["white-box no weaker than gray- and black-box"]


def test_a_second_battery_loads_every_adversarial_set(quick, tmp_path, monkeypatch):
    cfg, clf = quick
    monkeypatch.setenv("DDSA_CACHE", str(tmp_path))
    systems = {"blur": System(Defended(nn.AvgPool2d(3, stride=1, padding=1), clf.model), "blur")}
    settings = dict(names=("pgd", "bpda", "apgd-ce"), n=10, eps=0.2, steps=3, restarts=1)
    first = adaptive.battery(cfg, systems, **settings)

    def refuse(*args, **kwargs):
        raise AssertionError("attacked again")

    monkeypatch.setattr(adaptive._Adaptive, "__call__", refuse)
    second = adaptive.battery(cfg, systems, **settings)
    assert first.accuracy.tolist() == second.accuracy.tolist()
    for a, b in zip(first.robust, second.robust):
        assert torch.equal(a, b)
