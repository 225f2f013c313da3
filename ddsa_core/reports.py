"""What the chapters show: one call per computed result, and the tables beside the paper's."""
from __future__ import annotations

import time
from typing import Callable

import pandas as pd
import torch
from torch import nn

from . import attacks, baselines, cache, data, defenses, diagnostics, paper, results, threat_models
from .adversarial import attack_overrides, attack_slice, craft
from .config import DATASETS, Config, denoiser_train_size, make_config
from .evaluation import accuracy, defended_accuracy, outputs, predict_logits, predict_proba
from .sparsity import activation_stats, activations, fraction_near_target
from .runtime import resolve_device
from .training import Trained, classifier, monitor_split


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


# Table 3's RMSprop rate for CIFAR-10, and the rate of Keras' own CIFAR-10 example (RMSprop, batch 32,
# a network of the same Conv-Conv-Pool-Dropout family), which Tables 2-3 resemble
CLF_LRS = (1e-3, 1e-4)


def lr_sweep(cfg: Config, lrs: tuple[float, ...] = CLF_LRS) -> dict:
    """The classifier of ``cfg`` trained at each learning rate in ``lrs``, all else equal: per-epoch
    history (training loss, held-out accuracy), test accuracy at the last epoch, and where each was trained.
    A diagnosis of the stated recipe, not a selection: the book keeps Table 3's rate."""
    if not lrs:
        raise ValueError("lrs must name at least one learning rate; got ()")
    configs = {lr: cfg.replace(clf_lr=lr) for lr in lrs}  # every rate validated before any training
    x, y = data.load(cfg.dataset, "test", cfg.test_size)
    row = lambda clf: {"test_accuracy": accuracy(clf.model, x, y, cfg.eval_batch_size),
                       "final_loss": clf.history[-1]["loss"], "min_loss": min(h["loss"] for h in clf.history)}
    return _sweep("lr", configs, classifier, row) | {"images": len(y)}


def _sweep(field: str, configs: dict[float, Config], train: Callable[[Config], Trained],
           row: Callable[[Trained], dict]) -> dict:
    """One model trained (or loaded) per value of ``field``: its row of results, its per-epoch
    history, and where its weights came from, each keyed by the value."""
    rows, history, weights = [], {}, {}
    for value, c in configs.items():
        trained = train(c)
        rows.append({field: value, **row(trained)})
        history[f"{value:g}"] = trained.history
        weights[f"{value:g}"] = {"key": trained.key, "train_wall_s": trained.train_wall_s, "cached": trained.cached}
    return {"rows": rows, "history": history, "weights": weights}


def lr_sweep_run(cfg: Config, lrs: tuple[float, ...] = CLF_LRS) -> dict:
    """:func:`lr_sweep`, recorded as ``lr_sweep`` (why the CIFAR-10 classifier falls short of Table 3's accuracy)."""
    t0 = time.perf_counter()
    out = lr_sweep(cfg, lrs)
    paper_rate = f"{cfg.clf_lr:g}"  # that classifier is the classifier stage's: its training counts there (results.compute_s)
    wall = {"train_classifier" if lr == paper_rate else f"train lr {lr}": w["train_wall_s"] for lr, w in out["weights"].items()}
    results.record("lr_sweep", cfg, out, {**wall, "this_run": time.perf_counter() - t0}, resolve_device(cfg.device))
    return out


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


def first_or_all(n: int | None, total: int) -> str:
    """"all N" when ``n`` covers the whole split of ``total`` (or is None), else "the first N"."""
    return f"all {total:,}" if n is None or n >= total else f"the first {n:,}"


def settings_glue(profiles: tuple[str, ...] = ("quick", "paper")) -> dict[str, str]:
    """``<profile>_<dataset>_<field>`` for each of :data:`SETTING_FIELDS`: the profiles' sizes and epochs as
    the chapters' profile notes state them, read from the configuration so the prose cannot drift from it.
    A slice of ``None`` (the whole split) reads as the split's size; each slice also has ``<key>_of``,
    "the first N" or "all N", so the prose need not assume which profile slices."""
    out = {}
    for profile in profiles:
        for ds in DATASETS:
            cfg = make_config(profile, ds)
            whole = {"train_size": data.TRAIN_SIZE[ds], "ae_train_size": data.TRAIN_SIZE[ds], "test_size": data.TEST_SIZE,
                     "attack_size": data.TEST_SIZE, "cw_size": data.TEST_SIZE}
            value = {f: getattr(cfg, f) for f in SETTING_FIELDS} | {"attack_size": attack_slice(cfg, "fgsm"),
                                                                    "cw_size": attack_slice(cfg, "cw"),
                                                                    "ae_train_size": denoiser_train_size(cfg)}
            value |= {f: whole[f] for f, v in value.items() if v is None}
            out |= {f"{profile}_{ds}_{f}": f"{v:,}" for f, v in value.items()}
            out |= {f"{profile}_{ds}_{f}_of": first_or_all(v, whole[f]) for f, v in value.items() if f in whole}
    return out


NOT_RUN = "not run in this build"


def clean_accuracy_glue(runs: dict[str, dict]) -> dict[str, str]:
    """``acc_<dataset>`` for every dataset of the paper: this build's clean test accuracy, or
    :data:`NOT_RUN` for a dataset the build did not train."""
    return {f"acc_{ds}": f"{100 * runs[ds]['test_accuracy']:.2f} %" if ds in runs else NOT_RUN for ds in DATASETS}


def attack_accuracy_glue(runs: dict[str, dict]) -> dict[str, str]:
    """``<dataset>_<attack>_acc`` for every dataset and attack: the undefended classifier's accuracy
    in this build's attack runs, or :data:`NOT_RUN`."""
    acc = {(ds, r["attack"]): r["accuracy"] for ds, run in runs.items() for r in run["rows"]}
    return {f"{ds}_{a}_acc": f"{acc[ds, a]:.3f}" if (ds, a) in acc else NOT_RUN for ds in DATASETS for a in paper.ATTACKS}


def with_mnist_summary(dataset: str, values: dict[str, str], keys: tuple[str, ...]) -> dict[str, str]:
    """``values`` plus the landing page's live MNIST keys, ``mnist_<key>`` for each of ``keys``: the
    chapter's value when it ran MNIST, else :data:`NOT_RUN`, so a CIFAR-10 build never shows its
    numbers under the MNIST label (the recorded sections of chapters 6 and 7 always read MNIST's runs)."""
    return values | {f"mnist_{k}": values[k] if dataset == "mnist" else NOT_RUN for k in keys}


def claims_held_text(claims: pd.DataFrame) -> str:
    """"k of n": how many of the measurable claims in a :func:`claims_table` hold in ours."""
    held = claims["holds in ours"]
    return f"{int((held == True).sum())} of {int(held.notna().sum())}"  # noqa: E712


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
    t0 = time.perf_counter()
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
    wall = {"train_classifier": trained.train_wall_s, **{f"craft_{r['attack']}": r["craft_s"] for r in rows},
            "this_run": time.perf_counter() - t0}
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


def ddsa_run(cfg: Config, names: tuple[str, ...] = paper.ATTACKS) -> dict:
    """Train (or load) DDSA and DDA, evaluate them gray-box under the five attacks, and record it."""
    t0 = time.perf_counter()
    clf = classifier(cfg)
    trained = {name: defenses.denoiser(cfg, name) for name in defenses.DEFENSES}
    systems = {"No defense": clf.model, "DDSA": defenses.Defended(trained["ddsa"].model, clf.model),
               "DDA": defenses.Defended(trained["dda"].model, clf.model)}
    rows = threat_models.gray_box(cfg, clf, systems, names)
    x, y = data.load(cfg.dataset, "test", cfg.test_size)
    acts = {label: activations(trained[key].model, x, cfg.eval_batch_size)
            for label, key in (("DDSA", "ddsa"), ("DDA", "dda"))}
    sparsity_stats = {
        label: {**activation_stats(a),
                "mu_hat_mean": trained[key].model.act2.mu_hat.mean().item(),
                "mu_hat_near_target": fraction_near_target(trained[key].model.act2.mu_hat, cfg.sparsity_mu)}
        for (label, key), a in zip((("DDSA", "ddsa"), ("DDA", "dda")), acts.values())
    }
    out = {"rows": rows, "sparsity": sparsity_stats, "history": {k: t.history for k, t in trained.items()},
           "weights_keys": {k: t.key for k, t in trained.items()}, "classifier_key": clf.key}
    wall = {"train_ddsa": trained["ddsa"].train_wall_s, "train_dda": trained["dda"].train_wall_s,
            "this_run": time.perf_counter() - t0}
    results.record("gray_box", cfg, out, wall, resolve_device(cfg.device))
    return {**out, "denoisers": {k: t.model for k, t in trained.items()}, "classifier": clf.model,
            "activations": acts}


def gray_box_table(run: dict, dataset: str) -> pd.DataFrame:
    """Table 7 (MNIST) or 8 (CIFAR-10): gray-box accuracy per attack and defense, the paper's beside ours."""
    frame = pd.DataFrame(run["rows"])
    parts = []
    for label, key in (("No defense", "no_defense"), ("DDSA", "ddsa"), ("DDA", "dda")):
        ours = frame[frame.defense == label].set_index("attack")["accuracy"].to_dict()
        parts.append(versus_paper(ours, paper.GRAY_BOX[dataset][key], label))
    return pd.concat(parts, axis=1)


def epsilon_sweep(cfg: Config, denoiser_model: nn.Module, eps_values: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4),
                  names: tuple[str, ...] = ("fgsm", "pgd", "mim"), clf: Trained | None = None) -> pd.DataFrame:
    """Figure 5: gray-box accuracy against eps, with and without DDSA (``clf``: the classifier, if already loaded)."""
    clf = clf or classifier(cfg)
    systems = {"No defense": clf.model, "DDSA": defenses.Defended(denoiser_model, clf.model)}
    rows = [r for eps in eps_values for r in threat_models.gray_box(cfg, clf, systems, names, eps=eps)]
    return pd.DataFrame(rows)


def epsilon_sweep_run(cfg: Config) -> pd.DataFrame:
    """:func:`epsilon_sweep` of ``cfg``'s DDSA, recorded as ``epsilon_sweep`` (Figure 5)."""
    t0 = time.perf_counter()
    clf = classifier(cfg)  # first, so that ``cached`` says whether this run trained it
    ddsa = defenses.denoiser(cfg, "ddsa")
    frame = epsilon_sweep(cfg, ddsa.model, clf=clf)
    weights = {name: {"key": t.key, "train_wall_s": t.train_wall_s, "cached": t.cached}
               for name, t in (("classifier", clf), ("ddsa", ddsa))}
    results.record("epsilon_sweep", cfg, {"rows": frame.to_dict("records"), "weights": weights},
                   {"this_run": time.perf_counter() - t0}, resolve_device(cfg.device))
    return frame


BETAS = (0.1, 1.0, 10.0)  # the sparsity rates :func:`beta_sweep` trains, a decade apart; 1 is the book's DDSA
BETA_METRICS = ("val_acc_pgd_graybox", "val_acc_clean", "val_mse_pgd")  # each DDSA's last-epoch monitor values


def beta_sweep(cfg: Config, betas: tuple[float, ...] = BETAS) -> dict:
    """DDSA trained at each sparsity rate in ``betas``, judged on the held-out images its training
    watched (never the test set): per-epoch history, and at the end gray-box PGD and clean accuracy,
    reconstruction error, mean activation, zeros and the fraction of ``mu_hat`` within 0.02 of mu."""
    if not betas:
        raise ValueError("betas must name at least one sparsity rate; got ()")
    watch = monitor_split(cfg.dataset)
    if watch != "val":
        raise ValueError(f"beta_sweep judges on a validation split; dataset {cfg.dataset!r} has none (allowed: mnist)")
    configs = {beta: cfg.replace(sparsity_beta=beta) for beta in betas}  # every rate validated before any training
    x = data.load(cfg.dataset, watch, cfg.ae_val_size)[0]
    row = lambda den: {**{m: den.history[-1][m] for m in BETA_METRICS},
                       **activation_stats(activations(den.model, x, cfg.eval_batch_size)),
                       "mu_hat_near_target": fraction_near_target(den.model.act2.mu_hat, cfg.sparsity_mu)}
    return _sweep("beta", configs, lambda c: defenses.denoiser(c, "ddsa"), row) | {"split": watch, "images": len(x)}


def beta_sweep_run(cfg: Config, betas: tuple[float, ...] = BETAS) -> dict:
    """:func:`beta_sweep`, recorded as ``beta_sweep`` (the validation evidence for the book's beta)."""
    t0 = time.perf_counter()
    out = beta_sweep(cfg, betas)
    wall = {f"train beta {b}": w["train_wall_s"] for b, w in out["weights"].items()}  # cached ones: their first training
    results.record("beta_sweep", cfg, out, {**wall, "this_run": time.perf_counter() - t0}, resolve_device(cfg.device))
    return out


def denoised_examples(run: dict, cfg: Config, attack: str = "fgsm", n: int = 6) -> dict:
    """Figures 7-8: clean and adversarial images, the DDSA reconstructions of the latter, and the classifier's top label and probability on each."""
    clf = classifier(cfg)
    x, y = data.load(cfg.dataset, "test", attack_slice(cfg, attack))  # the set the attacks chapter cached
    atk = attacks.build(attack, clf.model, cfg.dataset, **attack_overrides(cfg, attack))
    adv = craft(atk, x, y, clf.key, f"{cfg.dataset}/test/first-{len(y)}", cfg.seed, cfg.eval_batch_size)
    x, x_adv, y = x[:n], adv.x_adv[:n], y[:n]
    denoised = outputs(run["denoisers"]["ddsa"], x_adv)
    top = lambda images: predict_proba(clf.model, images).max(1)
    return {"x": x, "x_adv": x_adv, "denoised": denoised, "y": y,
            "clean_pred": top(x), "adv_pred": top(x_adv), "den_pred": top(denoised)}


EXAMPLE_IMAGES = ("x", "x_adv", "denoised")  # :func:`denoised_examples`' images and their top predictions
EXAMPLE_PREDICTIONS = ("clean_pred", "adv_pred", "den_pred")


def denoised_examples_run(cfg: Config, attack: str = "fgsm", n: int = 6) -> dict:
    """:func:`denoised_examples` of ``cfg``'s DDSA, recorded as ``denoised_examples`` so that a build
    without the weights can draw Figures 7-8 (images stored as 8-bit pixels)."""
    t0 = time.perf_counter()
    ex = denoised_examples({"denoisers": {"ddsa": defenses.denoiser(cfg, "ddsa").model}}, cfg, attack, n)
    out = {"attack": attack, "y": ex["y"].tolist()} | {k: results.pack_images(ex[k]) for k in EXAMPLE_IMAGES}
    out |= {f"{part}_{field}": getattr(ex[part], field).tolist() for part in EXAMPLE_PREDICTIONS
            for field in ("values", "indices")}
    results.record("denoised_examples", cfg, out, {"this_run": time.perf_counter() - t0}, resolve_device(cfg.device))
    return ex


def recorded_examples(doc: dict) -> dict:
    """The examples of a recorded ``denoised_examples`` run, shaped as :func:`denoised_examples` returns them."""
    res = doc["results"]
    pred = lambda part: (torch.tensor(res[f"{part}_values"]), torch.tensor(res[f"{part}_indices"]))
    return ({k: results.unpack_images(res[k]) for k in EXAMPLE_IMAGES} | {"y": torch.tensor(res["y"])}
            | {part: pred(part) for part in EXAMPLE_PREDICTIONS})


def sparsity_frame(run: dict) -> pd.DataFrame:
    """Activation sparsity of DDSA and DDA: mean activation and zeros on test images, mu_hat statistics."""
    return pd.DataFrame(run["sparsity"]).T


# --- Gradient masking (attacks chapter) ---------------------------------------------------------

#: The L-inf attacks' gradient variants (options of :func:`ddsa_core.attacks.build`).
GRADIENT_VARIANTS: dict[str, dict[str, str]] = {
    "float32": {},  # the paper's protocol: cross-entropy differentiated in float32
    "float64": {"precision": "float64"},
    "lse_margin": {"loss": "lse_margin"},
}
VARIANT_LABELS: dict[str, str] = {
    "float32": "ours: float32 CE (paper protocol)",
    "float64": "ours: float64 CE",
    "lse_margin": "ours: CE direction without rounding (lse margin)",
}
LINF_ATTACKS: tuple[str, ...] = ("fgsm", "rfgsm", "mim", "pgd")


def gradient_masking_run(cfg: Config, n: int | None = None) -> dict:
    """Gradient-masking checks on the classifier of ``cfg``, recorded as ``gradient_masking``.

    On the first ``n`` test images (default: the profile's test set): the saturation statistics
    of :func:`ddsa_core.diagnostics.saturation` and the percentiles 0..100 of the true-class
    logit margin, with the float thresholds they are read against.
    """
    trained = classifier(cfg)
    x, y = data.load(cfg.dataset, "test", n if n is not None else cfg.test_size)
    t0 = time.perf_counter()
    stats = diagnostics.saturation(trained.model, x, y, cfg.eval_batch_size)
    margin = diagnostics.true_margin(predict_logits(trained.model, x, cfg.eval_batch_size), y).double()
    out = {
        "saturation": stats,
        "margin_percentiles": torch.quantile(margin, torch.linspace(0, 1, 101, dtype=torch.float64)).tolist(),
        "thresholds": {"cancel": diagnostics.CANCEL_MARGIN, "underflow": diagnostics.UNDERFLOW_MARGIN},
        "weights_key": trained.key,
    }
    took = time.perf_counter() - t0
    wall = {"train_classifier": trained.train_wall_s, "diagnostic": took, "this_run": took}
    results.record("gradient_masking", cfg, out, wall, resolve_device(cfg.device))
    return out


def gradient_variants_run(cfg: Config, names: tuple[str, ...] = LINF_ATTACKS, n: int | None = None,
                          variants: tuple[str, ...] = tuple(GRADIENT_VARIANTS)) -> dict:
    """The undefended classifier of ``cfg`` under the L-inf attacks in each gradient variant.

    Every variant runs on the same first test images (each attack's profile slice, or the first
    ``n``); "float32" is the paper's protocol and shares its cached sets with
    :func:`no_defense_run`. Recorded as ``attacks_gradient_variants``.
    """
    trained = classifier(cfg)
    t0 = time.perf_counter()
    rows = []
    for variant in variants:
        for name in names:
            x, y = data.load(cfg.dataset, "test", attack_slice(cfg, name) if n is None else n)
            attack = attacks.build(name, trained.model, cfg.dataset, **attack_overrides(cfg, name),
                                   **GRADIENT_VARIANTS[variant])
            adv = craft(attack, x, y, trained.key, f"{cfg.dataset}/test/first-{len(y)}", cfg.seed,
                        cfg.eval_batch_size)
            delta = (adv.x_adv - x).flatten(1)
            rows.append({
                "attack": name, "variant": variant, "images": len(y),
                "accuracy": accuracy(trained.model, adv.x_adv, y, cfg.eval_batch_size),
                "unchanged": (delta == 0).all(1).float().mean().item(),
                "mean_linf": delta.abs().amax(1).mean().item(), "mean_l2": delta.norm(dim=1).mean().item(),
                "craft_s": adv.craft_s, "params": attack.params,
            })
    wall = {"train_classifier": trained.train_wall_s,
            **{f"craft_{r['attack']}_{r['variant']}": r["craft_s"] for r in rows}, "this_run": time.perf_counter() - t0}
    results.record("attacks_gradient_variants", cfg, {"rows": rows, "weights_key": trained.key}, wall,
                   resolve_device(cfg.device))
    return {"rows": rows}


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


# --- Baselines (baselines chapter) ----------------------------------------------------------------


def baselines_run(cfg: Config, names: tuple[str, ...] = paper.ATTACKS) -> dict:
    """Train (or load) MagNet and FGSM adversarial training; clean accuracy, MagNet's false positives, gray-box rows; recorded."""
    t0 = time.perf_counter()
    clf = classifier(cfg)
    magnet, parts = baselines.magnet(cfg, clf.model)
    adv = baselines.adversarial_training(cfg)
    systems = {"No defense": clf.model, "MagNet": magnet, "Adv. training": adv.model}
    x, y = data.load(cfg.dataset, "test", cfg.test_size)
    clean = {label: defended_accuracy(system, x, y, adversarial=False, batch_size=cfg.eval_batch_size)
             for label, system in systems.items()}
    fpr = {name: (baselines.detector_scores(magnet.detectors[name], x, p, cfg.eval_batch_size)
                  > getattr(magnet, f"threshold_{name}").cpu()).float().mean().item()
           for name, (_, p) in baselines.DETECTORS.items()}
    rows = threat_models.gray_box(cfg, clf, systems, names)
    out = {"rows": rows, "clean": clean, "magnet_test_fpr": {**fpr, "any": clean["MagNet"]["detected"]},
           "magnet_thresholds": {n: getattr(magnet, f"threshold_{n}").item() for n in baselines.DETECTORS},
           "history": {**{f"magnet_{k}": t.history for k, t in parts.items()}, "adv_training": adv.history},
           "weights_keys": {**{f"magnet_{k}": t.key for k, t in parts.items()}, "adv_training": adv.key},
           "classifier_key": clf.key, "test_size": len(y)}
    wall = {**{f"train_magnet_{k}": t.train_wall_s for k, t in parts.items()},
            "train_adv_training": adv.train_wall_s, "this_run": time.perf_counter() - t0}
    results.record("baselines", cfg, out, wall, resolve_device(cfg.device))
    return {**out, "systems": systems, "parts": parts}


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


def system_key(*weights_keys: str) -> str:
    """The key of a defended system: the weights keys it is made of, front (denoiser, reformer) to classifier."""
    return cache.content_key(system=weights_keys)


def defended_systems(cfg: Config, only: tuple[str, ...] | None = None,
                     clf: Trained | None = None) -> dict[str, tuple[nn.Module, str]]:
    """Every defense of the paper (or those labelled in ``only``) around the classifier of ``cfg``, with its weights key.

    MagNet is included on MNIST only (the paper's Tables 6 and 9). The key covers exactly the
    weights an attack differentiates through (MagNet: reformer and classifier, not the detectors).
    Only the defenses asked for are trained or loaded; ``clf`` skips loading the classifier again.
    """
    clf = clf or classifier(cfg)

    def denoised(name: str) -> tuple[nn.Module, str]:
        den = defenses.denoiser(cfg, name)
        return defenses.Defended(den.model, clf.model, den.meta), system_key(den.key, clf.key)

    def magnet() -> tuple[nn.Module, str]:
        system, parts = baselines.magnet(cfg, clf.model)
        return system, system_key(parts["reformer"].key, clf.key)

    def adversarially_trained() -> tuple[nn.Module, str]:
        adv = baselines.adversarial_training(cfg)
        return adv.model, adv.key

    build = {"No defense": lambda: (clf.model, clf.key), "DDSA": lambda: denoised("ddsa"), "MagNet": magnet,
             "Adv. training": adversarially_trained, "DDA": lambda: denoised("dda")}
    if cfg.dataset not in baselines.MAGNET_DATASETS:
        del build["MagNet"]
    unknown = sorted(set(only or ()) - set(build))
    if unknown:
        raise ValueError(f"defenses {unknown} unknown for {cfg.dataset}; allowed: {list(build)}")
    return {label: make() for label, make in build.items() if only is None or label in only}


def threat_model_run(cfg: Config, names: tuple[str, ...] = paper.ATTACKS) -> dict:
    """Black-, gray- and white-box accuracy of every defense under the five attacks; recorded as ``threat_models``."""
    t0 = time.perf_counter()
    systems = defended_systems(cfg)
    clf = classifier(cfg)
    gray = threat_models.gray_box(cfg, clf, {label: s for label, (s, _) in systems.items()}, names)
    white = threat_models.white_box(cfg, systems, names)
    black = threat_models.black_box(cfg, systems, names)
    shared = threat_models.black_box_shared(cfg, systems, names)
    out = {"black_box": black, "black_box_shared": shared, "gray_box": gray, "white_box": white,
           "keys": {label: key for label, (_, key) in systems.items()}}
    wall = {"this_run": time.perf_counter() - t0, **{f"craft_white_{r['defense']}_{r['attack']}": r["craft_s"] for r in white}}
    results.record("threat_models", cfg, out, wall, resolve_device(cfg.device))
    return out


PGD_ITERATIONS = (10, 20, 50, 100, 200, 500, 1000)  # Figure 6's range


def pgd_iterations_run(cfg: Config, iterations: tuple[int, ...] = PGD_ITERATIONS) -> pd.DataFrame:
    """Figure 6: gray-box accuracy of DDSA and DDA (and no defense) under PGD with more and more iterations.

    PGD keeps the paper's step of 0.01 and eps; it runs on the first ``adaptive_size`` test images
    (the paper does not say how many it used). Rows as :func:`threat_models.gray_box`, plus ``nb_iter``;
    recorded as ``pgd_iterations``.
    """
    t0 = time.perf_counter()
    clf = classifier(cfg)
    systems = {"No defense": clf.model,
               **{label: defenses.Defended(defenses.denoiser(cfg, name).model, clf.model)
                  for label, name in (("DDSA", "ddsa"), ("DDA", "dda"))}}
    sliced = cfg.replace(attack_size=cfg.adaptive_size)
    rows = [r for k in iterations for r in threat_models.gray_box(sliced, clf, systems, ("pgd",), nb_iter=k)]
    results.record("pgd_iterations", cfg, {"rows": rows}, {"this_run": time.perf_counter() - t0}, resolve_device(cfg.device))
    return pd.DataFrame(rows)


def pgd_iterations_glue(rows: pd.DataFrame, prefix: str = "") -> dict[str, str]:
    """Figure 6's last point (the most iterations) for DDSA and DDA, and its image count, keyed ``<prefix>fig6_*``."""
    at = rows[rows.nb_iter == rows.nb_iter.max()].set_index("defense").accuracy
    return {f"{prefix}fig6_ddsa": f"{100 * at['DDSA']:.1f}%", f"{prefix}fig6_dda": f"{100 * at['DDA']:.1f}%",
            f"{prefix}fig6_images": str(int(rows.images.iloc[0])), f"{prefix}fig6_iterations": f"{int(rows.nb_iter.max()):,}"}


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
