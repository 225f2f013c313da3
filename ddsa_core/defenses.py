"""Defenses as preprocessing blocks in front of an unchanged classifier: DDSA and DDA.

Training follows the paper's eq. 8-9: MSE between the clean image and the reconstruction of its
PGD example, plus MSE of the clean image's own reconstruction. The PGD examples are crafted once
against the trained classifier, with the paper's PGD settings, and cached. DDSA applies the
sparsity rule of :mod:`ddsa_core.sparsity` after every optimiser step; DDA is the same network
and training without it.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from torch import nn

from . import attacks, cache, data
from .adversarial import AdversarialSet, craft
from .config import Config, denoiser_train_size
from .evaluation import accuracy, outputs
from .models import build_denoiser
from .runtime import place, resolve_device
from .sparsity import SparsityRule
from .training import TRAINING_CODE_VERSION, Trained, classifier, fit, load_or_train, make_optimizer, monitor_split

DEFENSES = ("ddsa", "dda")
SATURATED = 0.01  # output std and distance of its mean from 0 or 1 below which the sigmoid has saturated
RECIPE = "collapse-restart-1"  # part of the weights' key: the restart below changes the weights of runs that collapse


class Defended(nn.Module):
    """The defended pipeline of the paper's Fig. 3: ``classifier(defense(x))``; ``meta`` is the defense's
    training record (:attr:`Trained.meta`), where it has one."""

    def __init__(self, defense: nn.Module, classifier: nn.Module, meta: dict | None = None) -> None:
        super().__init__()
        self.defense, self.classifier, self.meta = defense, classifier, meta or {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.defense(x))


def pgd_examples(cfg: Config, clf: Trained, split: str, n: int | None) -> tuple[torch.Tensor, AdversarialSet]:
    """Clean images of a split and their PGD examples against the classifier (paper settings, cached)."""
    x, y = data.load(cfg.dataset, split, n)
    attack = attacks.build("pgd", clf.model, cfg.dataset, eps=cfg.eps)
    return x, craft(attack, x, y, clf.key, f"{cfg.dataset}/{split}/first-{len(y)}", cfg.seed, cfg.eval_batch_size)


def reconstruction_loss(model: nn.Module, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Eq. 9: MSE(x, D(x')) + MSE(x, D(x)), in one forward pass over the mixed batch."""
    out_adv, out_clean = model(torch.cat([x_adv, x])).chunk(2)
    mse = nn.functional.mse_loss
    return mse(out_adv, x) + mse(out_clean, x)


def sparsity_rule(cfg: Config, sparse: bool) -> SparsityRule:
    """The rule DDSA trains with (eq. 11-12); DDA tracks the running means without moving biases."""
    return SparsityRule(mu=cfg.sparsity_mu, beta=cfg.sparsity_beta, alpha=cfg.ae_lr, apply_bias_update=sparse)


def output_bias_to_data_mean_(model: nn.Module, x: torch.Tensor) -> None:
    """Set the output layer's bias to the logit of the mean pixel of ``x`` per channel, so the
    sigmoid starts at the data's mean instead of 0.5."""
    p = x.mean(dim=(0, 2, 3)).clamp(1e-3, 1 - 1e-3)
    with torch.no_grad():
        model.decoder[-2].bias.copy_(torch.log(p / (1 - p)))


def collapsed(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> bool:
    """True when the denoiser returns one constant image at 0 or 1 for ``x``: its sigmoid has saturated."""
    out = outputs(model, x, batch_size)
    return out.std().item() < SATURATED and min(out.mean().item(), 1 - out.mean().item()) < SATURATED


def denoiser_key(cfg: Config, name: str, classifier_key: str) -> str:
    """Hash of everything that determines a denoiser's weights."""
    return cache.content_key(
        kind="denoiser", defense=name, arch=f"table4-{cfg.dataset}", classifier=classifier_key,
        source=data.data_source(cfg.dataset), optimizer=cfg.ae_optimizer, lr=cfg.ae_lr,
        batch_size=cfg.ae_batch_size, epochs=cfg.ae_epochs, train_size=denoiser_train_size(cfg), eps=cfg.eps, seed=cfg.seed,
        mu=cfg.sparsity_mu, beta=cfg.sparsity_beta if name == "ddsa" else None, code=TRAINING_CODE_VERSION,
        recipe=RECIPE,
    )


def denoiser(cfg: Config, name: str = "ddsa") -> Trained:
    """The DDSA (``name="ddsa"``) or DDA (``"dda"``) denoiser of ``cfg``, trained on PGD data or loaded."""
    if name not in DEFENSES:
        raise ValueError(f"defense name must be one of {DEFENSES}; got {name!r}")
    device = resolve_device(cfg.device)
    clf = classifier(cfg)
    rule = sparsity_rule(cfg, sparse=name == "ddsa")
    watch = monitor_split(cfg.dataset)
    torch.manual_seed(cfg.seed)
    model = place(build_denoiser(cfg.dataset), device, channels_last_on_cpu=True)
    meta = {"config": cfg.to_dict(), "defense": name, "classifier_key": clf.key, "monitor_split": watch,
            "data_source": data.data_source(cfg.dataset), "rule": rule.__dict__, "restarted": None}

    def train(model: nn.Module, checkpoint: Path) -> list[dict]:
        """Fit; if the first epoch collapses, restart it once from the same weights with the output bias
        at the data's mean. A run that does not collapse is the same as without the check."""
        x, adv = pgd_examples(cfg, clf, "train", denoiser_train_size(cfg))
        xv, adv_v = pgd_examples(cfg, clf, watch, cfg.ae_val_size)
        yv = data.load(cfg.dataset, watch, cfg.ae_val_size)[1]
        init = {k: v.clone() for k, v in model.state_dict().items()}

        def monitor(m: nn.Module) -> dict[str, float]:
            pipeline = Defended(m, clf.model)
            with torch.inference_mode():
                mse_adv = nn.functional.mse_loss(m(adv_v.x_adv.to(device)), xv.to(device)).item()
            return {"val_mse_pgd": mse_adv,
                    "val_acc_pgd_graybox": accuracy(pipeline, adv_v.x_adv, yv, cfg.eval_batch_size),
                    "val_acc_clean": accuracy(pipeline, xv, yv, cfg.eval_batch_size)}

        def run(epochs: int, opt: torch.optim.Optimizer) -> list[dict]:
            return fit(model, (adv.x_adv, x), reconstruction_loss, opt, epochs, cfg.ae_batch_size, cfg.seed,
                       checkpoint, monitor, after_step=rule.after_step, desc=f"{name} {cfg.dataset}")

        opt = make_optimizer(cfg.ae_optimizer, model.parameters(), cfg.ae_lr)
        note = checkpoint.with_suffix(".restart.json")  # the restart's record, kept across an interruption
        fresh = not checkpoint.exists()  # a resumed run made its first-epoch check before it stopped
        history = run(1, opt)
        if fresh and collapsed(model, xv, cfg.eval_batch_size):
            record = {"collapsed_first_epoch": history[0]}
            checkpoint.unlink(missing_ok=True)
            model.load_state_dict(init)
            output_bias_to_data_mean_(model, x)
            opt = make_optimizer(cfg.ae_optimizer, model.parameters(), cfg.ae_lr)
            run(1, opt)
            record["collapsed_again"] = collapsed(model, xv, cfg.eval_batch_size)
            if record["collapsed_again"]:
                warnings.warn(f"{name} {cfg.dataset} seed {cfg.seed}: collapsed again after the restart", stacklevel=2)
            cache.atomic_write(note, lambda tmp: tmp.write_text(json.dumps(record)))
        history = run(cfg.ae_epochs, opt)
        if note.exists():
            meta["restarted"] = json.loads(note.read_text())
            note.unlink()
        return history

    return load_or_train("denoiser", denoiser_key(cfg, name, clf.key), model, train, meta)
