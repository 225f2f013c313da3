"""Adaptive evaluation (beyond the paper): attacks run through the whole defended system.

Following Carlini et al. 2019 ("On Evaluating Adversarial Robustness") every attack here
differentiates (or queries) ``classifier(defense(x))`` end to end, and a defense's robust
accuracy is the per-example worst case over the whole battery:

==============  ===============================================================================
pgd             PGD, ``adaptive_steps`` steps of 2.5·eps/steps, ``adaptive_restarts`` random
                starts, on the logit margin :func:`ddsa_core.attacks.lse_margin` (CE's gradient
                direction without its float32 underflow, chapter 3)
apgd-ce         APGD with cross-entropy (Croce & Hein 2020), ``adaptive_steps`` iterations
apgd-t          targeted APGD on the DLR loss, 9 target classes
fab-t           targeted FAB, 9 target classes
square          Square, ``square_queries`` queries (gradient-free: it sees no masked gradient)
autoattack      AutoAttack standard: the per-example worst case of the four attacks above
bpda            PGD with the defense replaced by the identity on the backward pass (BPDA,
                Athalye et al. 2018); purifiers only (DDSA, DDA, MagNet's reformer)
detector-aware  PGD on MagNet that also drives every detector's error under its threshold
==============  ===============================================================================

An input counts as robust when the defended system classifies it correctly or rejects it
(MagNet's detectors), as in the paper's tables. Every adversarial set is cached under the
system's weights, the attack and its parameters, the images and the seed.
"""
from __future__ import annotations

import hashlib
import time

import pandas as pd
import torch
import torchattacks
from torch import Tensor, nn

from . import data
from .adversarial import craft
from .attacks import _check_inputs, _project, lse_margin
from .baselines import MagNet
from .config import Config
from .defenses import Defended
from .evaluation import System, detected, predict_logits

GRADIENT_ATTACKS = ("pgd", "apgd-ce", "apgd-t", "fab-t", "bpda", "detector-aware")
AUTOATTACK = ("apgd-ce", "apgd-t", "fab-t", "square")  # AutoAttack's standard version, in its order
BATTERY = ("pgd", "apgd-ce", "apgd-t", "fab-t", "square", "bpda", "detector-aware")
DETECTOR_WEIGHT, MARGIN_CAP = 10.0, 5.0  # detector-aware objective: see DetectorAware


def purifier(system: nn.Module) -> nn.Module | None:
    """The preprocessing a system puts in front of its classifier (DDSA, DDA, MagNet's reformer), or None."""
    if isinstance(system, Defended):
        return system.defense
    if isinstance(system, MagNet):
        return _Clamped(system.reformer)
    return None


class _Clamped(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(x).clamp(0, 1)


class BPDA(nn.Module):
    """``classifier(defense(x))`` forward, with d defense(x)/dx taken as the identity backward (straight-through)."""

    def __init__(self, defense: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.defense, self.classifier = defense, classifier

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(x + (self.defense(x) - x).detach())


def state_digest(module: nn.Module) -> str:
    """SHA-256 (20 hex) of every parameter and buffer of ``module``: the weights an attack sees."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


def robust(system: nn.Module, x_adv: Tensor, y: Tensor, batch_size: int = 500) -> Tensor:
    """Per image: the system classifies ``x_adv`` correctly or rejects it."""
    correct = predict_logits(system, x_adv, batch_size).argmax(1) == y.cpu()
    return correct | detected(system, x_adv, batch_size)


class _Adaptive:
    """Common part of the battery's attacks: the system, validated inputs, eval mode, a ``params`` dict."""

    name = ""

    def __init__(self, model: nn.Module, dataset: str, **params) -> None:
        self.model, self.dataset = model, dataset
        self.params = {"name": self.name, "dataset": dataset, **params}
        self.last_success: Tensor | None = None

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        _check_inputs(x, y, self.dataset)
        modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        try:
            with torch.enable_grad():
                return self._run(x.detach(), y).detach()
        finally:
            for module, training in modes:
                module.training = training

    def _run(self, x: Tensor, y: Tensor) -> Tensor:
        raise NotImplementedError


class RestartPGD(_Adaptive):
    """PGD with random restarts that keeps, per image, the first iterate that succeeds (else the last).

    Maximises :meth:`objective` with steps ``eps_iter · sign(grad)`` in the L-inf ball; success is
    judged on the true forward pass of ``model`` at every iterate.
    """

    name = "pgd"

    def __init__(self, model: nn.Module, dataset: str, eps: float, steps: int, restarts: int, **extra) -> None:
        super().__init__(model, dataset, eps=eps, steps=steps, restarts=restarts, eps_iter=2.5 * eps / steps, **extra)
        self.eps, self.steps, self.restarts, self.eps_iter = eps, steps, restarts, 2.5 * eps / steps

    def objective(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Per-image value to maximise, and which images are already adversarial."""
        logits = self.model(x)
        return lse_margin(logits, y), logits.argmax(1) != y

    def _run(self, x: Tensor, y: Tensor) -> Tensor:
        best, done = x.clone(), torch.zeros(len(y), dtype=torch.bool, device=x.device)
        for _ in range(self.restarts):
            active = (~done).nonzero().squeeze(1)  # a restart runs only on images not yet broken
            if len(active) == 0:
                break
            x_adv = (x[active] + torch.empty_like(x[active]).uniform_(-self.eps, self.eps)).clamp(0, 1)
            for step in range(self.steps + 1):
                x_adv.requires_grad_(True)
                value, success = self.objective(x_adv, y[active])
                best[active[success]], done[active[success]] = x_adv.detach()[success], True
                keep = ~success  # an image leaves the batch at its first success
                if step == self.steps or not bool(keep.any()):
                    best[active[keep]] = x_adv.detach()[keep]  # the last iterate of the latest restart
                    break
                (grad,) = torch.autograd.grad(value.sum(), x_adv)
                x_adv = _project(x_adv.detach() + self.eps_iter * grad.sign(), x[active], self.eps)[keep]
                active = active[keep]
        self.last_success = done.cpu()
        return best


class DetectorAware(RestartPGD):
    """PGD on MagNet that must fool the classifier *and* pass every detector (Carlini & Wagner 2017's idea).

    Maximises ``min(L, MARGIN_CAP) − DETECTOR_WEIGHT · Σ_d relu(score_d / threshold_d − 1)``, L the
    logit margin of ``classifier(reformer(x))``: once misclassified, it spends its steps on the detectors.
    """

    name = "detector-aware"

    def objective(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        logits = self.model(x)
        over = sum((s / getattr(self.model, f"threshold_{n}") - 1).clamp_min(0) for n, s in self.model.scores(x).items())
        value = lse_margin(logits, y).clamp(max=MARGIN_CAP) - DETECTOR_WEIGHT * over
        return value, (logits.argmax(1) != y) & (over == 0)


class TorchAttacksRun(_Adaptive):
    """One of torchattacks' APGD-CE, APGD-T, FAB-T or Square with the reference (AutoAttack) settings.

    torchattacks reseeds the global RNG on each call; that is confined here with ``fork_rng``.
    """

    def __init__(self, model: nn.Module, dataset: str, name: str, eps: float, steps: int, queries: int, seed: int) -> None:
        self.name = name
        settings = {"square": {"queries": queries}}.get(name, {"steps": steps})
        super().__init__(model, dataset, eps=eps, seed=seed, **settings)
        common = dict(norm="Linf", eps=eps, seed=seed, n_restarts=1)
        self.attack = {
            "apgd-ce": lambda: torchattacks.APGD(model, steps=steps, loss="ce", **common),
            "apgd-t": lambda: torchattacks.APGDT(model, steps=steps, n_classes=10, **common),
            "fab-t": lambda: torchattacks.FAB(model, steps=steps, multi_targeted=True, n_classes=10, **common),
            "square": lambda: torchattacks.Square(model, n_queries=queries, p_init=0.8, loss="margin", **common),
        }[name]()

    def _run(self, x: Tensor, y: Tensor) -> Tensor:
        self.attack.set_device(x.device)
        with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
            x_adv = self.attack(x, y)
        with torch.no_grad():
            self.last_success = (self.model(x_adv).argmax(1) != y).cpu()
        return x_adv


def build_attack(name: str, system: nn.Module, cfg: Config, eps: float | None = None, steps: int | None = None,
          restarts: int | None = None) -> _Adaptive | None:
    """Attack ``name`` of :data:`BATTERY` against ``system``, or None where it does not apply."""
    eps = cfg.eps if eps is None else eps
    steps, restarts = steps or cfg.adaptive_steps, restarts or cfg.adaptive_restarts
    if name == "pgd":
        return RestartPGD(system, cfg.dataset, eps, steps, restarts)
    if name == "bpda":
        defense = purifier(system)
        if defense is None:
            return None
        attack = RestartPGD(BPDA(defense, system.classifier), cfg.dataset, eps, steps, restarts)
        attack.name = attack.params["name"] = "bpda"
        return attack
    if name == "detector-aware":
        return DetectorAware(system, cfg.dataset, eps, steps, restarts) if isinstance(system, MagNet) else None
    if name in AUTOATTACK:
        return TorchAttacksRun(system, cfg.dataset, name, eps, steps, cfg.square_queries, cfg.seed)
    raise ValueError(f"adaptive attack must be one of {BATTERY}; got {name!r}")


def _check_names(names: tuple[str, ...]) -> None:
    unknown = [n for n in names if n not in BATTERY]
    if unknown:
        raise ValueError(f"adaptive attacks {unknown} unknown; allowed: {BATTERY}")


def battery(cfg: Config, systems: dict[str, System], names: tuple[str, ...] = BATTERY,
            n: int | None = None, eps: float | None = None, **settings) -> pd.DataFrame:
    """Robust accuracy of each system under each attack, plus ``autoattack`` and the per-example ``worst case``.

    One tidy row per (defense, attack) with ``accuracy``, ``images``, ``eps``, ``craft_s`` and the
    per-image ``robust`` flags (a bool tensor). ``settings`` (``steps``, ``restarts``) override the
    profile's. Attacks that do not apply to a system (BPDA without a purifier, detector-aware
    without detectors) are left out.
    """
    _check_names(names)
    eps = cfg.eps if eps is None else eps
    x, y = data.load(cfg.dataset, "test", n or cfg.adaptive_size)
    rows = []
    for label, (system, key) in systems.items():
        weights = f"{key}/{state_digest(system)}"
        flags: dict[str, Tensor] = {}
        for name in names:
            attack = build_attack(name, system, cfg, eps, **settings)
            if attack is None:
                continue
            t0 = time.perf_counter()
            adv = craft(attack, x, y, weights, f"{cfg.dataset}/test/first-{len(y)}", cfg.seed, cfg.eval_batch_size)
            flags[name] = robust(system, adv.x_adv, y, cfg.eval_batch_size)
            rows.append(_row(label, name, eps, flags[name], adv.craft_s if not adv.cached else time.perf_counter() - t0))
        if all(a in flags for a in AUTOATTACK):
            rows.append(_row(label, "autoattack", eps, torch.stack([flags[a] for a in AUTOATTACK]).all(0), None))
        if flags:
            rows.append(_row(label, "worst case", eps, torch.stack(list(flags.values())).all(0), None))
    return pd.DataFrame(rows)


def _row(defense: str, attack: str, eps: float, flags: Tensor, craft_s: float | None) -> dict:
    return {"defense": defense, "attack": attack, "eps": eps, "images": len(flags),
            "accuracy": flags.float().mean().item(), "craft_s": craft_s, "robust": flags}


def accuracy_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Robust accuracy as attack × defense, in the battery's order, worst case last."""
    order = [a for a in (*BATTERY[:4], "square", "autoattack", *BATTERY[5:], "worst case") if a in set(frame.attack)]
    table = frame.pivot(index="attack", columns="defense", values="accuracy").reindex(order)
    return table[list(dict.fromkeys(frame.defense))]
