"""The baselines the paper compares DDSA with (Tables 6 and 9): MagNet and FGSM adversarial training.

Each follows its authors' protocol; where the paper and the reference differ, the chapter says so.

* **MagNet** (Meng & Chen 2017): a *reformer* autoencoder moves inputs towards the data manifold
  before the classifier, and *detectors* reject inputs whose reconstruction error is too large.
  The reformer is the paper's Table 5 encoder with a mirrored decoder; the two detectors follow
  MagNet's own MNIST code (L2 and L1 reconstruction error). All three autoencoders are trained
  on clean images plus Gaussian noise, and each detector's threshold rejects ``magnet_fpr`` of a
  clean validation split.
* **Adversarial training** (Goodfellow et al. 2015): the Table 2 classifier trained on
  ``(1 - r)·CE(x) + r·CE(FGSM(x))``, with the FGSM examples crafted against the current weights
  at every step.

Both are defended systems with the same interface as :class:`ddsa_core.defenses.Defended`: a
module returning logits, plus (MagNet only) ``detect(x)``, so every threat model treats them alike.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from . import attacks, cache, data
from .config import Config
from .evaluation import accuracy, outputs
from .models import build_classifier, magnet_detector, magnet_reformer
from .runtime import place, resolve_device
from .training import TRAINING_CODE_VERSION, Trained, classifier_key, fit, load_or_train, make_optimizer, monitor_split

# name -> (architecture, the norm p of its reconstruction error), as in MagNet's MNIST code
DETECTORS: dict[str, tuple[tuple, int]] = {"detector_l2": ((3, "average", 3), 2), "detector_l1": ((3,), 1)}
MAGNET_LR = 1e-3  # Keras' Adam default, which MagNet's code uses


def reconstruction_error(ae: nn.Module, x: torch.Tensor, p: int) -> torch.Tensor:
    """MagNet's detector score: the mean over pixels of ``|x - ae(x)|^p``, one number per image."""
    return (x - ae(x)).abs().pow(p).flatten(1).mean(1)


def threshold(scores: torch.Tensor, fpr: float) -> float:
    """The score above which ``floor(fpr · n)`` of the ``n`` scores lie (MagNet's drop rate, in whole images)."""
    rejected = int(fpr * len(scores) + 1e-9)
    return scores.sort().values[len(scores) - rejected - 1].item()


class MagNet(nn.Module):
    """MagNet as a defended system: ``classifier(clip(reformer(x)))`` with reconstruction-error detectors."""

    def __init__(self, reformer: nn.Module, detectors: dict[str, nn.Module], norms: dict[str, int],
                 thresholds: dict[str, float], classifier: nn.Module) -> None:
        super().__init__()
        self.reformer, self.classifier = reformer, classifier
        self.detectors = nn.ModuleDict(detectors)
        self.norms = dict(norms)
        for name, t in thresholds.items():
            self.register_buffer(f"threshold_{name}", torch.tensor(float(t)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.reformer(x).clamp(0, 1))

    def scores(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each detector's reconstruction error for each image."""
        return {name: reconstruction_error(ae, x, self.norms[name]) for name, ae in self.detectors.items()}

    def detect(self, x: torch.Tensor) -> torch.Tensor:
        """True for each image that any detector rejects (its error is above that detector's threshold)."""
        flags = [s > getattr(self, f"threshold_{name}") for name, s in self.scores(x).items()]
        return torch.stack(flags).any(0)


def noisy_reconstruction_loss(noise: float):
    """MagNet's training loss: MSE between ``x`` and the reconstruction of ``clip(x + noise·N(0, 1))``."""
    def loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        noisy = (x + noise * torch.randn_like(x)).clamp(0, 1)
        return nn.functional.mse_loss(model(noisy), x)
    return loss


def start_at_mean_image(model: nn.Module, x: torch.Tensor) -> None:
    """Set the output layer's bias so that the untrained autoencoder outputs the mean pixel of ``x`` (per channel).

    With Keras' zero bias the reformer starts at 0.5 everywhere; the first Adam steps then push the
    whole network at once and saturate its tanh code within a few steps, after which it only ever
    outputs one image (``tests/test_baselines.py`` shows both starts). Starting at the mean avoids that.
    """
    last = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))][-1]
    with torch.no_grad():
        last.bias.copy_(torch.logit(x.mean(dim=(0, 2, 3)).clamp(1e-3, 1 - 1e-3)))


MAGNET_DATASETS = ("mnist",)  # the paper evaluates MagNet on MNIST only (Tables 6 and 9); its detectors need a validation split


def _require_magnet_dataset(cfg: Config) -> None:
    if cfg.dataset not in MAGNET_DATASETS:
        raise ValueError(f"MagNet is built for dataset {' or '.join(map(repr, MAGNET_DATASETS))} only (the paper evaluates "
                         f"it on MNIST, Tables 6 and 9, and its detectors need MNIST's validation split); got {cfg.dataset!r}")


def magnet_autoencoder(cfg: Config, part: str) -> Trained:
    """One of MagNet's autoencoders (``"reformer"`` or a :data:`DETECTORS` name), trained on noisy clean images or loaded."""
    _require_magnet_dataset(cfg)
    if part != "reformer" and part not in DETECTORS:
        raise ValueError(f"MagNet part must be one of {('reformer', *DETECTORS)}; got {part!r}")
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = (magnet_reformer(cfg.dataset) if part == "reformer" else magnet_detector(cfg.dataset, DETECTORS[part][0]))
    arch = "table5-mirrored-mean-init" if part == "reformer" else f"magnet-mnist-{DETECTORS[part][0]}"
    epochs = cfg.magnet_epochs if part == "reformer" else cfg.magnet_detector_epochs
    key = cache.content_key(
        kind="magnet", part=part, arch=arch, source=data.data_source(cfg.dataset), epochs=epochs,
        batch_size=cfg.magnet_batch_size, noise=cfg.magnet_noise, lr=MAGNET_LR, train_size=cfg.train_size,
        seed=cfg.seed, code=TRAINING_CODE_VERSION)

    def train(model: nn.Module, checkpoint: Path) -> list[dict]:
        x, _ = data.load(cfg.dataset, "train", cfg.train_size)
        xv, _ = data.load(cfg.dataset, "val", cfg.magnet_val_size)
        if part == "reformer":
            start_at_mean_image(model, x)

        def monitor(m: nn.Module) -> dict[str, float]:
            return {"val_mse_clean": nn.functional.mse_loss(outputs(m, xv, cfg.eval_batch_size), xv).item()}

        opt = make_optimizer("adam", model.parameters(), MAGNET_LR)
        return fit(model, (x,), noisy_reconstruction_loss(cfg.magnet_noise), opt, epochs,
                   cfg.magnet_batch_size, cfg.seed, checkpoint, monitor, desc=f"magnet {part}")

    meta = {"config": cfg.to_dict(), "part": part, "arch": arch, "data_source": data.data_source(cfg.dataset)}
    model = place(model, device, channels_last_on_cpu=part != "reformer")  # the reformer gains nothing from it
    return load_or_train("magnet", key, model, train, meta)


@torch.inference_mode()
def detector_scores(ae: nn.Module, x: torch.Tensor, p: int, batch_size: int = 500) -> torch.Tensor:
    """:func:`reconstruction_error` of every image in ``x``, batched on ``ae``'s device, on the CPU."""
    device = next(ae.parameters()).device
    return torch.cat([reconstruction_error(ae, xb.to(device), p).cpu() for xb in x.split(batch_size)])


def magnet(cfg: Config, clf: nn.Module) -> tuple[MagNet, dict[str, Trained]]:
    """MagNet in front of ``clf``: its three autoencoders (trained or loaded) and thresholds set on clean validation images."""
    parts = {part: magnet_autoencoder(cfg, part) for part in ("reformer", *DETECTORS)}
    xv, _ = data.load(cfg.dataset, "val", cfg.magnet_val_size)
    thresholds = {name: threshold(detector_scores(parts[name].model, xv, p, cfg.eval_batch_size), cfg.magnet_fpr)
                  for name, (_, p) in DETECTORS.items()}
    detectors = {name: parts[name].model for name in DETECTORS}
    norms = {name: p for name, (_, p) in DETECTORS.items()}
    device = next(clf.parameters()).device
    return MagNet(parts["reformer"].model, detectors, norms, thresholds, clf).to(device).eval(), parts


def fgsm_training_loss(dataset: str, eps: float, ratio: float):
    """Goodfellow et al.'s objective: ``(1 - ratio)·CE(x) + ratio·CE(FGSM(x))``, FGSM on the current weights.

    FGSM is crafted against the model's own predicted labels, as CleverHans does when it is given no
    labels: crafting with the true labels lets them leak into the examples (Kurakin et al., 2017),
    and the trained model then looks stronger against FGSM than it is.
    """
    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        guess = predicted_labels(model, x)
        x_adv = attacks.build("fgsm", model, dataset, eps=eps)(x, guess)  # eval mode for crafting, train mode restored
        ce = nn.functional.cross_entropy
        return (1 - ratio) * ce(model(x), y) + ratio * ce(model(x_adv), y)
    return loss


def predicted_labels(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's top-1 labels for ``x`` in eval mode (no dropout), its mode restored."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        guess = model(x).argmax(1)
    model.train(was_training)
    return guess


def adversarial_training(cfg: Config) -> Trained:
    """The Table 2 classifier trained with FGSM adversarial training (Table 3's optimiser, ``adv_epochs``), or loaded."""
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = build_classifier(cfg.dataset).to(device)
    watch = monitor_split(cfg.dataset)
    key = cache.content_key(kind="adversarial_training", base=classifier_key(cfg.replace(clf_epochs=cfg.adv_epochs)),
                            attack="fgsm", eps=cfg.eps, ratio=cfg.adv_ratio, labels="predicted")

    def train(model: nn.Module, checkpoint: Path) -> list[dict]:
        x, y = data.load(cfg.dataset, "train", cfg.train_size)
        xv, yv = data.load(cfg.dataset, watch, cfg.ae_val_size)

        def monitor(m: nn.Module) -> dict[str, float]:
            xv_adv = torch.cat([attacks.build("fgsm", m, cfg.dataset, eps=cfg.eps)(xb.to(device), yb.to(device)).cpu()
                                for xb, yb in zip(xv.split(cfg.eval_batch_size), yv.split(cfg.eval_batch_size))])
            return {f"{watch}_acc": accuracy(m, xv, yv, cfg.eval_batch_size),
                    f"{watch}_acc_fgsm_whitebox": accuracy(m, xv_adv, yv, cfg.eval_batch_size)}

        opt = make_optimizer(cfg.clf_optimizer, model.parameters(), cfg.clf_lr)
        return fit(model, (x, y), fgsm_training_loss(cfg.dataset, cfg.eps, cfg.adv_ratio), opt, cfg.adv_epochs,
                   cfg.clf_batch_size, cfg.seed, checkpoint, monitor, desc=f"adversarial training {cfg.dataset}")

    meta = {"config": cfg.to_dict(), "data_source": data.data_source(cfg.dataset), "monitor_split": watch,
            "eps": cfg.eps, "ratio": cfg.adv_ratio, "labels": "predicted"}
    return load_or_train("adversarial_training", key, model, train, meta)
