import pytest
import torch

from ddsa_core import training
from ddsa_core.config import make_config
from ddsa_core.models import build_classifier


@pytest.mark.parametrize("dataset,shape", [("mnist", (1, 28, 28)), ("cifar10", (3, 32, 32))])
def test_classifier_output_shapes(dataset, shape):
    model = build_classifier(dataset)
    assert model(torch.rand(4, *shape)).shape == (4, 10)


def test_keras_initialisation():
    model = build_classifier("mnist")
    dense = model[5]
    bound = (6 / (dense.in_features + dense.out_features)) ** 0.5
    assert dense.weight.abs().max() <= bound and torch.all(dense.bias == 0)


def test_bad_dataset():
    with pytest.raises(ValueError, match="dataset must be one of"):
        build_classifier("svhn")


def _tiny_run(checkpoint, epochs, fail_on_epoch=None):
    torch.manual_seed(0)
    model = build_classifier("mnist")
    x, y = torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,))
    opt = training.make_optimizer("adam", model.parameters(), 1e-3)
    seen = []
    def monitor(m):
        seen.append(1)
        if len(seen) == fail_on_epoch:
            raise KeyboardInterrupt("simulated interruption")
        return {}
    hist = training.fit(model, (x, y), training.cross_entropy, opt, epochs, 16, seed=3,
                        checkpoint=checkpoint, monitor=monitor)
    return model, hist


def test_interrupted_training_resumes_to_identical_weights(tmp_path):
    ref, ref_hist = _tiny_run(None, 3)
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(KeyboardInterrupt):
        _tiny_run(ckpt, 3, fail_on_epoch=2)  # epoch 1 checkpointed, epoch 2 lost
    resumed, hist = _tiny_run(ckpt, 3)
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    for a, b in zip(ref.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    assert [h["loss"] for h in hist] == [h["loss"] for h in ref_hist]


def test_classifier_is_trained_once_then_loaded(tmp_path, monkeypatch):
    monkeypatch.setenv("DDSA_CACHE", str(tmp_path))
    cfg = make_config("quick", "mnist", device="cpu", train_size=256, test_size=100, clf_epochs=1)
    first = training.classifier(cfg)
    monkeypatch.setattr(training, "fit", lambda *a, **k: pytest.fail("trained again"))
    second = training.classifier(cfg)
    assert not first.cached and second.cached
    assert second.history == first.history and "val_acc" in second.history[0]
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(a, b)
    other = cfg.replace(seed=1)
    assert training.classifier_key(other) != training.classifier_key(cfg)
