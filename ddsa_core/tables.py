"""The tables beside the paper's: frames built from a run's results, live or recorded, with the
paper's number, ours and the difference; the paper's claims measured on both; the adaptive verdict's
category with its thresholds as named constants."""
from __future__ import annotations

import pandas as pd

from . import data, paper, results, sanity
from .adversarial import attack_slice
from .config import DATASETS, denoiser_train_size, make_config
from .experiments import GRADIENT_VARIANTS


def history_frame(runs: dict, key: str = "dataset") -> pd.DataFrame:
    """Per-epoch histories of several runs in long form (``key``, epoch, metric, value).

    ``runs`` maps a name to a history (a list of per-epoch dicts) or to a run holding one under "history".
    """
    rows = [
        {key: name, "epoch": h["epoch"], "metric": k, "value": v}
        for name, run in runs.items() for h in (run["history"] if isinstance(run, dict) else run)
        for k, v in h.items() if k not in ("epoch", "epoch_s")
    ]
    return pd.DataFrame(rows)


SETTING_FIELDS = ("train_size", "test_size", "attack_size", "clf_epochs", "clf_batch_size", "cw_size", "cw_max_iter",
                  "cw_binary_steps", "ae_epochs", "ae_batch_size", "ae_train_size", "magnet_epochs",
                  "magnet_detector_epochs", "magnet_batch_size", "adv_epochs")


def profile_settings(profiles: tuple[str, ...] = ("quick", "paper")) -> dict[str, int]:
    """``<profile>_<dataset>_<field>`` for each of :data:`SETTING_FIELDS`: the profiles' sizes and epochs,
    read from the configuration so the chapters' profile notes cannot drift from it. A slice left at
    ``None`` (the whole split) is the split's size; :func:`whole_splits` names those."""
    return {key: n for key, (n, _) in _settings(profiles).items()}


def whole_splits(profiles: tuple[str, ...] = ("quick", "paper")) -> set[str]:
    """The keys of :func:`profile_settings` that cover their whole split: the prose says "all" before
    these and "the first" before the other slices (``train_size``, ``test_size``, ``attack_size``,
    ``cw_size``, ``ae_train_size``)."""
    return {key for key, (_, whole) in _settings(profiles).items() if whole}


def _settings(profiles: tuple[str, ...]) -> dict[str, tuple[int, bool]]:
    out = {}
    for profile in profiles:
        for ds in DATASETS:
            cfg = make_config(profile, ds)
            split = {"train_size": data.TRAIN_SIZE[ds], "ae_train_size": data.TRAIN_SIZE[ds], "test_size": data.TEST_SIZE,
                     "attack_size": data.TEST_SIZE, "cw_size": data.TEST_SIZE}
            value = {f: getattr(cfg, f) for f in SETTING_FIELDS} | {"attack_size": attack_slice(cfg, "fgsm"),
                                                                    "cw_size": attack_slice(cfg, "cw"),
                                                                    "ae_train_size": denoiser_train_size(cfg)}
            for f, v in value.items():
                n = split[f] if v is None else v
                out[f"{profile}_{ds}_{f}"] = (n, f in split and n >= split[f])
    return out


def training_summary(history: list[dict], last_epochs: int = 30) -> dict[str, float | int | str]:
    """The numbers a chapter states about one training run's per-epoch ``history``: the held-out metric
    (``val_acc``, or ``test_acc`` where there is no validation split), its best value and epoch, its lowest,
    highest and mean value over the last ``last_epochs`` epochs, and the training loss at its lowest and
    at the last epoch, with their epochs."""
    metric = "val_acc" if "val_acc" in history[0] else "test_acc"
    tail = [h[metric] for h in history[-last_epochs:]]
    best, low, last = max(history, key=lambda h: h[metric]), min(history, key=lambda h: h["loss"]), history[-1]
    return {"metric": metric, "peak": best[metric], "peak_epoch": best["epoch"], "tail_low": min(tail),
            "tail_high": max(tail), "tail_mean": sum(tail) / len(tail), "low_loss": low["loss"],
            "low_loss_epoch": low["epoch"], "last_loss": last["loss"], "last_epoch": last["epoch"]}


def plateau(history: list[dict], metric: str, within: float) -> dict[str, float]:
    """Where a validation metric stops improving: its best value and epoch, the first epoch within
    ``within`` of the best, and the range over the last third of the epochs."""
    values = [h[metric] for h in history]
    best = max(values)
    tail = values[-max(1, len(values) // 3):]
    return {"best": best, "best_epoch": history[values.index(best)]["epoch"], "epochs": len(values),
            "first_within": next(h["epoch"] for h, v in zip(history, values) if v >= best - within),
            "tail_min": min(tail), "tail_max": max(tail), "tail_epochs": len(tail)}


def clean_accuracy_table(runs: dict[str, dict], profile: str) -> pd.DataFrame:
    """Clean test accuracy: the paper's, this run's, and the recorded ``paper``-profile run's (or 'pending')."""
    rows = []
    for ds in runs:
        rec = results.load_record("paper", ds, "classifier")
        rows.append({
            "dataset": ds,
            "paper": paper.CLEAN_ACCURACY[ds],
            f"ours ({profile}, this run)": runs[ds]["test_accuracy"],
            "ours (paper profile, recorded)": rec["results"]["test_accuracy"] if rec else "pending",
            "test images (this run)": runs[ds]["test_size"],
            "data source": data.data_source(ds),
        })
    return pd.DataFrame(rows).set_index("dataset")


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


def gray_box_table(run: dict, dataset: str) -> pd.DataFrame:
    """Table 7 (MNIST) or 8 (CIFAR-10): gray-box accuracy per attack and defense, the paper's beside ours."""
    frame = pd.DataFrame(run["rows"])
    parts = []
    for label, key in (("No defense", "no_defense"), ("DDSA", "ddsa"), ("DDA", "dda")):
        ours = frame[frame.defense == label].set_index("attack")["accuracy"].to_dict()
        parts.append(versus_paper(ours, paper.GRAY_BOX[dataset][key], label))
    return pd.concat(parts, axis=1)


def sparsity_frame(run: dict) -> pd.DataFrame:
    """Activation sparsity of DDSA and DDA: mean activation and zeros on test images, mu_hat statistics."""
    return pd.DataFrame(run["sparsity"]).T
VARIANT_LABELS: dict[str, str] = {
    "float32": "ours: float32 CE (paper protocol)",
    "float64": "ours: float64 CE",
    "lse_margin": "ours: CE direction without rounding (lse margin)",
}


def gradient_variants_table(run: dict, dataset: str, value: str = "accuracy") -> pd.DataFrame:
    """Per L-inf attack: the paper's No-defense accuracy, then ours in each gradient variant.

    ``value`` picks the column shown for each variant (``accuracy``, ``unchanged``, ``craft_s``...);
    the paper's column is shown for accuracy only.
    """
    frame = pd.DataFrame(run["rows"]).pivot(index="attack", columns="variant", values=value)
    frame = frame.loc[[a for a in paper.ATTACKS if a in frame.index],
                      [v for v in GRADIENT_VARIANTS if v in frame.columns]]
    frame.columns = [VARIANT_LABELS[v] for v in frame.columns]
    if value == "accuracy":
        frame.insert(0, "paper", [paper.GRAY_BOX[dataset]["no_defense"][a] for a in frame.index])
    frame["images"] = pd.DataFrame(run["rows"]).groupby("attack")["images"].first()
    frame.columns.name = None
    return frame


SATURATION_LABELS: dict[str, str] = {
    "images": "test images",
    "accuracy": "clean accuracy",
    "median_top2_margin": "median top-2 logit margin",
    "above_cancel_float32": "margin >= 16.64: p_y - 1 = 0 in float32",
    "above_cancel_float64": "margin >= 36.74: p_y - 1 = 0 in float64",
    "above_underflow_float32": "margin >= 103.97: gradient = 0 in float32",
    "zero_grad_images_float32": "images with zero CE gradient, float32",
    "zero_grad_images_float64": "images with zero CE gradient, float64",
    "zero_grad_entries_exact": "zero gradient entries, exact (architecture)",
    "zero_grad_entries_float32": "zero gradient entries, float32",
    "zero_grad_entries_float64": "zero gradient entries, float64",
    "sign_agreement_float32": "signs as the exact gradient's (nonzero entries), float32",
    "sign_agreement_float64": "signs as the exact gradient's (nonzero entries), float64",
}


def saturation_frame(runs: dict[str, dict | None]) -> pd.DataFrame:
    """The saturation statistics of several :func:`gradient_masking_run` results, one column each
    ('pending' where a run is ``None``), rows labelled by :data:`SATURATION_LABELS`."""
    cols = {label: pd.Series({SATURATION_LABELS[k]: (round(run["saturation"][k], 4) if run else "pending")
                              for k in SATURATION_LABELS}, dtype=object)
            for label, run in runs.items()}
    return pd.DataFrame(cols)


def baselines_table(run: dict) -> pd.DataFrame:
    """Gray-box accuracy per attack: no defense, MagNet (with its detection rate and reformed accuracy), adversarial training."""
    frame = pd.DataFrame(run["rows"])
    pick = lambda label, col: frame[frame.defense == label].set_index("attack")[col]
    return pd.DataFrame({
        ("No defense", "accuracy"): pick("No defense", "accuracy"),
        ("MagNet", "accuracy"): pick("MagNet", "accuracy"),
        ("MagNet", "detected"): pick("MagNet", "detected"),
        ("MagNet", "reformed, classified right"): pick("MagNet", "classified"),
        ("Adv. training", "accuracy"): pick("Adv. training", "accuracy"),
        ("", "images"): pick("No defense", "images"),
    })


# --- Results: every defense under every threat model (results chapter) -----------------------------

DEFENSE_KEYS = {"No defense": "no_defense", "DDSA": "ddsa", "MagNet": "magnet", "Adv. training": "adv_training",
                "DDA": "dda"}  # the book's labels -> the keys of ddsa_core.paper's tables


def pgd_iterations_end(rows: pd.DataFrame) -> dict[str, float | int]:
    """Figure 6's last point: DDSA's and DDA's accuracy at the most iterations, that count and the images."""
    at = rows[rows.nb_iter == rows.nb_iter.max()].set_index("defense").accuracy
    return {"ddsa": float(at["DDSA"]), "dda": float(at["DDA"]), "iterations": int(rows.nb_iter.max()),
            "images": int(rows.images.iloc[0])}


def paper_score(frame: pd.DataFrame) -> pd.Series:
    """The figure the paper's tables give: the classifier's accuracy on what the defense passes on,
    detection ignored. Defense-GAN's evaluation, whose MagNet the paper follows ([30]), scores it so
    (``utils/gan_defense.py``, ``model_eval_gan``): MagNet's column is its reformer alone. For a
    system without detectors this is its accuracy."""
    return frame["classified"].fillna(frame["accuracy"]) if "classified" in frame else frame["accuracy"]


def versus_paper_table(rows: list[dict], theirs: dict[str, dict[str, float]]) -> pd.DataFrame:
    """A results table: for each defense, the paper's accuracy, ours (:func:`paper_score`) and the difference,
    one row each, with one column per attack (so five defenses fit a page's width)."""
    frame = pd.DataFrame(rows).assign(score=lambda f: paper_score(f))
    parts = []
    for label in frame.defense.unique():
        ours = frame[frame.defense == label].set_index("attack")["score"].to_dict()
        key = DEFENSE_KEYS[label]
        parts.append(versus_paper(ours, theirs[key], label) if key in theirs else
                     pd.DataFrame({(label, "ours"): pd.Series(ours)}))
    return pd.concat(parts, axis=1).T.rename_axis(index=["defense", ""], columns="attack")


def _accuracy_by(rows: list[dict] | dict, key_map: bool = False) -> pd.DataFrame:
    """Accuracy as an (attack × defense-key) frame, from our rows or from one of ``paper``'s tables."""
    if isinstance(rows, dict):
        return pd.DataFrame(rows)
    frame = pd.DataFrame(rows)
    frame["defense"], frame["score"] = frame.defense.map(DEFENSE_KEYS), paper_score(frame)
    return frame.pivot(index="attack", columns="defense", values="score")


def by_substitute(rows: list[dict]) -> dict[str, list[dict]]:
    """The rows of :func:`ddsa_core.threat_models.black_box_shared`, grouped by substitute architecture."""
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["substitute"], []).append(r)
    return out



def shared_substitute_table(rows: list[dict], theirs: dict[str, dict[str, float]]) -> pd.DataFrame:
    """:func:`versus_paper_table` of each shared substitute's rows, stacked under the substitute's name."""
    tables = {arch: versus_paper_table(group, theirs) for arch, group in by_substitute(rows).items()}
    return pd.concat(tables, names=["substitute", "defense", ""]) if tables else pd.DataFrame()

def agreement_table(run: dict) -> pd.DataFrame:
    """How often each black-box substitute agrees with each defended system on the clean attacked images:
    one substitute per system (``black_box``), and each shared substitute of the undefended classifier."""
    own = pd.DataFrame(run["black_box"]).groupby("defense", sort=False)["substitute_agreement"].first()
    parts = {"substitute per system": own}
    for arch, rows in by_substitute(run.get("black_box_shared", [])).items():
        parts[f"shared: {arch}"] = pd.DataFrame(rows).groupby("defense", sort=False)["substitute_agreement"].first()
    return pd.DataFrame(parts)


def magnet_scores(rows: list[dict]) -> pd.DataFrame:
    """MagNet per attack, scored both ways: its reformer alone (the paper's column), the share of
    inputs its detectors reject, and MagNet's own score (rejected or correctly classified)."""
    frame = pd.DataFrame(rows)
    if "MagNet" not in set(frame.get("defense", ())):
        return pd.DataFrame(columns=["reformer only (paper's scoring)", "detected", "MagNet's own score"])
    frame = frame[frame.defense == "MagNet"].set_index("attack")
    return pd.DataFrame({"reformer only (paper's scoring)": frame["classified"], "detected": frame["detected"],
                         "MagNet's own score": frame["accuracy"]})


# claim -> (threat model, how to measure it as one number on an attack × defense accuracy frame,
# and when it holds). Each number is a margin: the claim holds when it is above the bar.
CLAIMS = {
    "Black-box: DDSA beats MagNet, adversarial training and DDA under every attack":
        ("black_box", lambda a: (a["ddsa"] - a[["magnet", "adv_training", "dda"]].max(axis=1)).min(), 0.0),
    "Black-box: DDSA keeps at least 84% accuracy under every attack":
        ("black_box", lambda a: a["ddsa"].min(), 0.84),
    "DDSA raises gray-box accuracy over no defense, under every attack":
        ("gray_box", lambda a: (a["ddsa"] - a["no_defense"]).min(), 0.0),
    "DDSA beats DDA gray-box under every attack (sparsity helps)":
        ("gray_box", lambda a: (a["ddsa"] - a["dda"]).min(), 0.0),
    "White-box PGD: DDSA keeps at least 80% accuracy":
        ("white_box", lambda a: a.loc["pgd", "ddsa"], 0.8),
    "White-box C&W, MIM and PGD: DDSA beats MagNet, adversarial training and DDA":
        ("white_box", lambda a: (a.loc[["cw", "mim", "pgd"], "ddsa"]
                                 - a.loc[["cw", "mim", "pgd"], ["magnet", "adv_training", "dda"]].max(axis=1)).min(), 0.0),
    "White-box FGSM and Rand+FGSM: adversarial training beats DDSA":
        ("white_box", lambda a: (a.loc[["fgsm", "rfgsm"], "adv_training"] - a.loc[["fgsm", "rfgsm"], "ddsa"]).min(), 0.0),
}


def claims_table(run: dict, dataset: str) -> pd.DataFrame:
    """The paper's claims, each measured the same way on the paper's tables and on our run, and whether it holds in ours."""
    theirs = {"black_box": paper.BLACK_BOX.get(dataset), "gray_box": paper.GRAY_BOX[dataset],
              "white_box": paper.WHITE_BOX.get(dataset)}
    rows = []
    for claim, (setting, measure, bar) in CLAIMS.items():
        row = {"claim": claim, "threat model": setting.replace("_", "-"), "bar": bar}
        try:
            row["paper"] = measure(_accuracy_by(theirs[setting])) if theirs[setting] else float("nan")
            row["ours"] = measure(_accuracy_by(run[setting]))
        except KeyError as missing:  # a defense or attack this run does not have (e.g. MagNet on CIFAR-10)
            row.update(paper=row.get("paper", float("nan")), ours=float("nan"), note=f"not measured: {missing}")
        row["holds in ours"] = bool(row["ours"] > bar) if pd.notna(row["ours"]) else None
        rows.append(row)
    return pd.DataFrame(rows).set_index("claim")


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


def restarted_table(run: dict) -> pd.DataFrame:
    """The denoisers of a seeds run whose collapsed first epoch the guard of :func:`ddsa_core.defenses.denoiser`
    reran: seed, defense, and whether it collapsed again (no rows when none was)."""
    return pd.DataFrame(run["restarted"], columns=["seed", "defense", "collapsed_again"])


#: The sanity checks on single-start curves, and the curve (the adaptive run's frame) each reads.
CURVE_CHECKS = {"accuracy falls as eps grows": "eps", "doubling iterations does not raise accuracy": "steps"}


def flagged_curve_rises(checks: pd.DataFrame, curves: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Each flagged check of :data:`CURVE_CHECKS`: its defense and check, the largest rise of accuracy
    between neighbouring points of that defense's curve in images, and the curve's images."""
    rows = []
    for row in checks[~checks.passed & checks.check.isin(list(CURVE_CHECKS))].itertuples():
        axis = CURVE_CHECKS[row.check]
        curve = curves[axis][curves[axis].defense == row.defense].sort_values(axis)
        rows.append({"defense": row.defense, "check": row.check,
                     "rise_images": round(float((curve.accuracy.diff() * curve.images).max())),
                     "images": int(curve.images.iloc[0])})
    return pd.DataFrame(rows, columns=["defense", "check", "rise_images", "images"])


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


#: The verdict's defenses: the battery's label -> the prefix of its numbers in :func:`verdict`.
VERDICT_DEFENSES = {"DDSA": "ddsa", "DDA": "dda", "MagNet": "magnet", "Adv. training": "adv", "No defense": "none"}


def verdict(battery: pd.DataFrame, weaker: pd.DataFrame) -> dict[str, float | int | str | tuple[str, ...]]:
    """The numbers of the adaptive verdict: the images of the battery and of its gray-box rows (``images``,
    ``gray_images``: the gray-box rows may use more); for each defense the battery attacked (prefixes of
    :data:`VERDICT_DEFENSES`) its worst case (``_worst``), its gray-box PGD accuracy (``_gray_pgd``) and
    the attacks tied at its lowest single-attack accuracy (``_breaker``); and DDSA's :func:`verdict_category`."""
    worst = battery[battery.attack == "worst case"].set_index("defense").accuracy
    gray_rows = weaker[weaker.threat_model == "gray-box"].set_index("defense")
    out: dict = {"images": int(battery.images.iloc[0]), "gray_images": int(gray_rows.images.iloc[0])}
    for label in worst.index:
        rows = battery[(battery.defense == label) & ~battery.attack.isin(["worst case", "autoattack"])]
        key = VERDICT_DEFENSES[label]
        out |= {f"{key}_worst": float(worst[label]), f"{key}_gray_pgd": float(gray_rows.accuracy.get(label, float("nan"))),
                f"{key}_breaker": tuple(rows[rows.accuracy == rows.accuracy.min()].attack)}
    out["category"] = verdict_category(worst.get("DDSA", float("nan")), gray_rows.accuracy.get("DDSA", float("nan")))
    return out
