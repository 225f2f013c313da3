import dataclasses

import pytest

from ddsa_core.config import Config, datasets_for, denoiser_steps, denoiser_train_size, make_config

BAD = [
    (dict(profile="fast"), r"'profile' must be one of \('quick', 'paper', 'smoke', 'reduced'\)"),
    (dict(profile=3), r"'profile' must be one of"),
    (dict(dataset="svhn"), r"'dataset' must be one of \('mnist', 'cifar10'\)"),
    (dict(dataset="MNIST"), r"'dataset' must be one of"),
    (dict(seed=-1), r"'seed' must be an integer >= 0"),
    (dict(seed=1.5), r"'seed' must be an integer >= 0"),
    (dict(seed=True), r"'seed' must be an integer >= 0"),
    (dict(device="gpu"), r"'device' must be 'auto', 'cpu', 'cuda' or 'cuda:N'"),
    (dict(device=0), r"'device' must be"),
    (dict(clf_epochs=-3), r"'clf_epochs' must be an integer >= 1"),
    (dict(clf_epochs=0), r"'clf_epochs' must be an integer >= 1"),
    (dict(clf_epochs="64"), r"'clf_epochs' must be an integer >= 1"),
    (dict(clf_batch_size=0), r"'clf_batch_size' must be an integer >= 1"),
    (dict(eval_batch_size=0), r"'eval_batch_size' must be an integer >= 1"),
    (dict(eps=1.5), r"'eps' must be a number in \[0, 1\]"),
    (dict(eps=-0.1), r"'eps' must be a number in \[0, 1\]"),
    (dict(eps="0.3"), r"'eps' must be a number in \[0, 1\]"),
    (dict(clf_lr=0), r"'clf_lr' must be a number in \(0, 10\]"),
    (dict(clf_lr=-0.01), r"'clf_lr' must be a number in"),
    (dict(clf_optimizer="adagrad"), r"'clf_optimizer' must be one of \('adam', 'rmsprop', 'sgd'\)"),
    (dict(train_size=0), r"'train_size' must be None or an integer >= 1"),
    (dict(test_size=-5), r"'test_size' must be None or an integer >= 1"),
    (dict(epochs=3), r"unknown config field\(s\) \['epochs'\]; allowed fields: .*clf_epochs"),
]


@pytest.mark.parametrize("kwargs,message", BAD, ids=[str(k) for k, _ in BAD])
def test_bad_values_name_the_field(kwargs, message):
    args = dict(profile="quick", dataset="mnist")
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        make_config(**args)


def test_paper_profile_is_table_3():
    m, c = make_config("paper", "mnist"), make_config("paper", "cifar10")
    assert (m.clf_optimizer, m.clf_lr, m.clf_batch_size, m.clf_epochs, m.eps) == ("adam", 0.01, 256, 64, 0.3)
    assert (c.clf_optimizer, c.clf_lr, c.clf_batch_size, c.clf_epochs, c.eps) == ("rmsprop", 0.001, 32, 64, 0.2)
    assert m.train_size is None and m.test_size is None


def test_quick_profile_only_shrinks_data_and_epochs():
    q, p = make_config("quick", "mnist"), make_config("paper", "mnist")
    assert q.train_size < 50_000 and q.clf_epochs < p.clf_epochs
    assert (q.clf_optimizer, q.clf_lr, q.eps) == (p.clf_optimizer, p.clf_lr, p.eps)


def test_smoke_profile_is_smaller_than_quick_and_keeps_the_papers_attack():
    for ds in ("mnist", "cifar10"):
        s, q = make_config("smoke", ds), make_config("quick", ds)
        assert s.train_size < q.train_size and s.adaptive_size < q.adaptive_size and s.square_queries < q.square_queries
        assert (s.clf_optimizer, s.clf_lr, s.eps) == (q.clf_optimizer, q.clf_lr, q.eps)


def test_config_is_frozen_and_replace_validates():
    cfg = make_config("quick", "mnist")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 3  # type: ignore[misc]
    assert cfg.replace(seed=4).seed == 4
    with pytest.raises(ValueError, match="'eps' must be"):
        cfg.replace(eps=2.0)
    with pytest.raises(ValueError, match="unknown config field"):
        cfg.replace(nope=1)


def test_direct_construction_is_validated():
    with pytest.raises(ValueError, match="'dataset'"):
        Config(profile="quick", dataset="imagenet")


def test_datasets_for():
    assert datasets_for("both") == ["mnist", "cifar10"]
    assert datasets_for("cifar10") == ["cifar10"]
    with pytest.raises(ValueError, match="'dataset' must be one of"):
        datasets_for("all")


@pytest.mark.parametrize("field,value", [("cw_size", 0), ("cw_max_iter", -1), ("cw_binary_steps", 0), ("attack_size", 0)])
def test_attack_sizes_validated(field, value):
    with pytest.raises(ValueError, match=f"'{field}' must be"):
        make_config("quick", "mnist", **{field: value})


def test_paper_attack_settings():
    cfg = make_config("paper", "mnist")
    assert (cfg.attack_size, cfg.cw_size, cfg.cw_max_iter, cfg.cw_binary_steps) == (None, 1_000, 1_000, 5)


def test_one_dataset():
    from ddsa_core.config import one_dataset

    assert one_dataset("both") == "mnist" and one_dataset("cifar10") == "cifar10"
    with pytest.raises(ValueError, match="'dataset' must be one of"):
        one_dataset("svhn")


def test_the_denoisers_learn_from_ae_train_size_capped_at_the_classifiers_slice():
    assert denoiser_train_size(make_config("quick", "mnist")) == 2_000  # the quick denoisers' PGD pairs
    assert denoiser_train_size(make_config("quick", "mnist", train_size=128)) == 128  # never past train_size
    assert denoiser_train_size(make_config("quick", "cifar10")) == 5_000  # None: the whole train_size
    assert denoiser_train_size(make_config("paper", "mnist")) is None  # the whole training split
    assert denoiser_train_size(make_config("paper", "mnist", ae_train_size=300)) == 300
    assert denoiser_train_size(make_config("reduced", "cifar10")) == 15_000


@pytest.mark.parametrize("overrides", [dict(ae_train_size=10, ae_epochs=2, ae_batch_size=4),
                                       dict(ae_train_size=12, ae_epochs=3, ae_batch_size=4)])
def test_denoiser_steps_counts_the_steps_fit_takes(overrides):
    import torch

    from ddsa_core.training import fit

    cfg = make_config("quick", "mnist", **overrides)
    model, steps = torch.nn.Linear(1, 1), []
    x = torch.zeros(denoiser_train_size(cfg), 1)
    fit(model, (x, x), lambda m, a, b: (m(a) - b).pow(2).mean(), torch.optim.SGD(model.parameters(), lr=0.0),
        cfg.ae_epochs, cfg.ae_batch_size, seed=0, after_step=lambda m: steps.append(1))
    assert denoiser_steps(cfg) == len(steps)


def test_denoiser_steps_of_the_profiles():
    assert denoiser_steps(make_config("quick", "mnist")) == 10 * 63  # 2,000 pairs in batches of 32, 10 epochs
    paper = make_config("paper", "mnist")
    assert denoiser_steps(paper) == paper.ae_epochs * -(-50_000 // paper.ae_batch_size)  # the whole split


def test_profiles_frame_gives_every_field_of_every_profile_without_blanks():
    from ddsa_core.config import PROFILES, profiles_frame
    frame = profiles_frame("mnist")
    assert list(frame.columns) == list(PROFILES)
    assert "clf_dropout" in frame.index and "seed" not in frame.index
    assert frame.loc["train_size", "paper"] == "all" and frame.loc["train_size", "quick"] == "10000"
    assert profiles_frame("cifar10").loc["clf_optimizer", "paper"] == "rmsprop"
    assert "None" not in frame.to_numpy()
    with pytest.raises(ValueError, match="'dataset'"):
        profiles_frame("svhn")
