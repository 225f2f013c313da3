"""The experiments: one function per stage the book shows, which trains or loads its models,
measures, and records the result with provenance (``results.record``); the registry of defended
systems (:func:`defended_systems`) the threat models and the adaptive battery attack."""
from __future__ import annotations

import time
from typing import Callable, TypeVar

import pandas as pd
import torch

from . import adaptive, attacks, baselines, cache, data, defenses, diagnostics, paper, protocol, results, sanity, threat_models
from .adversarial import attack_overrides, attack_slice, craft
from .config import Config
from .defenses import Defended
from .evaluation import System, accuracy, defended_accuracy, outputs, predict_logits, predict_proba
from .runtime import resolve_device
from .sparsity import activation_stats, activations, fraction_near_target
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


def ddsa_run(cfg: Config, names: tuple[str, ...] = paper.ATTACKS) -> dict:
    """Train (or load) DDSA and DDA, evaluate them gray-box under the five attacks, and record it."""
    t0 = time.perf_counter()
    clf = classifier(cfg)
    trained = {name: defenses.denoiser(cfg, name) for name in defenses.DEFENSES}
    systems = {"No defense": System(clf.model, clf.key)} | {
        label: System(defenses.Defended(trained[name].model, clf.model), system_key(trained[name].key, clf.key))
        for label, name in (("DDSA", "ddsa"), ("DDA", "dda"))}
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


def epsilon_sweep(cfg: Config, denoiser: Trained, eps_values: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4),
                  names: tuple[str, ...] = ("fgsm", "pgd", "mim"), clf: Trained | None = None) -> pd.DataFrame:
    """Figure 5: gray-box accuracy against eps, with and without the trained DDSA ``denoiser`` (``clf``: the
    classifier, if already loaded)."""
    clf = clf or classifier(cfg)
    systems = {"No defense": System(clf.model, clf.key),
               "DDSA": System(defenses.Defended(denoiser.model, clf.model), system_key(denoiser.key, clf.key))}
    rows = [r for eps in eps_values for r in threat_models.gray_box(cfg, clf, systems, names, eps=eps)]
    return pd.DataFrame(rows)


def epsilon_sweep_run(cfg: Config) -> pd.DataFrame:
    """:func:`epsilon_sweep` of ``cfg``'s DDSA, recorded as ``epsilon_sweep`` (Figure 5)."""
    t0 = time.perf_counter()
    clf = classifier(cfg)  # first, so that ``cached`` says whether this run trained it
    ddsa = defenses.denoiser(cfg, "ddsa")
    frame = epsilon_sweep(cfg, ddsa, clf=clf)
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


def craft_and_denoise(run: dict, cfg: Config, attack: str = "fgsm", n: int = 6) -> dict:
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


EXAMPLE_IMAGES = ("x", "x_adv", "denoised")  # :func:`craft_and_denoise`' images and their top predictions
EXAMPLE_PREDICTIONS = ("clean_pred", "adv_pred", "den_pred")


def denoised_examples_run(cfg: Config, attack: str = "fgsm", n: int = 6) -> dict:
    """:func:`craft_and_denoise` of ``cfg``'s DDSA, recorded as ``denoised_examples`` so that a build
    without the weights can draw Figures 7-8 (images stored as 8-bit pixels)."""
    t0 = time.perf_counter()
    ex = craft_and_denoise({"denoisers": {"ddsa": defenses.denoiser(cfg, "ddsa").model}}, cfg, attack, n)
    out = {"attack": attack, "y": ex["y"].tolist()} | {k: results.pack_images(ex[k]) for k in EXAMPLE_IMAGES}
    out |= {f"{part}_{field}": getattr(ex[part], field).tolist() for part in EXAMPLE_PREDICTIONS
            for field in ("values", "indices")}
    results.record("denoised_examples", cfg, out, {"this_run": time.perf_counter() - t0}, resolve_device(cfg.device))
    return ex


# --- Gradient masking (attacks chapter) ---------------------------------------------------------

#: The L-inf attacks' gradient variants (options of :func:`ddsa_core.attacks.build`).
GRADIENT_VARIANTS: dict[str, dict[str, str]] = {
    "float32": {},  # the paper's protocol: cross-entropy differentiated in float32
    "float64": {"precision": "float64"},
    "lse_margin": {"loss": "lse_margin"},
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


# --- Baselines (baselines chapter) ----------------------------------------------------------------


def baselines_run(cfg: Config, names: tuple[str, ...] = paper.ATTACKS) -> dict:
    """Train (or load) MagNet and FGSM adversarial training; clean accuracy, MagNet's false positives, gray-box rows; recorded."""
    t0 = time.perf_counter()
    clf = classifier(cfg)
    magnet, parts = baselines.magnet(cfg, clf.model)
    adv = baselines.adversarial_training(cfg)
    systems = {"No defense": System(clf.model, clf.key), "MagNet": System(magnet, system_key(parts["reformer"].key, clf.key)),
               "Adv. training": System(adv.model, adv.key)}
    x, y = data.load(cfg.dataset, "test", cfg.test_size)
    clean = {label: defended_accuracy(system, x, y, adversarial=False, batch_size=cfg.eval_batch_size)
             for label, (system, _) in systems.items()}
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


def system_key(*weights_keys: str) -> str:
    """The key of a defended system: the weights keys it is made of, front (denoiser, reformer) to classifier."""
    return cache.content_key(system=weights_keys)


def defended_systems(cfg: Config, only: tuple[str, ...] | None = None,
                     clf: Trained | None = None) -> dict[str, System]:
    """Every defense of the paper (or those labelled in ``only``) around the classifier of ``cfg``, with its weights key.

    MagNet is included on MNIST only (the paper's Tables 6 and 9). The key covers exactly the
    weights an attack differentiates through (MagNet: reformer and classifier, not the detectors).
    Only the defenses asked for are trained or loaded; ``clf`` skips loading the classifier again.
    """
    clf = clf or classifier(cfg)

    def denoised(name: str) -> System:
        den = defenses.denoiser(cfg, name)
        return System(defenses.Defended(den.model, clf.model, den.meta), system_key(den.key, clf.key))

    def magnet() -> System:
        system, parts = baselines.magnet(cfg, clf.model)
        return System(system, system_key(parts["reformer"].key, clf.key))

    def adversarially_trained() -> System:
        adv = baselines.adversarial_training(cfg)
        return System(adv.model, adv.key)

    build = {"No defense": lambda: System(clf.model, clf.key), "DDSA": lambda: denoised("ddsa"), "MagNet": magnet,
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
    gray = threat_models.gray_box(cfg, clf, systems, names)
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
    systems = defended_systems(cfg, only=("No defense", "DDSA", "DDA"), clf=clf)
    sliced = cfg.replace(attack_size=cfg.adaptive_size)
    rows = [r for k in iterations for r in threat_models.gray_box(sliced, clf, systems, ("pgd",), nb_iter=k)]
    results.record("pgd_iterations", cfg, {"rows": rows}, {"this_run": time.perf_counter() - t0}, resolve_device(cfg.device))
    return pd.DataFrame(rows)

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


def weaker_threat_models(cfg: Config, systems: dict) -> pd.DataFrame:
    """PGD accuracy of each system gray-box and black-box (the paper's PGD; cached with chapter 6's)."""
    clf = classifier(cfg)
    gray = threat_models.gray_box(cfg, clf, systems, ("pgd",))
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
        systems[label] = System(Defended(den.model, clf.model), f"{den.key}/{clf.key}")
    gray = pd.DataFrame(threat_models.gray_box(cfg, clf, systems, ("fgsm", "pgd")))
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
        gray = threat_models.gray_box(c, clf, systems, ("pgd",))
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


# --- The registry: every stage the record command runs, in dependency order ------------------------

STAGES: dict[str, Callable[[Config], object]] = {
    "classifier": classifier_run,
    "attacks_no_defense": no_defense_run,
    "gradient_masking": gradient_masking_run,
    "attacks_gradient_variants": gradient_variants_run,
    "gray_box": ddsa_run,
    "beta_sweep": beta_sweep_run,
    "denoised_examples": denoised_examples_run,
    "epsilon_sweep": epsilon_sweep_run,
    "baselines": baselines_run,
    "threat_models": threat_model_run,
    "pgd_iterations": pgd_iterations_run,
    "adaptive": adaptive_run,
    "sparsity_ablation": ablation_run,
    "seeds": seeds_run,
    "classifier_variants": protocol.classifier_variants_run,  # the recipes Table 3 leaves open (chapter 2)
    "lr_sweep": lr_sweep_run,  # last: a diagnosis that trains classifiers no table uses
}


ONLY_ON = {"baselines": baselines.MAGNET_DATASETS,  # chapter 5 compares MagNet and adversarial training where MagNet runs
           "beta_sweep": ("mnist",),  # it judges on a validation split, which CIFAR-10 lacks
           "lr_sweep": ("cifar10",)}  # Table 3's MNIST rate trains (chapter 2); its CIFAR-10 rate does not settle


def stages_for(dataset: str) -> list[str]:
    """Every stage the book reads for ``dataset``, in dependency order."""
    return [s for s in STAGES if dataset in ONLY_ON.get(s, (dataset,))]
