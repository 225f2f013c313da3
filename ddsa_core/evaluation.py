"""Evaluation: predictions and accuracy of a model or defended system, batched, without gradients.

A defended system is a module that returns logits; a system that can also *reject* inputs
(MagNet) has a ``detect(x)`` method returning a boolean per image. The paper's tables count a
rejected adversarial example as defended and a rejected clean image as an error.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn


class System(NamedTuple):
    """A defended system as every threat model attacks it: the module that returns logits, and the
    content key of the weights an attack differentiates through (so each adversarial set crafted on
    it is cached once). Gray-box reads the model only; white- and black-box use both."""

    model: nn.Module
    key: str


@torch.inference_mode()
def outputs(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """The model's outputs for ``x`` in eval mode, batched on its device, returned on the CPU; its mode is restored."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(xb.to(device)).float().cpu() for xb in x.split(batch_size)])
    finally:
        model.train(was_training)


def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """A classifier's logits for ``x``."""
    return outputs(model, x, batch_size)


def predict_proba(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Softmax probabilities: Table 2's final ``Softmax()`` layer."""
    return predict_logits(model, x, batch_size).softmax(dim=1)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> float:
    """Fraction of ``x`` whose top-1 prediction equals ``y``."""
    return (predict_logits(model, x, batch_size).argmax(1) == y.cpu()).float().mean().item()



@torch.inference_mode()
def detected(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Which images ``model`` rejects (all False for a system without ``detect``), on the CPU."""
    if not hasattr(model, "detect"):
        return torch.zeros(len(x), dtype=torch.bool)
    device = next(model.parameters()).device
    return torch.cat([model.detect(xb.to(device)).cpu() for xb in x.split(batch_size)])


def defended_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, adversarial: bool,
                      batch_size: int = 500) -> dict[str, float]:
    """The paper's figure for a defended system, and its two parts.

    ``accuracy``: on adversarial inputs, rejected or correctly classified; on clean inputs,
    accepted and correctly classified. ``detected``: fraction rejected. ``classified``: accuracy
    of the classifier's output alone (the reformed input for MagNet), ignoring the detectors.
    """
    correct = predict_logits(model, x, batch_size).argmax(1) == y.cpu()
    flagged = detected(model, x, batch_size)
    ok = (correct | flagged) if adversarial else (correct & ~flagged)
    return {"accuracy": ok.float().mean().item(), "detected": flagged.float().mean().item(),
            "classified": correct.float().mean().item()}
