import pytest
import torch
from torch import nn

from ddsa_core.models import SparseReLU, build_denoiser
from ddsa_core.sparsity import SparsityRule, fraction_near_target


@pytest.mark.parametrize("dataset,shape,width", [("mnist", (1, 28, 28), 392), ("cifar10", (3, 32, 32), 2048)])
def test_table_4_shapes_close(dataset, shape, width):
    model = build_denoiser(dataset)
    x = torch.rand(2, *shape)
    out = model(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1  # sigmoid output
    assert model.encoder(x).flatten(1).shape[1] == width  # 7x7x8 = 392 and 8x8x32 = 2048
    assert model.fc1.in_features == model.fc2.out_features == model.fc3.out_features == width


def test_mu_hat_is_a_saved_buffer():
    keys = build_denoiser("mnist").state_dict().keys()
    assert [k for k in keys if "mu_hat" in k] == ["act2.mu_hat"]


def _tiny(seed=0):
    torch.manual_seed(seed)
    layer, act = nn.Linear(3, 4), SparseReLU(4)
    return layer, act


def test_one_iteration_matches_eq_11_and_12_by_hand():
    layer, act = _tiny()
    act.mu_hat.copy_(torch.tensor([0.0, 0.05, 0.3, 0.1]))
    x = torch.randn(5, 3)
    rule = SparsityRule(mu=0.1, beta=2.0, alpha=0.01)
    act.train()
    a = torch.relu(x @ layer.weight.T + layer.bias).mean(0)  # batch mean activation, by hand
    act(layer(x))
    mu_expected = 0.999 * torch.tensor([0.0, 0.05, 0.3, 0.1]) + 0.001 * a
    b_expected = layer.bias.detach() - 0.01 * 2.0 * (mu_expected - 0.1)
    rule.step(layer, act)
    assert torch.allclose(act.mu_hat, mu_expected, atol=1e-6)
    assert torch.allclose(layer.bias, b_expected, atol=1e-6)


def test_evaluation_leaves_mu_hat_and_biases_untouched():
    layer, act = _tiny()
    act.eval()
    before_mu, before_b = act.mu_hat.clone(), layer.bias.detach().clone()
    act(layer(torch.randn(8, 3)))
    with pytest.raises(RuntimeError, match="no training-mode forward pass"):
        SparsityRule().step(layer, act)
    assert torch.equal(act.mu_hat, before_mu) and torch.equal(layer.bias, before_b)


def test_dda_tracks_mu_hat_but_keeps_biases():
    layer, act = _tiny()
    act.train()
    before_b = layer.bias.detach().clone()
    act(layer(torch.randn(8, 3)))
    SparsityRule(apply_bias_update=False).step(layer, act)
    assert torch.equal(layer.bias, before_b) and act.mu_hat.abs().sum() > 0


def test_rule_drives_mean_activation_to_target():
    """Iterating eq. 11-12 alone on a fixed input moves every unit's running mean to mu."""
    layer, act = _tiny()
    act.train()
    x = torch.randn(64, 3)
    rule = SparsityRule(mu=0.1, beta=50.0, alpha=0.01)
    for _ in range(20_000):
        act(layer(x))
        rule.step(layer, act)
    assert fraction_near_target(act.mu_hat, 0.1, 0.02) == 1.0


def test_reconstruction_loss_is_eq_9():
    from ddsa_core.defenses import reconstruction_loss

    model = build_denoiser("mnist")
    x, x_adv = torch.rand(4, 1, 28, 28), torch.rand(4, 1, 28, 28)
    model.eval()
    expected = ((model(x_adv) - x) ** 2).mean() + ((model(x) - x) ** 2).mean()
    assert torch.allclose(reconstruction_loss(model, x_adv, x), expected, atol=1e-6)


def test_ddsa_and_dda_train_once_and_differ_only_by_the_rule(tmp_path, monkeypatch):
    from ddsa_core import defenses
    from ddsa_core.config import make_config

    monkeypatch.setenv("DDSA_CACHE", str(tmp_path))
    cfg = make_config("quick", "mnist", device="cpu", train_size=128, test_size=64, clf_epochs=1,
                      ae_epochs=1, ae_batch_size=32, ae_val_size=32, sparsity_beta=100.0)
    ddsa, dda = defenses.denoiser(cfg, "ddsa"), defenses.denoiser(cfg, "dda")
    assert {"val_mse_pgd", "val_acc_pgd_graybox", "val_acc_clean"} <= set(ddsa.history[0])
    assert ddsa.key != dda.key
    assert ddsa.model.act2.mu_hat.abs().sum() > 0 and dda.model.act2.mu_hat.abs().sum() > 0
    assert not torch.equal(ddsa.model.fc2.bias, dda.model.fc2.bias)
    monkeypatch.setattr(defenses, "fit", lambda *a, **k: pytest.fail("trained again"))
    reloaded = defenses.denoiser(cfg, "ddsa")
    assert reloaded.cached and _channels_last(reloaded.model)
    from ddsa_core import experiments
    system = experiments.defended_systems(cfg, only=("DDSA",))["DDSA"][0]  # carries the training record chapter 7 reads
    assert system.meta == reloaded.meta and "restarted" in system.meta
    with pytest.raises(ValueError, match="defense name must be one of"):
        defenses.denoiser(cfg, "magnet")


def test_output_bias_starts_the_sigmoid_at_the_data_mean():
    from ddsa_core.defenses import output_bias_to_data_mean_

    model, x = build_denoiser("cifar10"), torch.rand(16, 3, 32, 32) * torch.tensor([0.2, 0.5, 0.8]).view(1, 3, 1, 1)
    output_bias_to_data_mean_(model, x)
    assert torch.allclose(torch.sigmoid(model.decoder[-2].bias), x.mean(dim=(0, 2, 3)), atol=1e-6)


def test_a_collapsed_first_epoch_restarts_once_with_the_data_mean_bias(tmp_path, monkeypatch):
    from ddsa_core import defenses
    from ddsa_core.config import make_config

    monkeypatch.setenv("DDSA_CACHE", str(tmp_path))
    cfg = make_config("quick", "mnist", device="cpu", train_size=64, test_size=32, clf_epochs=1,
                      ae_epochs=2, ae_batch_size=32, ae_val_size=32)
    calls, biases = [], []
    real_fit = defenses.fit

    def spy_fit(model, *args, **kwargs):
        biases.append(model.decoder[-2].bias.item())
        return real_fit(model, *args, **kwargs)

    monkeypatch.setattr(defenses, "collapsed", lambda model, x, batch_size: not calls.append(x) and len(calls) == 1)
    monkeypatch.setattr(defenses, "fit", spy_fit)
    den = defenses.denoiser(cfg, "dda")
    restarted = den.meta["restarted"]
    assert len(calls) == 2 and restarted["collapsed_first_epoch"]["epoch"] == 1 and not restarted["collapsed_again"]
    assert den.history[0]["loss"] != restarted["collapsed_first_epoch"]["loss"]  # the epoch was rerun, not reloaded
    assert biases[0] == 0.0 and biases[1] == pytest.approx(-1.8, abs=0.3)  # logit of MNIST's mean pixel, ~0.13
    assert [h["epoch"] for h in den.history] == [1, 2]


def test_collapsed_means_one_saturated_image_not_an_untrained_one():
    from ddsa_core.defenses import collapsed

    model, x = build_denoiser("mnist"), torch.rand(8, 1, 28, 28)
    assert not collapsed(model, x)  # fresh: flat near 0.5, not saturated
    with torch.no_grad():
        model.decoder[-2].bias.fill_(-100.0)  # what seeds 1 and 2 of the quick profile did in their first epoch
        model.decoder[-2].weight.zero_()
    assert collapsed(model, x)


def test_a_run_resumed_after_a_restart_keeps_its_record_and_does_not_check_again(tmp_path, monkeypatch):
    from ddsa_core import defenses
    from ddsa_core.config import make_config

    monkeypatch.setenv("DDSA_CACHE", str(tmp_path))
    cfg = make_config("quick", "mnist", device="cpu", train_size=64, test_size=32, clf_epochs=1,
                      ae_epochs=2, ae_batch_size=32, ae_val_size=32)
    real_fit, calls = defenses.fit, []

    def interrupted_fit(model, tensors, loss_fn, opt, epochs, *args, **kwargs):
        if epochs == 2:  # after the restarted first epoch: stop, as a crash would
            raise KeyboardInterrupt
        return real_fit(model, tensors, loss_fn, opt, epochs, *args, **kwargs)

    monkeypatch.setattr(defenses, "collapsed", lambda model, x, batch_size: not calls.append(x) and len(calls) == 1)
    monkeypatch.setattr(defenses, "fit", interrupted_fit)
    with pytest.raises(KeyboardInterrupt):
        defenses.denoiser(cfg, "dda")
    monkeypatch.setattr(defenses, "fit", real_fit)
    den = defenses.denoiser(cfg, "dda")
    assert len(calls) == 2  # the resumed run did not check its (already checked) first epoch again
    assert den.meta["restarted"]["collapsed_first_epoch"]["epoch"] == 1


def _channels_last(model: torch.nn.Module) -> bool:
    """Every 4-D weight with more than one input channel is channels-last (with one, both layouts coincide)."""
    weights = [p for p in model.parameters() if p.dim() == 4 and p.shape[1] > 1]
    return bool(weights) and all(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in weights)


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_channels_last_changes_the_speed_not_the_denoiser(dataset):
    """The CPU lever of ``runtime.place``: the same weights in channels-last memory give the same
    reconstructions, logits and (for sign attacks) gradient signs as in PyTorch's default layout."""
    import copy

    from ddsa_core.attacks import lse_margin
    from ddsa_core.defenses import Defended
    from ddsa_core.models import INPUT_SHAPES, build_classifier
    from ddsa_core.runtime import place

    torch.manual_seed(0)
    den, clf = build_denoiser(dataset).eval(), build_classifier(dataset).eval()
    fast = place(copy.deepcopy(den), torch.device("cpu"), channels_last_on_cpu=True)
    assert _channels_last(fast) and not _channels_last(place(copy.deepcopy(den), torch.device("cpu")))
    x, y = torch.rand(64, *INPUT_SHAPES[dataset]), torch.randint(0, 10, (64,))
    grads = []
    for model in (den, fast):
        xx = x.clone().requires_grad_(True)
        logits = Defended(model, clf)(xx)
        grads.append(torch.autograd.grad(lse_margin(logits, y).sum(), xx)[0])
        assert torch.allclose(model(x), den(x), atol=1e-6)
        assert torch.allclose(logits, Defended(den, clf)(x), atol=1e-5)
    assert (grads[0].sign() == grads[1].sign()).float().mean() > 0.99  # float32 reordering flips only near-zero entries
