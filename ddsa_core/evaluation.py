"""Evaluation: predictions and accuracy of a model, batched, without gradients."""
from __future__ import annotations

import torch
from torch import nn


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

