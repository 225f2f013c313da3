"""The DDSA sparsity rule (paper eq. 10-12): a bias update after each optimiser step, not a loss term.

For each ReLU unit i of the constrained layer, with a_i its mean activation over the batch:

    mu_hat_i <- 0.999 * mu_hat_i + 0.001 * a_i              (eq. 11, mu_hat starts at 0)
    b_i      <- b_i - alpha * beta * (mu_hat_i - mu)         (eq. 12)

where b_i is the bias feeding unit i, alpha the autoencoder's learning rate and beta the sparsity
rate, pushing E[a_i] towards the target mu = 0.1 (eq. 10). It acts only in training.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .evaluation import outputs
from .models import SparseReLU

DECAY = 0.999  # eq. 11


@dataclass(frozen=True)
class SparsityRule:
    """Eq. 11-12 for the units of ``act`` (a :class:`SparseReLU`) fed by the bias of ``layer``."""

    mu: float = 0.1
    beta: float = 1.0
    alpha: float = 1e-3
    apply_bias_update: bool = True  # False tracks mu_hat only: DDA

    @torch.no_grad()
    def step(self, layer: nn.Linear, act: SparseReLU) -> None:
        """Fold the last training batch's mean activation into ``mu_hat``, then move the biases."""
        if act.last_mean is None:
            raise RuntimeError("no training-mode forward pass since the last sparsity step")
        act.mu_hat.mul_(DECAY).add_((1 - DECAY) * act.last_mean)
        act.last_mean = None
        if self.apply_bias_update:
            layer.bias.sub_(self.alpha * self.beta * (act.mu_hat - self.mu))

    def after_step(self, model: nn.Module) -> None:
        """The hook for :func:`ddsa_core.training.fit`: the rule on a denoiser's 2nd FC layer."""
        self.step(model.fc2, model.act2)


def fraction_near_target(mu_hat: torch.Tensor, mu: float = 0.1, tol: float = 0.02) -> float:
    """Fraction of units whose running mean activation lies within ``tol`` of the target ``mu``."""
    return ((mu_hat - mu).abs() <= tol).float().mean().item()


@torch.inference_mode()
def activations(denoiser: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Activations of the constrained units (the 2nd FC layer's ReLUs) for inputs ``x``, in eval mode."""
    captured: list[torch.Tensor] = []
    hook = denoiser.act2.register_forward_hook(lambda module, inputs, out: captured.append(out.float().cpu()))
    try:
        outputs(denoiser, x, batch_size)
    finally:
        hook.remove()
    return torch.cat(captured)


def activation_stats(act: torch.Tensor) -> dict[str, float]:
    """Mean activation of the constrained units and their fraction of exact zeros, over every input and unit."""
    return {"mean_activation": act.mean().item(), "fraction_zero": (act == 0).float().mean().item()}
