"""The search for the paper's own protocol: the classifier recipes its code lineage could have used.

Table 3 gives the optimiser, rate, batch and epochs of the classifier and nothing else. Each
*variant* here is one named choice its Keras / CleverHans / Defense-GAN lineage makes where Table 3
is silent (:data:`VARIANTS`). Each is a rule the authors could apply without seeing an attack
result: a loss, a dropout reading, a checkpoint rule. :func:`classifier_variants_run` trains every
variant at the profile's scale and measures what the paper reports of its classifier: clean test
accuracy and the five no-defense attacks (Table 7's first column), with the logit margins and the
share of exactly-zero input gradients that explain the attacks' numbers.

The variant closest to the paper is the one with the smallest :func:`paper_distance`: the mean
absolute difference, over those six numbers, between its figures and the paper's.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from . import attacks, data, diagnostics, paper, results
from .adversarial import attack_overrides, attack_slice, craft
from .config import RECIPE_DEFAULTS, Config
from .evaluation import accuracy, predict_logits
from .runtime import resolve_device
from .training import classifier

#: Per dataset, variant name -> the recipe fields it changes from Table 3 read literally (:data:`RECIPE_DEFAULTS`).
#: CIFAR-10 has no validation split, so its best epoch would be chosen on the test images: no such variant.
VARIANTS: dict[str, dict[str, dict]] = {
    "mnist": {
        "Table 3": {},  # logits loss, drop 0.25, last epoch
        "best epoch": {"clf_checkpoint": "best_val"},
        "Keras loss": {"clf_loss": "keras_clipped"},
        "Keras loss + best epoch": {"clf_loss": "keras_clipped", "clf_checkpoint": "best_val"},
        "dropout 0.75": {"clf_dropout": 0.75},
        "dropout 0.75 + best epoch": {"clf_dropout": 0.75, "clf_checkpoint": "best_val"},
    },
    "cifar10": {
        "Table 3": {},
        "Keras loss": {"clf_loss": "keras_clipped"},
        "augmentation": {"clf_augment": "shift_flip"},  # Keras' cifar10_cnn.py example, on by default there
        "Keras loss + augmentation": {"clf_loss": "keras_clipped", "clf_augment": "shift_flip"},
    },
}
#: C&W's images per variant: the first 100 test images, not Table 7's 1,000. Six variants at 1,000
#: images each cost about six CPU hours, and C&W leaves every variant near 0 (the paper: 0.011).
CW_IMAGES = 100
#: The attacks rerun with the classifier's own predicted labels, as CleverHans crafts when given no labels.
PREDICTED_LABEL_ATTACKS = ("fgsm", "rfgsm")
#: C&W is rerun with this confidence (the paper's is 10). A classifier whose logits are small may
#: lie beyond a margin of 10 within C&W's largest constant while a margin of 0 is within reach.
CW_LOW_CONFIDENCE = 0.0


def variant_config(cfg: Config, name: str) -> Config:
    """``cfg`` with the recipe fields of ``cfg.dataset``'s variant ``name``."""
    variants = VARIANTS[cfg.dataset]
    if name not in variants:
        raise ValueError(f"variant for {cfg.dataset} must be one of {list(variants)}; got {name!r}")
    return cfg.replace(**{**RECIPE_DEFAULTS, **variants[name]})


def paper_distance(clean_accuracy: float, no_defense: dict[str, float], dataset: str) -> float:
    """Mean absolute difference from the paper over clean accuracy and the five no-defense accuracies."""
    theirs = paper.GRAY_BOX[dataset]["no_defense"]
    gaps = [abs(clean_accuracy - paper.CLEAN_ACCURACY[dataset])] + [abs(no_defense[a] - theirs[a]) for a in theirs]
    return sum(gaps) / len(gaps)


def variant_row(cfg: Config, name: str) -> dict:
    """One variant's classifier, trained or loaded, and the paper's measurements of it."""
    vcfg = variant_config(cfg, name)
    trained = classifier(vcfg)
    x, y = data.load(cfg.dataset, "test", cfg.test_size)
    logits = predict_logits(trained.model, x, cfg.eval_batch_size)
    stats = diagnostics.saturation(trained.model, x, y, cfg.eval_batch_size)
    margin = diagnostics.true_margin(logits, y).double()
    cw_images = min(CW_IMAGES, attack_slice(cfg, "cw") or len(y))
    no_defense, predicted = {}, {}
    for attack in paper.ATTACKS:
        n = cw_images if attack == "cw" else attack_slice(cfg, attack)
        xa, ya = data.load(cfg.dataset, "test", n)
        built = attacks.build(attack, trained.model, cfg.dataset, **attack_overrides(cfg, attack))
        adv = craft(built, xa, ya, trained.key, f"{cfg.dataset}/test/first-{len(ya)}", cfg.seed, cfg.eval_batch_size)
        no_defense[attack] = accuracy(trained.model, adv.x_adv, ya, cfg.eval_batch_size)
        if attack in PREDICTED_LABEL_ATTACKS:
            guess = logits[: len(ya)].argmax(1)
            adv = craft(built, xa, guess, trained.key, f"{cfg.dataset}/test/first-{len(ya)}/predicted-labels",
                        cfg.seed, cfg.eval_batch_size)
            predicted[attack] = accuracy(trained.model, adv.x_adv, ya, cfg.eval_batch_size)
    xa, ya = data.load(cfg.dataset, "test", cw_images)
    built = attacks.build("cw", trained.model, cfg.dataset, **attack_overrides(cfg, "cw"), confidence=CW_LOW_CONFIDENCE)
    adv = craft(built, xa, ya, trained.key, f"{cfg.dataset}/test/first-{len(ya)}", cfg.seed, cfg.eval_batch_size)
    cw_low_confidence = accuracy(trained.model, adv.x_adv, ya, cfg.eval_batch_size)
    clean = (logits.argmax(1) == y).float().mean().item()
    history = trained.history
    return {
        "variant": name, "fields": VARIANTS[cfg.dataset][name], "weights_key": trained.key,
        "kept_epoch": trained.meta.get("kept_epoch", len(history)), "epochs": len(history),
        "test_accuracy": clean, "test_size": len(y), "cw_images": cw_images,
        "no_defense": no_defense, "predicted_labels": predicted,
        "cw_low_confidence": {"confidence": CW_LOW_CONFIDENCE, "accuracy": cw_low_confidence},
        "median_top2_margin": stats["median_top2_margin"], "zero_grad_images": stats["zero_grad_images_float32"],
        "margin_percentiles": torch.quantile(margin, torch.linspace(0, 1, 101, dtype=torch.float64)).tolist(),
        "paper_distance": paper_distance(clean, no_defense, cfg.dataset),
        "history": history, "train_wall_s": trained.train_wall_s,
    }


def classifier_variants_run(cfg: Config, names: tuple[str, ...] | None = None) -> dict:
    """Every variant in ``names`` (default: all of ``cfg.dataset``'s) measured (:func:`variant_row`), the closest
    named, recorded as ``classifier_variants``."""
    names = tuple(VARIANTS[cfg.dataset]) if names is None else names
    for name in names:
        variant_config(cfg, name)  # every name validated before any training
    t0 = time.perf_counter()
    rows = [variant_row(cfg, name) for name in names]
    out = {"rows": rows, "closest": min(rows, key=lambda r: r["paper_distance"])["variant"],
           "paper": {"test_accuracy": paper.CLEAN_ACCURACY[cfg.dataset], "no_defense": paper.GRAY_BOX[cfg.dataset]["no_defense"]}}
    wall = {**{f"train {r['variant']}": r["train_wall_s"] for r in rows if r["fields"].get("clf_checkpoint") != "best_val"},
            "this_run": time.perf_counter() - t0}
    results.record("classifier_variants", cfg, out, wall, resolve_device(cfg.device))
    return out


# --- The recorded variants as tables (chapter 2) ----------------------------------------------------

ATTACK_COLUMNS = {"fgsm": "FGSM", "rfgsm": "R+FGSM", "cw": "C&W", "mim": "MIM", "pgd": "PGD"}


def variants_frame(doc: dict) -> pd.DataFrame:
    """One row per variant: the epoch kept, clean accuracy, the margins and zero gradients, and the distance to the paper."""
    return pd.DataFrame([{
        "variant": r["variant"], "epoch kept": r["kept_epoch"], "clean accuracy": r["test_accuracy"],
        "median top-2 margin": r["median_top2_margin"], "zero-gradient share": r["zero_grad_images"],
        "distance to the paper": r["paper_distance"]} for r in doc["results"]["rows"]]).set_index("variant")


def no_defense_frame(doc: dict) -> pd.DataFrame:
    """Clean accuracy and the five no-defense accuracies, the paper's first, then each variant's."""
    res = doc["results"]
    paper_row = {"clean": res["paper"]["test_accuracy"], **res["paper"]["no_defense"]}
    rows = {"paper": paper_row} | {r["variant"]: {"clean": r["test_accuracy"], **r["no_defense"]} for r in res["rows"]}
    return pd.DataFrame(rows).T[["clean", *ATTACK_COLUMNS]].rename(columns=ATTACK_COLUMNS)


def variants_versus_paper(doc: dict, variants: tuple[str, ...]) -> pd.DataFrame:
    """Clean accuracy and Table 7's no-defense column: the paper, then ours and ours minus the paper per variant."""
    frame = no_defense_frame(doc).T
    parts = {("paper", ""): frame["paper"]}
    for name in variants:
        parts |= {(name, "ours"): frame[name], (name, "Δ"): frame[name] - frame["paper"]}
    return pd.DataFrame(parts)


def predicted_labels_frame(doc: dict) -> pd.DataFrame:
    """FGSM and Rand+FGSM accuracy per variant, crafted with the true labels and with the classifier's predicted ones."""
    rows = {}
    for r in doc["results"]["rows"]:
        for attack, acc in r["predicted_labels"].items():
            rows[(r["variant"], ATTACK_COLUMNS[attack])] = {"true labels": r["no_defense"][attack], "predicted labels": acc}
    return pd.DataFrame(rows).T.rename_axis(["variant", "attack"])


def margin_percentiles(doc: dict) -> dict[str, list[float]]:
    """Each variant's true-class margin percentiles 0..100, for :func:`ddsa_core.figures.gradient_masking`."""
    return {r["variant"]: r["margin_percentiles"] for r in doc["results"]["rows"]}


def share_below(doc: dict, margin: float) -> dict[str, float]:
    """Per variant, the share of test images whose true-class margin is below ``margin`` (read off its percentiles)."""
    levels = np.linspace(0, 1, 101)
    return {name: float(np.interp(margin, pct, levels)) for name, pct in margin_percentiles(doc).items()}
