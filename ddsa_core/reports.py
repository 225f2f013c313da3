"""What the chapters show: one call per computed result, and the tables beside the paper's."""
from __future__ import annotations

import time

import pandas as pd

from . import attacks, data, paper, results
from .adversarial import attack_overrides, attack_slice, craft
from .config import Config
from .evaluation import accuracy
from .runtime import resolve_device
from .training import classifier


def classifier_run(cfg: Config) -> dict:
    """Train (or load) the Table 2 classifier of ``cfg``, measure clean test accuracy, record it."""
    t0 = time.perf_counter()
    trained = classifier(cfg)
    x, y = data.load(cfg.dataset, "test", cfg.test_size)
    acc = accuracy(trained.model, x, y, cfg.eval_batch_size)
    out = {
        "test_accuracy": acc,
        "test_size": len(y),
        "history": trained.history,
        "weights_key": trained.key,
        "paper_accuracy": paper.CLEAN_ACCURACY[cfg.dataset],
    }
    wall = {"train": trained.train_wall_s, "this_run": time.perf_counter() - t0}
    results.record("classifier", cfg, out, wall, resolve_device(cfg.device))
    return {**out, "model": trained.model, "loaded_from_cache": trained.cached}


def history_frame(runs: dict[str, dict]) -> pd.DataFrame:
    """Per-epoch training history of several runs in long form (dataset, epoch, metric, value)."""
    rows = [
        {"dataset": name, "epoch": h["epoch"], "metric": k, "value": v}
        for name, run in runs.items() for h in run["history"] for k, v in h.items() if k not in ("epoch", "epoch_s")
    ]
    return pd.DataFrame(rows)


def clean_accuracy_table(runs: dict[str, dict], profile: str) -> pd.DataFrame:
    """Clean test accuracy: the paper's, this run's, and the recorded ``paper``-profile run's (or 'pending')."""
    rows = []
    for ds in runs:
        rec = results.load("paper", ds, "classifier")
        rows.append({
            "dataset": ds,
            "paper": paper.CLEAN_ACCURACY[ds],
            f"ours ({profile}, this run)": runs[ds]["test_accuracy"],
            "ours (paper profile, recorded)": rec["results"]["test_accuracy"] if rec else "pending",
            "test images (this run)": runs[ds]["test_size"],
            "data source": data.data_source(ds),
        })
    return pd.DataFrame(rows).set_index("dataset")


def no_defense_run(cfg: Config, names: tuple[str, ...] = paper.ATTACKS) -> dict:
    """The five attacks against the undefended classifier of ``cfg``: accuracy, norms, cost; recorded."""
    trained = classifier(cfg)
    rows, examples = [], {}
    for name in names:
        n = attack_slice(cfg, name)
        x, y = data.load(cfg.dataset, "test", n)
        attack = attacks.build(name, trained.model, cfg.dataset, **attack_overrides(cfg, name))
        adv = craft(attack, x, y, trained.key, f"{cfg.dataset}/test/first-{len(y)}", cfg.seed, cfg.eval_batch_size)
        delta = (adv.x_adv - x).flatten(1)
        rows.append({
            "attack": name, "images": len(y),
            "clean_accuracy": accuracy(trained.model, x, y, cfg.eval_batch_size),
            "accuracy": accuracy(trained.model, adv.x_adv, y, cfg.eval_batch_size),
            "attack_success": adv.success.float().mean().item(),
            "mean_linf": delta.abs().amax(1).mean().item(), "mean_l2": delta.norm(dim=1).mean().item(),
            "craft_s": adv.craft_s, "params": attack.params,
        })
        examples[name] = (x[:8], adv.x_adv[:8], y[:8])
    wall = {"train_classifier": trained.train_wall_s, **{f"craft_{r['attack']}": r["craft_s"] for r in rows}}
    results.record("attacks_no_defense", cfg, {"rows": rows, "weights_key": trained.key}, wall, resolve_device(cfg.device))
    return {"rows": rows, "examples": examples, "model": trained.model}


def versus_paper(ours: dict[str, float], theirs: dict[str, float], label: str) -> pd.DataFrame:
    """One column group of a results table: the paper's number, ours, and ours minus the paper's."""
    return pd.DataFrame({
        (label, "paper"): pd.Series(theirs),
        (label, "ours"): pd.Series(ours),
        (label, "diff"): pd.Series(ours) - pd.Series(theirs),
    }).loc[list(ours)]


def no_defense_table(run: dict, dataset: str) -> pd.DataFrame:
    """The "No defense" column of Table 7 (MNIST) or Table 8 (CIFAR-10): the paper's and ours."""
    ours = {r["attack"]: r["accuracy"] for r in run["rows"]}
    table = versus_paper(ours, paper.GRAY_BOX[dataset]["no_defense"], "No defense")
    table[("", "images")] = [r["images"] for r in run["rows"]]
    return table


def rows_frame(run: dict) -> pd.DataFrame:
    """A run's per-attack rows (accuracy, success, mean norms, crafting time) as a table."""
    return pd.DataFrame(run["rows"]).drop(columns="params").set_index("attack")
