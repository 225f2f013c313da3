"""The paper's classifiers (Table 2).

Keras layers map one to one: ``Conv2D`` is ``nn.Conv2d`` with 'valid' padding (Keras' default),
``Dense`` is ``nn.Linear``. Weights start as Keras starts them (Glorot-uniform kernels, zero
biases). The models return logits: the table's final ``Softmax()`` lives in the loss
(cross-entropy) and in :func:`ddsa_core.evaluation.predict_proba`.
"""
from __future__ import annotations

import torch
from torch import nn

INPUT_SHAPES = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


def keras_init_(model: nn.Module) -> nn.Module:
    """Glorot-uniform weights and zero biases on every conv and dense layer, as Keras does."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


def mnist_classifier(dropout: float = 0.25) -> nn.Sequential:
    """Table 2, left column: Conv32-ReLU-Pool-Dropout-Dense1024-ReLU-Dropout-Dense10."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(dropout),
        nn.Flatten(), nn.Linear(32 * 13 * 13, 1024), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(1024, 10),
    )


def cifar10_classifier(dropout: float = 0.25) -> nn.Sequential:
    """Table 2, right column: Conv96-Conv96-Pool-Dropout-Conv64-Conv64-Dense1024-Dense10."""
    return nn.Sequential(
        nn.Conv2d(3, 96, 3), nn.ReLU(), nn.Conv2d(96, 96, 3), nn.ReLU(),
        nn.MaxPool2d(2), nn.Dropout(dropout),
        nn.Conv2d(96, 64, 3), nn.ReLU(), nn.Conv2d(64, 64, 3), nn.ReLU(),
        nn.Flatten(), nn.Linear(64 * 10 * 10, 1024), nn.ReLU(),
        nn.Linear(1024, 10),
    )


CLASSIFIERS = {"mnist": mnist_classifier, "cifar10": cifar10_classifier}


def build_classifier(dataset: str, dropout: float = 0.25) -> nn.Module:
    """A freshly initialised Table 2 classifier for ``dataset``; ``dropout`` is the drop probability."""
    if dataset not in CLASSIFIERS:
        raise ValueError(f"dataset must be one of {tuple(CLASSIFIERS)}; got {dataset!r}")
    return keras_init_(CLASSIFIERS[dataset](dropout))


class SparseReLU(nn.ReLU):
    """A ReLU that keeps ``mu_hat``, the running mean activation of each unit (eq. 11).

    In training mode each forward pass stores the batch mean activation ``last_mean``; the
    sparsity rule (:mod:`ddsa_core.sparsity`) folds it into ``mu_hat`` after the optimiser step.
    ``mu_hat`` is a buffer, so it is saved with the weights.
    """

    def __init__(self, units: int) -> None:
        super().__init__()
        self.register_buffer("mu_hat", torch.zeros(units))
        self.last_mean: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        if self.training:
            self.last_mean = out.detach().mean(dim=0)
        return out


class Denoiser(nn.Module):
    """Table 4: conv encoder, three Dense layers (ReLU), conv-transpose decoder, sigmoid output.

    ``fc2`` and ``act2`` are the paper's "2nd hidden FC layer" whose units the sparsity rule
    constrains (eq. 10-12); DDA is the same network trained without the rule.
    """

    def __init__(self, encoder: nn.Sequential, width: int, code_shape: tuple[int, int, int], decoder: nn.Sequential):
        super().__init__()
        self.encoder, self.code_shape, self.decoder = encoder, code_shape, decoder
        self.fc1, self.act1 = nn.Linear(width, width), nn.ReLU()
        self.fc2, self.act2 = nn.Linear(width, width), SparseReLU(width)
        self.fc3, self.act3 = nn.Linear(width, width), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x).flatten(1)
        h = self.act3(self.fc3(self.act2(self.fc2(self.act1(self.fc1(h))))))
        return self.decoder(h.view(-1, *self.code_shape))


def mnist_denoiser() -> Denoiser:
    """Table 4, MNIST, with 'same' padding: 28×28 → 7×7×8 = 392 → Dense 392 ×3 → 7×7×8 → 28×28."""
    encoder = nn.Sequential(
        nn.Conv2d(1, 20, 3, padding=1), nn.ReLU(), nn.Conv2d(20, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    )
    decoder = nn.Sequential(
        nn.ConvTranspose2d(8, 8, 3, padding=1), nn.ReLU(), nn.ConvTranspose2d(8, 16, 3, padding=1), nn.ReLU(),
        nn.Upsample(scale_factor=2), nn.ConvTranspose2d(16, 20, 3, padding=1), nn.ReLU(), nn.Upsample(scale_factor=2),
        nn.ConvTranspose2d(20, 1, 3, padding=1), nn.Sigmoid(),
    )
    return Denoiser(encoder, 392, (8, 7, 7), decoder)


def cifar10_denoiser() -> Denoiser:
    """Table 4, CIFAR-10, with 'same' padding: 32×32 → 8×8×32 = 2048 → Dense 2048 ×3 → 8×8×32 → 32×32."""
    encoder = nn.Sequential(
        nn.Conv2d(3, 128, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(128),
        nn.Conv2d(128, 64, 3, padding=1), nn.ReLU(), nn.Dropout(0.25), nn.MaxPool2d(2),
        nn.Conv2d(64, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    )
    decoder = nn.Sequential(
        nn.ConvTranspose2d(32, 32, 3, padding=1), nn.ReLU(), nn.Upsample(scale_factor=2),
        nn.ConvTranspose2d(32, 64, 3, padding=1), nn.ReLU(), nn.Upsample(scale_factor=2),
        nn.ConvTranspose2d(64, 128, 3, padding=1), nn.ReLU(), nn.ConvTranspose2d(128, 3, 3, padding=1), nn.Sigmoid(),
    )
    return Denoiser(encoder, 2048, (32, 8, 8), decoder)


DENOISERS = {"mnist": mnist_denoiser, "cifar10": cifar10_denoiser}


def build_denoiser(dataset: str) -> Denoiser:
    """A freshly initialised Table 4 denoiser for ``dataset`` (DDSA and DDA share it)."""
    if dataset not in DENOISERS:
        raise ValueError(f"dataset must be one of {tuple(DENOISERS)}; got {dataset!r}")
    return keras_init_(DENOISERS[dataset]())


def magnet_reformer(dataset: str) -> nn.Sequential:
    """MagNet's reformer for the paper: Table 5's encoder with a mirrored decoder ('same' padding).

    MNIST 28×28 → 14 → 7 → 4 (×256) → FC 128 (tanh) → FC 4096 → 4 → 7 → 14 → 28 (sigmoid); CIFAR-10
    32 → 16 → 8 → 4 and back. ``output_padding`` makes each transposed conv undo its conv exactly.
    """
    if dataset not in INPUT_SHAPES:
        raise ValueError(f"dataset must be one of {tuple(INPUT_SHAPES)}; got {dataset!r}")
    c, h, _ = INPUT_SHAPES[dataset]
    sizes = [h]
    for _ in range(3):
        sizes.append((sizes[-1] + 1) // 2)  # a 5×5 stride-2 'same' conv: 28, 14, 7, 4 or 32, 16, 8, 4
    pad = [sizes[i] - 2 * sizes[i + 1] + 1 for i in range(3)]  # output_padding of each ConvT, 0 or 1
    lrelu = lambda: nn.LeakyReLU(0.2)
    encoder = [nn.Conv2d(c, 64, 5, 2, 2), lrelu(), nn.Conv2d(64, 128, 5, 2, 2), lrelu(),
               nn.Conv2d(128, 256, 5, 2, 2), lrelu(), nn.Flatten(), nn.Linear(256 * sizes[3] ** 2, 128), nn.Tanh()]
    decoder = [nn.Linear(128, 256 * sizes[3] ** 2), lrelu(), nn.Unflatten(1, (256, sizes[3], sizes[3])),
               nn.ConvTranspose2d(256, 128, 5, 2, 2, output_padding=pad[2]), lrelu(),
               nn.ConvTranspose2d(128, 64, 5, 2, 2, output_padding=pad[1]), lrelu(),
               nn.ConvTranspose2d(64, c, 5, 2, 2, output_padding=pad[0]), nn.Sigmoid()]
    return keras_init_(nn.Sequential(*encoder, *decoder))


def magnet_detector(dataset: str, structure: tuple = (3, "average", 3)) -> nn.Sequential:
    """A MagNet detector autoencoder as in Meng & Chen's MNIST code: 3×3 'same' convs with sigmoid.

    ``structure`` lists the encoder (ints are conv widths, "average" a 2×2 average pool); the
    decoder mirrors it (pools become 2× upsampling) and ends in a sigmoid conv back to the image.
    Their detector I is ``(3, "average", 3)`` (L2 error), detector II ``(3,)`` (L1 error).
    """
    if dataset not in INPUT_SHAPES:
        raise ValueError(f"dataset must be one of {tuple(INPUT_SHAPES)}; got {dataset!r}")
    c = INPUT_SHAPES[dataset][0]
    layers, width = [], c
    for part in structure:
        if part == "average":
            layers.append(nn.AvgPool2d(2))
        else:
            layers += [nn.Conv2d(width, part, 3, padding=1), nn.Sigmoid()]
            width = part
    for part in reversed(structure):
        if part == "average":
            layers.append(nn.Upsample(scale_factor=2))
        else:
            layers += [nn.Conv2d(width, part, 3, padding=1), nn.Sigmoid()]
            width = part
    layers += [nn.Conv2d(width, c, 3, padding=1), nn.Sigmoid()]
    return keras_init_(nn.Sequential(*layers))


def substitute_mlp(dataset: str) -> nn.Sequential:
    """The black-box attacker's substitute: the MLP 200-200-10 of CleverHans' Papernot et al. tutorial."""
    if dataset not in INPUT_SHAPES:
        raise ValueError(f"dataset must be one of {tuple(INPUT_SHAPES)}; got {dataset!r}")
    c, h, w = INPUT_SHAPES[dataset]
    return keras_init_(nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 200), nn.ReLU(), nn.Linear(200, 200), nn.ReLU(),
                                     nn.Linear(200, 10)))


def substitute_model_b(dataset: str) -> nn.Sequential:
    """Defense-GAN's convolutional substitute B (``utils/network_builder.py``, ``model_b``):
    Dropout-Conv64 8×8/2 (same)-Conv128 6×6/2-Conv128 5×5-Dropout-Dense10, ReLU between.

    Its ``Dropout(0.2)`` and ``Dropout(0.5)`` call TF1's ``tf.nn.dropout(x, keep_prob)``, so they keep
    20% and 50% of the units: drop probabilities 0.8 and 0.5 here. TF's 'SAME' padding of the first
    convolution pads 3 pixels on every side of a 28×28 image.
    """
    if dataset != "mnist":
        raise ValueError(f"dataset must be 'mnist' for Defense-GAN's model B; got {dataset!r}")
    return keras_init_(nn.Sequential(
        nn.Dropout(0.8), nn.Conv2d(1, 64, 8, stride=2, padding=3), nn.ReLU(),
        nn.Conv2d(64, 128, 6, stride=2), nn.ReLU(), nn.Conv2d(128, 128, 5), nn.ReLU(),
        nn.Dropout(0.5), nn.Flatten(), nn.Linear(128, 10)))
