"""What the adaptive-evaluation chapter shows: one call per computed result, recorded with provenance."""
from __future__ import annotations

import time
from typing import Callable, TypeVar

import pandas as pd

from . import adaptive, data, defenses, paper, results, sanity, threat_models
from .config import Config
from .defenses import Defended
from .reports import DEFENSE_KEYS, defended_systems
from .runtime import resolve_device
from .sparsity import activation_stats, activations
from .training import classifier

T = TypeVar("T")

# label -> (denoiser, config changes). beta 1 and mu 0.1 are the book's DDSA (chapter 4).
ABLATION: dict[str, tuple[str, dict]] = {
    "DDA (no sparsity)": ("dda", {}),
    "mu 0.05": ("ddsa", {"sparsity_mu": 0.05}),
    "mu 0.1 (DDSA)": ("ddsa", {}),
    "mu 0.2": ("ddsa", {"sparsity_mu": 0.2}),
    "mu 0.3": ("ddsa", {"sparsity_mu": 0.3}),
    "mu 0.1, beta 10": ("ddsa", {"sparsity_beta": 10.0}),
}


def _frame_for_json(frame: pd.DataFrame) -> list[dict]:
    """Rows without the per-image flags, plus the indices of the images each attack broke."""
    out = []
    for row in frame.to_dict("records"):
        flags = row.pop("robust")
        out.append({**row, "broken": (~flags).nonzero().squeeze(1).tolist()})
    return out


def _timed(wall: dict[str, float], name: str, fn: Callable[[], T]) -> T:
    """``fn()``, with its wall time stored in ``wall[name]``."""
    start = time.perf_counter()
    out = fn()
    wall[name] = time.perf_counter() - start
    return out


def adaptive_run(cfg: Config) -> dict:
    """The battery on every defense, the sanity-check curves and table; recorded as ``adaptive``."""
    t0 = time.perf_counter()
    systems = defended_systems(cfg)
    wall: dict[str, float] = {}
    battery = _timed(wall, "battery", lambda: adaptive.battery(cfg, systems))
    eps = _timed(wall, "eps_curve", lambda: sanity.curve(cfg, systems, "eps", sanity.EPS_GRID))
    steps = _timed(wall, "steps_curve", lambda: sanity.curve(cfg, systems, "steps", sanity.STEPS_GRID))
    restarts = _timed(wall, "restarts", lambda: sanity.curve(cfg, systems, "restarts", (cfg.adaptive_restarts, 2 * cfg.adaptive_restarts)))
    unbounded = _timed(wall, "unbounded", lambda: sanity.curve(cfg, systems, "eps", (1.0,)))
    weaker = _timed(wall, "gray_black_pgd", lambda: weaker_threat_models(cfg, systems))
    table = sanity.checks(battery, eps, steps, restarts, unbounded, weaker)
    out = {"battery": _frame_for_json(battery), "eps_curve": _frame_for_json(eps), "steps_curve": _frame_for_json(steps),
           "restarts": _frame_for_json(restarts), "unbounded": _frame_for_json(unbounded),
           "weaker": weaker.to_dict("records"), "checks": table.to_dict("records"),
           "keys": {label: key for label, (_, key) in systems.items()}}
    results.record("adaptive", cfg, out, {**wall, "this_run": time.perf_counter() - t0}, resolve_device(cfg.device))
    return {**out, "frames": {"battery": battery, "eps": eps, "steps": steps, "restarts": restarts, "checks": table}}


def detector_aware_run(cfg: Config) -> pd.DataFrame:
    """MagNet white-box with its detectors in the loop: the adaptive battery's detector-aware attack
    alone (cached, so chapter 7 reuses it). Empty off MNIST, where the paper has no MagNet."""
    if cfg.dataset != "mnist":
        return pd.DataFrame(columns=["defense", "attack", "eps", "images", "accuracy"])
    return adaptive.battery(cfg, defended_systems(cfg, only=("MagNet",)), ("detector-aware",))


MNIST_ONLY_REASON = "MagNet is evaluated on MNIST only"  # as in the paper
MAGNET_MNIST_ONLY = f"not run ({MNIST_ONLY_REASON})"


def detector_aware_table(battery: pd.DataFrame, steps: int, restarts: int) -> pd.DataFrame | str:
    """The detector-aware rows of a battery as a Table 9 supplement (accuracy, eps, steps, restarts,
    images), or :data:`MAGNET_MNIST_ONLY` when the battery has none."""
    rows = battery[battery.attack == "detector-aware"]
    if rows.empty:
        return MAGNET_MNIST_ONLY
    return pd.DataFrame({"eps": rows.eps.values, "steps": steps, "restarts": restarts,
                         "images": rows.images.values, "accuracy": rows.accuracy.values},
                        index=pd.Index(rows.defense + ", detectors in the loop", name="defense"))


def detector_aware_text(table: pd.DataFrame | str) -> str:
    """MagNet's accuracy under the detector-aware attack as glue text, or why there is none."""
    return table if isinstance(table, str) else f"{table.accuracy.iloc[0]:.3f}"


def weaker_threat_models(cfg: Config, systems: dict) -> pd.DataFrame:
    """PGD accuracy of each system gray-box and black-box (the paper's PGD; cached with chapter 6's)."""
    clf = classifier(cfg)
    gray = threat_models.gray_box(cfg, clf, {label: s for label, (s, _) in systems.items()}, ("pgd",))
    black = threat_models.black_box(cfg, systems, ("pgd",))
    rows = [{"defense": r["defense"], "threat_model": tm, "accuracy": r["accuracy"], "images": r["images"]}
            for tm, part in (("gray-box", gray), ("black-box", black)) for r in part]
    return pd.DataFrame(rows)


def ablation_run(cfg: Config) -> dict:
    """Sparsity ablation: each :data:`ABLATION` denoiser's clean, gray-box and adaptive PGD accuracy; recorded."""
    t0 = time.perf_counter()
    clf = classifier(cfg)
    rows, systems, wall = [], {}, {}
    for label, (name, change) in ABLATION.items():
        den = defenses.denoiser(cfg.replace(**change), name)
        wall[f"train {label}"] = den.train_wall_s
        systems[label] = (Defended(den.model, clf.model), f"{den.key}/{clf.key}")
    gray = pd.DataFrame(threat_models.gray_box(cfg, clf, {k: s for k, (s, _) in systems.items()}, ("fgsm", "pgd")))
    white = adaptive.battery(cfg, systems, ("pgd",), restarts=1)
    x = data.load(cfg.dataset, "test", cfg.adaptive_size)[0]
    for label, (system, _) in systems.items():
        g = gray[gray.defense == label].set_index("attack")
        act = activations(system.defense, x)
        rows.append({"denoiser": label, "clean_accuracy": g.clean_accuracy.iloc[0],
                     "gray_fgsm": g.accuracy["fgsm"], "gray_pgd": g.accuracy["pgd"],
                     "white_pgd": white[(white.defense == label) & (white.attack == "pgd")].accuracy.iloc[0],
                     **activation_stats(act)})
    out = {"rows": rows, "images_gray": int(gray.images.iloc[0]), "images_white": int(white.images.iloc[0])}
    results.record("sparsity_ablation", cfg, out, {**wall, "this_run": time.perf_counter() - t0}, resolve_device(cfg.device))
    return out


SEED_DEFENSES = ("No defense", "DDSA", "DDA")  # the key cells' systems: retrained from scratch per seed


def seeds_run(cfg: Config, seeds: tuple[int, ...] = (0, 1, 2)) -> dict:
    """The key cells for each seed, classifier and denoisers retrained per seed: clean accuracy, the
    paper's PGD gray-box and white-box, and the adaptive PGD (margin, restarts); recorded as ``seeds``."""
    if not seeds:
        raise ValueError("seeds must name at least one seed; got ()")
    t0, wall, rows, restarted = time.perf_counter(), {}, [], []
    for seed in seeds:
        start = time.perf_counter()
        c = cfg.replace(seed=seed)
        clf = classifier(c)
        systems = defended_systems(c, only=SEED_DEFENSES, clf=clf)
        restarted += [{"seed": seed, "defense": label, "collapsed_again": note["collapsed_again"]}
                      for label in ("DDSA", "DDA") if (note := systems[label][0].meta.get("restarted"))]
        gray = threat_models.gray_box(c, clf, {k: m for k, (m, _) in systems.items()}, ("pgd",))
        cells = {("clean", r["defense"]): r["clean_accuracy"] for r in gray}
        cells |= {("gray-box PGD", r["defense"]): r["accuracy"] for r in gray}
        cells |= {("white-box PGD", r["defense"]): r["accuracy"] for r in threat_models.white_box(c, systems, ("pgd",))}
        battery = adaptive.battery(c, systems, ("pgd",))
        cells |= {("adaptive PGD", r.defense): r.accuracy for r in battery[battery.attack == "pgd"].itertuples()}
        rows += [{"seed": seed, "cell": cell, "defense": label, "accuracy": acc} for (cell, label), acc in cells.items()]
        wall[f"seed {seed}"] = time.perf_counter() - start
    images = {"paper PGD": int(gray[0]["images"]), "adaptive PGD": int(battery.images.iloc[0])}  # alike per seed
    out = {"rows": rows, "seeds": list(seeds), "images": images, "restarted": restarted}
    results.record("seeds", cfg, out, {**wall, "this_run": time.perf_counter() - t0}, resolve_device(cfg.device))
    return out


def seed_table(run: dict) -> pd.DataFrame:
    """Mean and standard deviation (over seeds, ddof 1) of each key cell, one row per cell and defense."""
    frame = pd.DataFrame(run["rows"])
    table = frame.groupby(["cell", "defense"], sort=False).accuracy.agg(["mean", "std", "min", "max", "count"])
    return table.rename(columns={"count": "seeds"})


def failed_seeds(run: dict, threshold: float = 0.5) -> pd.Series:
    """Clean accuracy behind DDSA of each seed whose denoiser failed to train (below ``threshold``;
    a denoiser that trained leaves the classifier far above chance)."""
    clean = pd.DataFrame(run["rows"]).query("cell == 'clean' and defense == 'DDSA'").set_index("seed").accuracy
    return clean[clean < threshold]


SEED_GLUE_KEYS = ("ddsa_gray", "ddsa_white", "ddsa_adaptive", "dda_gray", "dda_adaptive", "seeds", "failed", "failed_which",
                  "restarted", "which")


def restarted_text(run: dict) -> str:
    """Which denoisers of a seeds run had their collapsed first epoch rerun by the guard of
    :func:`ddsa_core.defenses.denoiser` (and whether it collapsed again), or that the run predates the record."""
    if "restarted" not in run:
        return "not recorded by this run"
    return ", ".join(f"{r['defense']} seed {r['seed']}" + (" (collapsed again)" if r["collapsed_again"] else "")
                     for r in run["restarted"]) or "none"


def _seed_list(seeds: list[int]) -> str:
    """"seed 0", or "seeds 0, 1 and 2"."""
    names = [str(s) for s in seeds]
    if len(names) < 2:
        return f"seed {names[0]}" if names else "no seed"
    return f"seeds {', '.join(names[:-1])} and {names[-1]}"


def seed_glue(run: dict, prefix: str = "s_") -> dict[str, str]:
    """The seed section's numbers as text, keyed ``prefix`` + :data:`SEED_GLUE_KEYS`: mean ± std of
    the key cells, and the seeds that failed to train."""
    table = seed_table(run)

    def mean_sd(cell: str, label: str) -> str:
        row = table.loc[(cell, label)]
        return f"{100 * row['mean']:.1f}%" + (f" ± {100 * row['std']:.1f}" if row["seeds"] > 1 else " (one seed)")

    failed = failed_seeds(run)
    values = (mean_sd("gray-box PGD", "DDSA"), mean_sd("white-box PGD", "DDSA"), mean_sd("adaptive PGD", "DDSA"),
              mean_sd("gray-box PGD", "DDA"), mean_sd("adaptive PGD", "DDA"),
              f"{len(run['seeds'])} seed" + ("" if len(run["seeds"]) == 1 else "s"),
              f"{len(failed)} of {len(run['seeds'])}",
              ", ".join(f"seed {s}: {a:.3f}" for s, a in failed.items()) or "none", restarted_text(run),
              _seed_list(run["seeds"]))
    return {prefix + key: value for key, value in zip(SEED_GLUE_KEYS, values, strict=True)}


def paper_white_box_pgd(dataset: str) -> dict[str, float]:
    """The paper's white-box PGD accuracy per defense label (Table 9), where it reports one."""
    table = paper.WHITE_BOX.get(dataset, {})
    labels = {key: label for label, key in DEFENSE_KEYS.items()}
    return {labels[k]: v["pgd"] for k, v in table.items() if "pgd" in v}


#: "Near chance", for the verdict: at most this many times chance accuracy (:data:`sanity.CHANCE`).
NEAR_CHANCE = 2
#: An adaptive worst case this far below gray-box PGD accuracy means the gray-box figure overstates the defense.
OVERSTATED_BY = 0.1
#: The verdict's categories, in the order :func:`verdict_category` tests them.
VERDICT_CATEGORIES = ("no robustness", "gray-box only", "overstated", "holds")


def verdict_category(worst: float, gray: float) -> str:
    """DDSA's verdict from its adaptive worst case and its gray-box PGD accuracy: "no robustness" (both
    near chance), "gray-box only" (the worst case near chance), "overstated" (the worst case more than
    :data:`OVERSTATED_BY` below gray-box) or "holds"."""
    near = NEAR_CHANCE * sanity.CHANCE
    if worst <= near:
        return VERDICT_CATEGORIES[0] if gray <= near else VERDICT_CATEGORIES[1]
    return VERDICT_CATEGORIES[2] if worst < gray - OVERSTATED_BY else VERDICT_CATEGORIES[3]


def verdict(battery: pd.DataFrame, weaker: pd.DataFrame, dataset: str) -> dict[str, str]:
    """The numbers of the chapter's verdict, as text to glue: each defense's worst case beside its gray-box PGD and the paper's
    white-box PGD, the image counts of both (``images``, ``gray_images``: the gray-box rows may use more), and
    DDSA's :func:`verdict_category` (``category``)."""
    worst = battery[battery.attack == "worst case"].set_index("defense").accuracy
    gray_rows = weaker[weaker.threat_model == "gray-box"].set_index("defense")
    gray = gray_rows.accuracy
    table9 = paper_white_box_pgd(dataset)
    breaker = {}
    for label in worst.index:  # the attack with the lowest accuracy on this defense
        rows = battery[(battery.defense == label) & ~battery.attack.isin(["worst case", "autoattack"])]
        best = rows[rows.accuracy == rows.accuracy.min()].attack.tolist()  # every attack tied at the lowest
        breaker[label] = " and ".join([", ".join(best[:-1]), best[-1]] if len(best) > 1 else best)
    out = {"images": f"{int(battery.images.iloc[0]):,}", "gray_images": f"{int(gray_rows.images.iloc[0]):,}"}
    for label, key in (("DDSA", "ddsa"), ("DDA", "dda"), ("MagNet", "magnet"), ("Adv. training", "adv"), ("No defense", "none")):
        if label in worst.index:
            out[f"{key}_worst"] = f"{100 * worst[label]:.1f}%"
            out[f"{key}_gray_pgd"] = f"{100 * gray.get(label, float('nan')):.1f}%"
            out[f"{key}_breaker"] = breaker[label]
            out[f"{key}_paper_white_pgd"] = f"{100 * table9[label]:.1f}%" if label in table9 else "not reported"
        else:  # MagNet runs on MNIST only, as in the paper: its keys still exist for the chapter's prose
            for part in ("worst", "gray_pgd", "breaker", "paper_white_pgd"):
                out[f"{key}_{part}"] = f"not run on {dataset}"
    out["category"] = verdict_category(worst.get("DDSA", float("nan")), gray.get("DDSA", float("nan")))
    return out
