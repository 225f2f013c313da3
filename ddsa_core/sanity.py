"""Sanity checks of an evaluation (Carlini et al. 2019, Sec. 5), each passed or flagged with its numbers.

Curves use each system's strongest gradient attack of :mod:`ddsa_core.adaptive` with one random
start: PGD on the logit margin, or the detector-aware PGD for MagNet (a plain attack's large
perturbations are simply rejected by its detectors, which says nothing about robustness).
Comparisons on the same images allow one image of slack; comparisons across different image
slices (gray- and black-box rows) allow a 95% binomial margin.
"""
from __future__ import annotations

import math

import pandas as pd
from torch import nn

from . import adaptive
from .baselines import MagNet
from .config import Config
from .evaluation import System

CHANCE = 0.1  # ten classes
EPS_GRID = (0.1, 0.2, 0.3, 0.4, 0.5)
STEPS_GRID = (10, 20, 50, 100, 200)


def strongest(system: nn.Module) -> str:
    """The battery attack the curves use for ``system``."""
    return "detector-aware" if isinstance(system, MagNet) else "pgd"


def curve(cfg: Config, systems: dict[str, System], vary: str, values: tuple, **fixed) -> pd.DataFrame:
    """Robust accuracy of each system under its :func:`strongest` attack as ``vary`` ("eps", "steps" or "restarts") takes ``values``."""
    if vary not in ("eps", "steps", "restarts"):
        raise ValueError(f"vary must be 'eps', 'steps' or 'restarts'; got {vary!r}")
    parts = []
    for label, (system, key) in systems.items():
        for value in values:
            settings = {"restarts": 1, **fixed, vary: value}
            frame = adaptive.battery(cfg, {label: (system, key)}, (strongest(system),), **settings)
            frame = frame[frame.attack != "worst case"].assign(**{vary: value})
            parts.append(frame)
    return pd.concat(parts, ignore_index=True)


def binomial_margin(p: float, n: int, continuity: bool = True) -> float:
    """95% normal-approximation half-width of an accuracy ``p`` measured on ``n`` images, plus one
    image (1/n) when ``continuity``, so a difference of a single image never fails a check."""
    return 1.96 * math.sqrt(max(p * (1 - p), 1e-12) / n) + (1 / n if continuity else 0.0)


def checks(battery: pd.DataFrame, eps: pd.DataFrame, steps: pd.DataFrame, restarts: pd.DataFrame,
           unbounded: pd.DataFrame, weaker: pd.DataFrame) -> pd.DataFrame:
    """One row per (check, defense): ``passed`` and the numbers behind it.

    ``weaker`` has columns defense, threat_model, accuracy, images: the gray- and black-box PGD rows.
    """
    rows = []
    add = lambda check, label, ok, detail: rows.append({"check": check, "defense": label, "passed": bool(ok), "detail": detail})
    for label in dict.fromkeys(battery.defense):
        acc = battery[battery.defense == label].set_index("attack").accuracy
        n = int(battery[battery.defense == label].images.iloc[0])
        slack = 1 / n
        e = eps[eps.defense == label].set_index("eps").accuracy.sort_index()
        rises = [f"{a:g}->{b:g}" for a, b in zip(e.index, e.index[1:]) if e[b] > e[a] + slack]
        add("accuracy falls as eps grows", label, not rises,
            "; ".join(f"eps {k:g}: {v:.2f}" for k, v in e.items()) + (f" (rises at {', '.join(rises)})" if rises else ""))
        top = e.index.max()
        add(f"chance level by eps {top:g}", label, e[top] <= CHANCE + slack, f"{e[top]:.2f} at eps {top:g} (chance {CHANCE:.2f})")
        s = steps[steps.defense == label].set_index("steps").accuracy.sort_index()
        ups = [f"{a}->{2 * a}" for a in s.index if 2 * a in s.index and s[2 * a] > s[a] + slack]
        add("doubling iterations does not raise accuracy", label, not ups,
            "; ".join(f"{k} steps: {v:.2f}" for k, v in s.items()) + (f" (rises at {', '.join(ups)})" if ups else ""))
        r = restarts[restarts.defense == label].set_index("restarts").accuracy.sort_index()
        add("doubling restarts does not raise accuracy", label, r.iloc[-1] <= r.iloc[0] + slack,
            "; ".join(f"{k} restarts: {v:.2f}" for k, v in r.items()))
        gradient = acc[[a for a in adaptive.GRADIENT_ATTACKS if a in acc.index]]
        add("gradient-free (Square) does no better than gradient attacks", label,
            acc["square"] >= gradient.min() - slack,
            f"Square {acc['square']:.2f}, best gradient attack {gradient.idxmin()} {gradient.min():.2f}")
        worst = acc["worst case"]
        others = weaker[weaker.defense == label]
        bad = [f"{t.threat_model} {t.accuracy:.2f}" for t in others.itertuples()
               if worst > t.accuracy + binomial_margin(t.accuracy, int(t.images))]
        add("white-box no weaker than gray- and black-box", label, not bad,
            f"white-box worst case {worst:.2f}; " + ", ".join(f"{t.threat_model} PGD {t.accuracy:.2f}" for t in others.itertuples()))
        u = unbounded[unbounded.defense == label].accuracy.iloc[0]
        add("an unbounded attack reaches 100% success", label, u <= 0.0, f"accuracy {u:.3f} at eps 1")
    return pd.DataFrame(rows)
