"""The paper's classifiers (Table 2).

Keras layers map one to one: ``Conv2D`` is ``nn.Conv2d`` with 'valid' padding (Keras' default),
``Dense`` is ``nn.Linear``. Weights start as Keras starts them (Glorot-uniform kernels, zero
biases). The models return logits: the table's final ``Softmax()`` lives in the loss
(cross-entropy) and in :func:`ddsa_core.evaluation.predict_proba`.
"""
from __future__ import annotations

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


def mnist_classifier() -> nn.Sequential:
    """Table 2, left column: Conv32-ReLU-Pool-Dropout-Dense1024-ReLU-Dropout-Dense10."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
        nn.Flatten(), nn.Linear(32 * 13 * 13, 1024), nn.ReLU(), nn.Dropout(0.25),
        nn.Linear(1024, 10),
    )


def cifar10_classifier() -> nn.Sequential:
    """Table 2, right column: Conv96-Conv96-Pool-Dropout-Conv64-Conv64-Dense1024-Dense10."""
    return nn.Sequential(
        nn.Conv2d(3, 96, 3), nn.ReLU(), nn.Conv2d(96, 96, 3), nn.ReLU(),
        nn.MaxPool2d(2), nn.Dropout(0.25),
        nn.Conv2d(96, 64, 3), nn.ReLU(), nn.Conv2d(64, 64, 3), nn.ReLU(),
        nn.Flatten(), nn.Linear(64 * 10 * 10, 1024), nn.ReLU(),
        nn.Linear(1024, 10),
    )


CLASSIFIERS = {"mnist": mnist_classifier, "cifar10": cifar10_classifier}


def build_classifier(dataset: str) -> nn.Module:
    """A freshly initialised Table 2 classifier for ``dataset``."""
    if dataset not in CLASSIFIERS:
        raise ValueError(f"dataset must be one of {tuple(CLASSIFIERS)}; got {dataset!r}")
    return keras_init_(CLASSIFIERS[dataset]())
