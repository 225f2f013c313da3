"""Gradient masking checks: can sign-gradient attacks use a classifier's cross-entropy gradient?

For logits z and label y, cross-entropy CE = -log softmax(z)_y has

    dCE/dz_j = p_j (j != y),    dCE/dz_y = p_y - 1 = -sum_{j != y} p_j,    p = softmax(z).

With margin m = z_y - max_{j != y} z_j, PyTorch's log-softmax rounds 1 + sum_{j != y} e^{z_j - z_y}
to 1 once that sum is at most half an ulp of 1 (2^-24 in float32): the true-class term p_y - 1 is
then exactly 0, from m >= 24 ln 2 ~ 16.64 for a single rival class. The other terms, about
e^{-m}, round to 0 once e^{-m} <= 2^-150 (half the smallest float32 subnormal), m >= 150 ln 2 ~
103.97: the whole logit gradient, so the input gradient, is exactly zero and sign(0) = 0 leaves
the image where it is. Between the two thresholds the gradient survives but lacks its
-grad z_y part, so it points elsewhere than the exact one. In float64 the thresholds are
53 ln 2 ~ 36.74 and 1075 ln 2 ~ 745.1.

The reference direction is the gradient of L = log sum_{j != y} e^{z_j - z_y} in float64
(:func:`ddsa_core.attacks.lse_margin`): CE = log(1 + e^L), so grad CE = (1 - p_y) grad L,
the same direction with neither rounding.
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attacks import lse_margin

#: Margin from which the true-class term p_y - 1 of dCE/dz is exactly 0 (one rival class).
CANCEL_MARGIN: dict[str, float] = {"float32": 24 * math.log(2), "float64": 53 * math.log(2)}
#: Margin from which every term of dCE/dz is exactly 0: the input gradient vanishes.
UNDERFLOW_MARGIN: dict[str, float] = {"float32": 150 * math.log(2), "float64": 1075 * math.log(2)}


def true_margin(logits: Tensor, y: Tensor) -> Tensor:
    """z_y - max_{j != y} z_j per sample (negative where the image is misclassified)."""
    other = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), -math.inf).amax(dim=1)
    return logits.gather(1, y[:, None]).squeeze(1) - other


def top2_margin(logits: Tensor) -> Tensor:
    """Largest minus second-largest logit per sample (>= 0): how confident the prediction is."""
    top = logits.topk(2, dim=1).values
    return top[:, 0] - top[:, 1]


def input_gradient(model: nn.Module, x: Tensor, y: Tensor, loss: str = "ce") -> tuple[Tensor, Tensor]:
    """(gradient of the summed loss w.r.t. x, logits), in the dtype of ``model`` and ``x``.

    ``loss`` is "ce" (cross-entropy, as the attacks use it) or "lse_margin" (the reference).
    """
    if loss not in ("ce", "lse_margin"):
        raise ValueError(f"loss must be 'ce' or 'lse_margin', got {loss!r}")
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        total = F.cross_entropy(logits, y, reduction="sum") if loss == "ce" else lse_margin(logits, y).sum()
        grad, = torch.autograd.grad(total, x)
    return grad, logits.detach()


def saturation(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 500) -> dict[str, float]:
    """How much of ``model``'s cross-entropy input gradient survives floating point, on (x, y).

    ``model`` is used as it is (float32) and as a float64 copy, in eval mode; its mode is
    restored. Returns fractions over the images (or, for ``*_entries``, over all gradient
    entries):

    - ``images``, ``accuracy``; ``median_top2_margin``: median of the top-2 logit margin;
    - ``above_cancel_float32`` / ``above_cancel_float64``: true-class margin >= CANCEL_MARGIN,
      where dCE/dz_y = p_y - 1 rounds to 0; ``above_underflow_float32``: margin >=
      UNDERFLOW_MARGIN["float32"], where the whole gradient is 0 in float32;
    - ``zero_grad_images_<dtype>``: images whose CE input gradient is exactly 0 everywhere;
    - ``zero_grad_entries_<dtype>``: entries exactly 0 (includes entries that are 0 for any
      weights, e.g. pixels no max-pool window selects: compare with ``zero_grad_entries_exact``);
    - ``sign_agreement_<dtype>``: among entries where the reference gradient (L in float64) is
      nonzero, the fraction where sign(grad CE) equals its sign: what a sign-gradient attack
      gets right.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() < 2 or len(x) == 0:
        raise ValueError("x must be a non-empty floating-point torch.Tensor batch (N, ...)")
    if not isinstance(y, Tensor) or y.dtype != torch.int64 or tuple(y.shape) != (len(x),):
        raise ValueError(f"y must be an int64 torch.Tensor of shape ({len(x)},)")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        model64 = copy.deepcopy(model).double().eval()
        device = next(model.parameters()).device
        top2, margins, correct = [], [], []
        zero_img = {"float32": 0, "float64": 0}
        zero_ent = {"float32": 0, "float64": 0, "exact": 0}
        agree = {"float32": 0, "float64": 0}
        nonzero_ref = 0
        for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
            xb, yb = xb.to(device), yb.to(device)
            g32, z = input_gradient(model, xb.float(), yb)
            g64, _ = input_gradient(model64, xb.double(), yb)
            ref, z64 = input_gradient(model64, xb.double(), yb, loss="lse_margin")
            top2.append(top2_margin(z).cpu())
            margins.append(true_margin(z64, yb).cpu())
            correct.append((z.argmax(1) == yb).cpu())
            live = ref != 0
            nonzero_ref += int(live.sum())
            zero_ent["exact"] += int((~live).sum())
            for name, g in (("float32", g32), ("float64", g64)):
                zero_img[name] += int((g.flatten(1) == 0).all(1).sum())
                zero_ent[name] += int((g == 0).sum())
                agree[name] += int(((g.sign() == ref.sign()) & live).sum())
    finally:
        for module, training in modes:
            module.training = training
    margin = torch.cat(margins).double()
    n, entries = len(margin), x[0].numel() * len(margin)
    out = {
        "images": n,
        "accuracy": torch.cat(correct).double().mean().item(),
        "median_top2_margin": torch.quantile(torch.cat(top2).double(), 0.5).item(),
        "above_cancel_float32": (margin >= CANCEL_MARGIN["float32"]).double().mean().item(),
        "above_cancel_float64": (margin >= CANCEL_MARGIN["float64"]).double().mean().item(),
        "above_underflow_float32": (margin >= UNDERFLOW_MARGIN["float32"]).double().mean().item(),
        "zero_grad_entries_exact": zero_ent["exact"] / entries,
    }
    for name in ("float32", "float64"):
        out[f"zero_grad_images_{name}"] = zero_img[name] / n
        out[f"zero_grad_entries_{name}"] = zero_ent[name] / entries
        out[f"sign_agreement_{name}"] = agree[name] / nonzero_ref if nonzero_ref else math.nan
    return out
