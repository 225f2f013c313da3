"""Threat models: who the attack is crafted against, and what is evaluated.

Gray-box (the paper's own threat model, Section III.A): the attacker knows the classifier but
not the defense, so the attacks are crafted against the classifier alone and the adversarial
examples are then classified through ``classifier(defense(x))``. (Black- and white-box come with
the results chapter.)
"""
from __future__ import annotations

from torch import nn

from . import attacks, data
from .adversarial import attack_overrides, attack_slice, craft
from .config import Config
from .evaluation import accuracy
from .training import Trained


def gray_box(cfg: Config, clf: Trained, defenses: dict[str, nn.Module], names: tuple[str, ...],
             **overrides) -> list[dict]:
    """Accuracy of the classifier behind each defense on attacks crafted against the classifier alone.

    ``defenses`` maps a label to a preprocessing module (``nn.Identity()`` is "no defense");
    ``overrides`` (e.g. ``eps=0.1``) replace the profile's attack settings for every attack.
    """
    rows = []
    for name in names:
        n = attack_slice(cfg, name)
        x, y = data.load(cfg.dataset, "test", n)
        params = {**attack_overrides(cfg, name), **overrides}
        attack = attacks.build(name, clf.model, cfg.dataset, **params)
        adv = craft(attack, x, y, clf.key, f"{cfg.dataset}/test/first-{len(y)}", cfg.seed, cfg.eval_batch_size)
        for label, defense in defenses.items():
            pipeline = nn.Sequential(defense, clf.model)
            rows.append({"attack": name, "defense": label, "images": len(y), **overrides,
                         "clean_accuracy": accuracy(pipeline, x, y, cfg.eval_batch_size),
                         "accuracy": accuracy(pipeline, adv.x_adv, y, cfg.eval_batch_size)})
    return rows

