"""Adversarial sets: each crafted once per content key and cached, then reused by every chapter.

The key covers the attacked model's weights key, the attack and all its parameters, the data
slice and the seed, so a change to any of them crafts a new set and nothing else does.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from . import cache
from .attacks import Attack
from .config import Config
from .runtime import progress


def attack_overrides(cfg: Config, name: str) -> dict:
    """The profile's settings for one attack: eps for the L-inf attacks, iterations for C&W."""
    if name == "cw":
        return {"max_iter": cfg.cw_max_iter, "binary_search_steps": cfg.cw_binary_steps}
    return {"eps": cfg.eps}


def attack_slice(cfg: Config, name: str) -> int | None:
    """How many of the first test images an attack runs on (None: the whole test set)."""
    if name == "cw":
        return cfg.cw_size if cfg.test_size is None else min(cfg.cw_size, cfg.test_size)
    return cfg.attack_size if cfg.attack_size is not None else cfg.test_size


@dataclass
class AdversarialSet:
    """Adversarial examples (on the CPU), which inputs the attack reports as successful, and its cost."""

    x_adv: torch.Tensor
    success: torch.Tensor
    craft_s: float
    cached: bool


def craft(attack: Attack, x: torch.Tensor, y: torch.Tensor, model_key: str, data_desc: str,
          seed: int, batch_size: int = 500) -> AdversarialSet:
    """Run ``attack`` on ``x`` in batches, or load the set crafted before under the same key."""
    key = cache.content_key(kind="adversarial", model=model_key, attack=attack.params, data=data_desc,
                            n=len(y), seed=seed)

    def build():
        device = next(attack.model.parameters()).device
        t0 = time.perf_counter()
        torch.manual_seed(seed)  # random starts (PGD, Rand+FGSM)
        outs, flags = [], []
        for xb, yb in progress(list(zip(x.split(batch_size), y.split(batch_size))), desc=attack.name, unit="batch"):
            adv = attack(xb.to(device), yb.to(device))
            outs.append(adv.cpu())
            flags.append(getattr(attack, "last_success", torch.ones(len(yb), dtype=torch.bool)).cpu())
        meta = {"attack": attack.params, "craft_s": time.perf_counter() - t0}
        return {"x_adv": torch.cat(outs), "success": torch.cat(flags)}, meta

    tensors, meta, hit = cache.cached(cache.artifact_path("adversarial", key), build)
    return AdversarialSet(tensors["x_adv"], tensors["success"], meta["craft_s"], hit)
