"""What the chapters show: one call per computed result, and the tables beside the paper's."""
from __future__ import annotations

import time

import pandas as pd

from . import data, paper, results
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
