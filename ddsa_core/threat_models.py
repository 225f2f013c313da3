"""Threat models: who the attack is crafted against, and what is evaluated.

Gray-box (the paper's own threat model, Section III.A): the attacker knows the classifier but
not the defense, so the attacks are crafted against the classifier alone and the adversarial
examples are then given to the defended system: ``classifier(defense(x))`` for DDSA and DDA,
MagNet's detectors and reformer, or the adversarially trained classifier in place of the
plain one.

White-box, as the paper ran it (Section IV.B.3): the attacker knows the classifier and the
defense, and each attack is crafted against the whole defended system, differentiating through
the defense and then the classifier. MagNet's detectors still judge the result but are not part
of what the attacker differentiates (the paper's setting; an attack that also evades them is the
adaptive chapter's).

Black-box (Papernot et al. 2017, Section IV.B.1): the attacker sees only the defended system's
labels. It trains a substitute from the first ``bb_holdout`` test images labelled by the target,
grows that set by Jacobian-based augmentation, crafts the attacks on the substitute, and
transfers them to the target on the remaining test images.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from . import attacks, cache, data
from .adversarial import attack_overrides, attack_slice, craft
from .config import Config
from .evaluation import defended_accuracy, predict_logits
from .models import substitute_mlp
from .runtime import resolve_device
from .training import TRAINING_CODE_VERSION, Trained, cross_entropy, fit, load_or_train, make_optimizer

SUBSTITUTE_LR, SUBSTITUTE_BATCH = 1e-3, 128  # CleverHans' tutorial


def gray_box(cfg: Config, clf: Trained, systems: dict[str, nn.Module], names: tuple[str, ...],
             **overrides) -> list[dict]:
    """Accuracy of each defended system on attacks crafted against the classifier alone.

    ``systems`` maps a label to a defended system: a module returning logits, such as
    ``clf.model`` itself ("no defense"), ``Defended(denoiser, clf.model)``, a MagNet, or an
    adversarially trained classifier; one with ``detect(x)`` may reject inputs (see
    :func:`ddsa_core.evaluation.defended_accuracy`). ``overrides`` (e.g. ``eps=0.1``) replace the
    profile's attack settings for every attack.
    """
    rows = []
    for name in names:
        n = attack_slice(cfg, name)
        x, y = data.load(cfg.dataset, "test", n)
        params = {**attack_overrides(cfg, name), **overrides}
        attack = attacks.build(name, clf.model, cfg.dataset, **params)
        adv = craft(attack, x, y, clf.key, f"{cfg.dataset}/test/first-{len(y)}", cfg.seed, cfg.eval_batch_size)
        for label, system in systems.items():
            clean = defended_accuracy(system, x, y, adversarial=False, batch_size=cfg.eval_batch_size)
            attacked = defended_accuracy(system, adv.x_adv, y, adversarial=True, batch_size=cfg.eval_batch_size)
            rows.append({"attack": name, "defense": label, "images": len(y), **overrides,
                         "clean_accuracy": clean["accuracy"], "clean_rejected": clean["detected"],
                         "accuracy": attacked["accuracy"], "detected": attacked["detected"],
                         "classified": attacked["classified"]})
    return rows


def white_box(cfg: Config, systems: dict[str, tuple[nn.Module, str]], names: tuple[str, ...],
              **overrides) -> list[dict]:
    """Accuracy of each defended system on attacks crafted against that same system, end to end.

    ``systems`` maps a label to ``(system, key)``: the defended system as in :func:`gray_box` and
    a content key of the weights the attack differentiates through, so that each adversarial set
    is crafted once and cached.
    """
    rows = []
    for name in names:
        n = attack_slice(cfg, name)
        x, y = data.load(cfg.dataset, "test", n)
        params = {**attack_overrides(cfg, name), **overrides}
        for label, (system, key) in systems.items():
            attack = attacks.build(name, system, cfg.dataset, **params)
            adv = craft(attack, x, y, key, f"{cfg.dataset}/test/first-{len(y)}", cfg.seed, cfg.eval_batch_size)
            attacked = defended_accuracy(system, adv.x_adv, y, adversarial=True, batch_size=cfg.eval_batch_size)
            rows.append({"attack": name, "defense": label, "images": len(y), **overrides,
                         "accuracy": attacked["accuracy"], "detected": attacked["detected"],
                         "classified": attacked["classified"], "craft_s": adv.craft_s})
    return rows


def jacobian_augmentation(substitute: nn.Module, x: torch.Tensor, labels: torch.Tensor, lam: float) -> torch.Tensor:
    """Papernot et al.'s new points: ``clip(x + lam · sign(∂F_label(x)/∂x))``, F the substitute's logits."""
    x = x.clone().requires_grad_(True)
    logit = substitute(x).gather(1, labels.view(-1, 1)).sum()
    (grad,) = torch.autograd.grad(logit, x)
    return (x + lam * grad.sign()).clamp(0, 1).detach()


def substitute(cfg: Config, target: nn.Module, target_key: str) -> Trained:
    """The black-box attacker's substitute for ``target``, trained on the target's labels (or loaded).

    Round r trains ``bb_epochs`` epochs on the current set, then (except after the last round)
    doubles it by Jacobian-based augmentation with step ``-lam`` for rounds 0-2 and ``+lam`` after,
    as in CleverHans' tutorial. Augmented points are clipped to the image range [0, 1].
    """
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = substitute_mlp(cfg.dataset).to(device)
    key = cache.content_key(kind="substitute", target=target_key, holdout=cfg.bb_holdout, rounds=cfg.bb_rounds,
                            epochs=cfg.bb_epochs, lam=cfg.bb_lambda, lr=SUBSTITUTE_LR, batch=SUBSTITUTE_BATCH,
                            seed=cfg.seed, code=TRAINING_CODE_VERSION)

    def train(model: nn.Module, checkpoint: Path) -> list[dict]:
        x, _ = data.load(cfg.dataset, "test", cfg.bb_holdout)
        opt = make_optimizer("adam", model.parameters(), SUBSTITUTE_LR)
        history = []
        for r in range(cfg.bb_rounds):
            labels = predict_logits(target, x, cfg.eval_batch_size).argmax(1)  # the only thing the attacker sees
            fit(model, (x, labels), cross_entropy, opt, cfg.bb_epochs, SUBSTITUTE_BATCH, cfg.seed + r, desc=f"substitute round {r}")
            agree = (predict_logits(model, x, cfg.eval_batch_size).argmax(1) == labels).float().mean().item()
            history.append({"epoch": r + 1, "training_points": len(x), "train_agreement": agree})
            if r < cfg.bb_rounds - 1:
                lam = cfg.bb_lambda * (1 if r >= 3 else -1)
                new = torch.cat([jacobian_augmentation(model, xb.to(device), yb.to(device), lam).cpu()
                                 for xb, yb in zip(x.split(cfg.eval_batch_size), labels.split(cfg.eval_batch_size))])
                x = torch.cat([x, new])
        return history

    meta = {"config": cfg.to_dict(), "target_key": target_key}
    return load_or_train("substitute", key, model, train, meta)


def black_box(cfg: Config, systems: dict[str, tuple[nn.Module, str]], names: tuple[str, ...],
              **overrides) -> list[dict]:
    """Accuracy of each defended system on attacks crafted against its own substitute and transferred.

    Evaluated on the test images after the first ``bb_holdout`` (as many as the attack's slice
    allows); each row also reports how often substitute and target agree on those clean images.
    """
    rows = []
    for label, (system, key) in systems.items():
        sub = substitute(cfg, system, key)
        for name in names:
            n = attack_slice(cfg, name)
            x, y = data.load(cfg.dataset, "test", None if n is None else cfg.bb_holdout + n)
            x, y = x[cfg.bb_holdout:], y[cfg.bb_holdout:]
            params = {**attack_overrides(cfg, name), **overrides}
            attack = attacks.build(name, sub.model, cfg.dataset, **params)
            adv = craft(attack, x, y, sub.key, f"{cfg.dataset}/test/{cfg.bb_holdout}+{len(y)}", cfg.seed, cfg.eval_batch_size)
            attacked = defended_accuracy(system, adv.x_adv, y, adversarial=True, batch_size=cfg.eval_batch_size)
            agreement = (predict_logits(sub.model, x, cfg.eval_batch_size).argmax(1)
                         == predict_logits(system, x, cfg.eval_batch_size).argmax(1)).float().mean().item()
            rows.append({"attack": name, "defense": label, "images": len(y), **overrides,
                         "accuracy": attacked["accuracy"], "detected": attacked["detected"],
                         "classified": attacked["classified"], "substitute_agreement": agreement,
                         "substitute_points": sub.history[-1]["training_points"]})
    return rows
