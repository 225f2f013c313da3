"""MagNet and FGSM adversarial training: architecture, thresholds, detection, and that each does its job."""
import pytest
import torch
from torch import nn

from ddsa_core import attacks, baselines, data
from ddsa_core.config import make_config
from ddsa_core.evaluation import accuracy, defended_accuracy, detected
from ddsa_core.models import INPUT_SHAPES, magnet_detector, magnet_reformer
from ddsa_core.training import make_optimizer


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_magnet_autoencoders_map_images_to_images(dataset):
    x = torch.rand(2, *INPUT_SHAPES[dataset])
    reformer = magnet_reformer(dataset)
    assert reformer(x).shape == x.shape
    convs = [m for m in reformer if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [(64, (5, 5), (2, 2)), (128, (5, 5), (2, 2)),
                                                                          (256, (5, 5), (2, 2))]  # Table 5
    assert [m.out_features for m in reformer if isinstance(m, nn.Linear)][0] == 128  # FC(128) then Tanh
    for structure, _ in baselines.DETECTORS.values():
        assert magnet_detector(dataset, structure)(x).shape == x.shape


def test_threshold_rejects_exactly_the_requested_fraction():
    scores = torch.randperm(1000).float()
    for fpr in (0.001, 0.01, 0.05):
        assert (scores > baselines.threshold(scores, fpr)).sum().item() == round(1000 * fpr)


def test_reconstruction_error_is_the_mean_pixel_error_to_the_power_p():
    x = torch.zeros(1, 1, 2, 2)
    ae = lambda t: t + torch.tensor([[[[1.0, -1.0], [2.0, 0.0]]]])
    assert baselines.reconstruction_error(ae, x, 1).item() == pytest.approx(1.0)
    assert baselines.reconstruction_error(ae, x, 2).item() == pytest.approx(1.5)


class _Flagging(nn.Module):
    """A system that predicts class 0 and rejects the first half of every batch."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return torch.nn.functional.one_hot(torch.zeros(len(x), dtype=torch.long), 10).float() + self.w

    def detect(self, x):
        return torch.arange(len(x)) < len(x) // 2


def test_defended_accuracy_counts_rejections_as_the_paper_does():
    x, y = torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 0, 1])  # correct: 0 and 2; rejected: 0 and 1
    adv = defended_accuracy(_Flagging(), x, y, adversarial=True, batch_size=4)
    clean = defended_accuracy(_Flagging(), x, y, adversarial=False, batch_size=4)
    assert adv == {"accuracy": 0.75, "detected": 0.5, "classified": 0.5}  # images 0, 1, 2
    assert clean == {"accuracy": 0.25, "detected": 0.5, "classified": 0.5}  # image 2 only
    assert not detected(nn.Linear(1, 1), x).any()  # no detect(): nothing is rejected


def test_magnet_is_mnist_only_and_names_its_parts():
    with pytest.raises(ValueError, match="dataset 'mnist' only"):
        baselines.magnet_autoencoder(make_config("quick", "cifar10"), "reformer")
    with pytest.raises(ValueError, match="MagNet part must be one of"):
        baselines.magnet_autoencoder(make_config("quick", "mnist"), "decoder")
    with pytest.raises(ValueError, match="'magnet_fpr' must be a number in \\(0, 1\\)"):
        make_config("quick", "mnist", magnet_fpr=0)
    with pytest.raises(ValueError, match="'adv_ratio' must be a number in \\[0, 1\\]"):
        make_config("quick", "mnist", adv_ratio=1.5)


@pytest.fixture(scope="module")
def quick_magnet(mnist_classifier):
    """The quick-profile MagNet (shared with the baselines chapter through the cache), thresholds at 1%.
    Training it takes over a minute on two cores, so the tests that read it are slow ones."""
    cfg = make_config("quick", "mnist", device="cpu", magnet_fpr=0.01)  # fpr is not part of the weights' key
    return baselines.magnet(cfg, mnist_classifier)[0]


@pytest.mark.slow
def test_magnet_thresholds_hold_their_false_positive_rate_on_held_out_clean_images(quick_magnet):
    x, _ = data.load("mnist", "test", 5_000)  # never seen by the autoencoders or the thresholds
    scores = {name: baselines.detector_scores(quick_magnet.detectors[name], x, p)
              for name, (_, p) in baselines.DETECTORS.items()}
    for name, s in scores.items():
        fpr = (s > getattr(quick_magnet, f"threshold_{name}")).float().mean().item()
        assert 0.004 <= fpr <= 0.02, f"{name}: held-out false-positive rate {fpr:.4f}, set for 0.01"
    assert detected(quick_magnet, x).float().mean().item() <= 0.04  # union of two detectors


@pytest.mark.slow
def test_magnet_rejects_noise_and_reforms_clean_digits(quick_magnet, mnist_classifier, mnist_test_batch):
    x, y = mnist_test_batch
    assert detected(quick_magnet, torch.rand_like(x)).all()  # uniform noise is far from the manifold
    assert accuracy(quick_magnet, x, y) >= accuracy(mnist_classifier, x, y) - 0.05


def test_fgsm_training_loss_mixes_clean_and_fgsm_cross_entropy(mnist_classifier, mnist_test_batch):
    x, y = mnist_test_batch
    model = mnist_classifier
    model.train()
    try:
        baselines.fgsm_training_loss("mnist", 0.3, 0.5)(model, x, y)
        assert model.training  # crafting ran in eval mode and gave training mode back
        model.eval()  # no dropout, so the values below are comparable
        ce = nn.functional.cross_entropy
        x_adv = attacks.build("fgsm", model, "mnist", eps=0.3)(x, model(x).argmax(1))  # predicted labels
        only_clean = baselines.fgsm_training_loss("mnist", 0.3, 0.0)(model, x, y)
        mixed = baselines.fgsm_training_loss("mnist", 0.3, 0.5)(model, x, y)
        assert only_clean.item() == pytest.approx(ce(model(x), y).item(), rel=1e-6)
        assert mixed.item() == pytest.approx((0.5 * ce(model(x), y) + 0.5 * ce(model(x_adv), y)).item(), rel=1e-5)
        assert mixed.item() > only_clean.item()
    finally:
        model.eval()


def test_fgsm_training_crafts_with_predicted_labels_not_the_true_ones(mnist_classifier, mnist_test_batch):
    x, _ = mnist_test_batch
    model = mnist_classifier.eval()
    ce = nn.functional.cross_entropy
    fgsm = attacks.build("fgsm", model, "mnist", eps=0.3)
    guess = model(x).argmax(1)
    y = (guess + 1) % 10  # labels the model never predicts, so crafting with them would differ
    loss = baselines.fgsm_training_loss("mnist", 0.3, 1.0)(model, x, y).item()
    assert loss == pytest.approx(ce(model(fgsm(x, guess)), y).item(), rel=1e-5)
    assert loss != pytest.approx(ce(model(fgsm(x, y)), y).item(), rel=1e-3)


@pytest.mark.slow
def test_adversarial_training_beats_the_plain_classifier_under_fgsm(mnist_classifier):
    cfg = make_config("quick", "mnist", device="cpu")  # the baselines chapter's model, through the cache
    robust = baselines.adversarial_training(cfg).model
    x, y = data.load("mnist", "test", 500)
    acc = {}
    for label, model in (("plain", mnist_classifier), ("adversarial training", robust)):
        x_adv = attacks.build("fgsm", model, "mnist", eps=0.3)(x, y)  # white-box FGSM on each model
        acc[label] = accuracy(model, x_adv, y)
    assert acc["adversarial training"] > acc["plain"] + 0.2, acc
    assert accuracy(robust, x, y) > 0.85


@pytest.mark.parametrize("mean_start", [False, True], ids=["keras-zero-bias", "mean-image"])
def test_the_reformer_collapses_from_keras_zero_bias_and_trains_from_the_mean_image(mean_start):
    """Why ``start_at_mean_image`` exists (chapter 5): from Keras' zero biases, 15 Adam steps saturate
    the reformer's tanh code and it returns one image for every input; from the mean image it does not."""
    x, _ = data.load("mnist", "train", 1024)
    xv, _ = data.load("mnist", "val", 128)
    torch.manual_seed(0)
    reformer = magnet_reformer("mnist")
    if mean_start:
        baselines.start_at_mean_image(reformer, x)
    opt = make_optimizer("adam", reformer.parameters(), baselines.MAGNET_LR)  # as magnet_autoencoder trains it
    loss_fn, g = baselines.noisy_reconstruction_loss(0.1), torch.Generator().manual_seed(0)
    for _ in range(15):
        loss = loss_fn(reformer, x[torch.randint(0, len(x), (64,), generator=g)])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        saturated = (reformer[:9](xv).abs() > 0.99).float().mean().item()  # the 128 tanh units of the code
        spread = reformer(xv).std(0).mean().item()  # how much the output changes from one input to the next
    if mean_start:
        assert saturated < 0.9 and spread > 1e-3
    else:
        assert saturated > 0.99 and spread < 1e-5


def test_reformer_starts_at_the_mean_image(mnist_test_batch):
    x, _ = mnist_test_batch
    torch.manual_seed(0)
    reformer = magnet_reformer("mnist")
    assert abs(reformer(x).mean().item() - 0.5) < 0.01  # Keras' zero bias: sigmoid(0) everywhere
    baselines.start_at_mean_image(reformer, x)
    assert abs(reformer(x).mean().item() - x.mean().item()) < 0.01
