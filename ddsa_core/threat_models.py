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
adaptive chapter's). (Black-box comes with the results chapter.)
"""
from __future__ import annotations

from torch import nn

from . import attacks, data
from .adversarial import attack_overrides, attack_slice, craft
from .config import Config
from .evaluation import defended_accuracy
from .training import Trained


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
