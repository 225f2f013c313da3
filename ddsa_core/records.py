"""The committed records (``results/<profile>/<dataset>/*.json``), read as the chapters show them.

:func:`document` and :func:`read` load a record, :func:`rows` and :func:`history` its frames;
:func:`table_of` builds a :mod:`ddsa_core.tables` table from it, or the :class:`Missing` admonition
that names the command which makes it. The ``*_numbers`` readers return the numbers a chapter
states about one record, each under a short key; the chapter writes the sentence around them.
"""
from __future__ import annotations

import math

import pandas as pd

import torch

from . import adaptive, data, experiments, paper, results, sanity, tables
from .config import Config, denoiser_train_size, make_config
from .models import INPUT_SHAPES

PENDING = "pending"


#: The records the book reads and does not have yet: each waits for a GPU to record it. A chapter shows
#: each as one :class:`Missing` admonition; any other record missing from the committed ``results/``
#: fails the chapter that reads it.
PENDING_RECORDS: frozenset[tuple[str, str, str]] = frozenset(
    {("paper", "mnist", "seeds"), ("reduced", "cifar10", "classifier_variants")}
    | {("paper", "cifar10", stage) for stage in ("epsilon_sweep", "threat_models", "adaptive", "sparsity_ablation",
                                                "seeds", "lr_sweep")})


def document(dataset: str, name: str, profile: str = "paper") -> dict | None:
    """The record ``results/<profile>/<dataset>/<name>.json`` (results, provenance, wall times), or ``None``
    for one of :data:`PENDING_RECORDS` (or any record, when ``$DDSA_RESULTS`` names another folder).
    Any other committed record that is missing raises, naming the command that makes it."""
    doc = results.load_record(profile, dataset, name)
    committed = results.results_root() == results.REPO_ROOT / "results"
    if doc is None and committed and (profile, dataset, name) not in PENDING_RECORDS:
        raise FileNotFoundError(f"results/{profile}/{dataset}/{name}.json is missing; the book reads it, and it is not "
                                f"in records.PENDING_RECORDS. Record it: {RECORD_COMMAND} --profile {profile} "
                                f"--dataset {dataset} --stages {name}")
    return doc


RECORD_COMMAND = "python -m ddsa_core record"


class Missing(str):
    """A record that does not exist, as :func:`missing` names it. It is a ``str`` (its plain text), and a
    notebook shows it as one warning admonition with the record's path and the command that makes it."""

    def __new__(cls, path: str, command: str):
        self = super().__new__(cls, f"{PENDING}: {path} ({command})")
        self.path, self.command = path, command
        return self

    def _repr_html_(self) -> str:
        from html import escape

        return ('<div class="admonition warning"><p class="admonition-title">Not recorded yet</p>'
                f"<p><code>{escape(self.path)}</code> is made by <code>{escape(self.command)}</code>.</p></div>")


def missing(name: str, dataset: str, profile: str = "paper", stages: tuple[str, ...] | None = None) -> Missing:
    """What a table shows in place of a record that does not exist: the record's path and the command
    that makes it (``stages``: the stages that command runs, default ``name``)."""
    return Missing(f"results/{profile}/{dataset}/{name}.json",
                   f"{RECORD_COMMAND} --profile {profile} --dataset {dataset} --stages {' '.join(stages or (name,))}")


def _results(doc: dict | None) -> dict | None:
    return doc["results"] if doc else None


def read(dataset: str, name: str, profile: str = "paper") -> dict | None:
    """The results of the record ``name`` (what its stage returned), or ``None`` before it exists."""
    return _results(document(dataset, name, profile))


def rows(dataset: str, name: str, profile: str = "paper", index: str | None = None) -> pd.DataFrame | None:
    """The record ``name``'s ``rows`` as a frame (indexed by the column ``index``), or ``None`` before it exists."""
    run = read(dataset, name, profile)
    frame = pd.DataFrame(run["rows"]) if run else None
    return frame.set_index(index) if frame is not None and index else frame


def history(dataset: str, name: str, key: str, profile: str = "paper") -> pd.DataFrame | None:
    """The record ``name``'s per-epoch ``history`` of each model (named in the column ``key``) in long form,
    or ``None`` before it exists."""
    run = read(dataset, name, profile)
    return tables.history_frame(run["history"], key=key) if run else None


def table_of(build, dataset: str, name: str, *args, profile: str = "paper"):
    """``build(results, *args)``: a :mod:`ddsa_core.tables` table of the record ``name``, or its :class:`Missing`."""
    run = read(dataset, name, profile)
    return build(run, *args) if run else missing(name, dataset, profile)


# --- Classifiers (chapter 2) and attacks (chapter 3) -----------------------------------------------

def classifier_history() -> pd.DataFrame:
    """Per-epoch history of every recorded classifier run, in long form."""
    return tables.history_frame({ds: run for ds in paper.CLEAN_ACCURACY if (run := read(ds, "classifier"))})


def gradient_diagnostics(dataset: str) -> dict:
    """``{"masking", "variants", "device"}``: the recorded gradient-masking checks and gradient-variant
    attacks (each ``None`` while pending) and the device the variants ran on."""
    variants = document(dataset, "attacks_gradient_variants")
    return {"masking": _results(document(dataset, "gradient_masking")), "variants": _results(variants),
            "device": variants["provenance"]["device"] if variants else PENDING}


def gradient_masking_numbers(rec: dict) -> dict[str, float | str]:
    """The recorded gradient diagnostics (:func:`gradient_diagnostics`) as numbers: the saturation
    statistics, each attack's accuracy (``<attack>_<variant>``) and crafting seconds (``..._s``) per
    gradient variant, the share of images the float32 FGSM and MIM leave unchanged, and the device."""
    sat = rec["masking"]["saturation"]
    rows = {(r["attack"], r["variant"]): r for r in rec["variants"]["rows"]}
    out: dict[str, float | str] = {f"{a}_unchanged": rows[a, "float32"]["unchanged"] for a in ("fgsm", "mim")}
    for variant in experiments.GRADIENT_VARIANTS:
        for a in experiments.LINF_ATTACKS:
            out |= {f"{a}_{variant}": rows[a, variant]["accuracy"], f"{a}_{variant}_s": rows[a, variant]["craft_s"]}
    stats = {"margin": "median_top2_margin", "zero": "zero_grad_images_float32", "underflow": "above_underflow_float32",
             "cancel": "above_cancel_float32", "cancel64": "above_cancel_float64", "sign32": "sign_agreement_float32",
             "sign64": "sign_agreement_float64"}
    return out | {name: sat[key] for name, key in stats.items()} | {"device": rec["device"]}


def recorded_on(dataset: str, names: tuple[str, ...]) -> str:
    """Where the recorded paper-profile runs ``names`` of ``dataset`` ran: the one device, or each device with
    its runs; :data:`PENDING` when none is recorded."""
    runs: dict[str, list[str]] = {}
    for name in names:
        if (doc := document(dataset, name)) is not None:
            runs.setdefault(doc["provenance"]["device"], []).append(name)
    if len(runs) < 2:
        return next(iter(runs), PENDING)
    return "; ".join(f"{device} ({', '.join(done)})" for device, done in runs.items())


def paper_scale(dataset: str) -> dict[str, int]:
    """The paper profile's scale, read from its configuration so the chapters' prose cannot drift from
    it: training images, classifier and denoiser epochs, test images per attack (all, when
    the profile leaves them at None), C&W's and the adaptive battery's images, its restarts, steps and Square's queries."""
    cfg = make_config("paper", dataset)
    return {"train": cfg.train_size or data.TRAIN_SIZE[dataset], "clf_epochs": cfg.clf_epochs,
            "ae_epochs": cfg.ae_epochs, "test": cfg.attack_size or cfg.test_size or data.TEST_SIZE,
            "cw": cfg.cw_size, "adaptive_images": cfg.adaptive_size, "restarts": cfg.adaptive_restarts,
            "steps": cfg.adaptive_steps, "square": cfg.square_queries}


# --- DDSA (chapter 4) and the baselines (chapter 5) -----------------------------------------------

def _clean_and_pgd(rows: pd.DataFrame) -> dict[str, float | int]:
    """Images, clean accuracy without and behind DDSA, and DDSA's PGD accuracy, of gray-box rows at one eps."""
    at = rows.set_index(["defense", "attack"])
    return {"images": int(at.loc[("DDSA", "pgd"), "images"]), "clean": float(at.loc[("No defense", "pgd"), "clean_accuracy"]),
            "ddsa_clean": float(at.loc[("DDSA", "pgd"), "clean_accuracy"]), "ddsa_pgd": float(at.loc[("DDSA", "pgd"), "accuracy"])}


def changed_weights(doc: dict, gray: dict) -> list[str]:
    """Which of a recorded Figure 5 run's models ("classifier", "DDSA") have weights keys other than the
    gray-box run's: models trained with other settings or code, not the same models on another device."""
    ours, theirs = doc["results"]["weights"], gray["results"]
    keys = {"classifier": (ours["classifier"]["key"], theirs["classifier_key"]),
            "DDSA": (ours["ddsa"]["key"], theirs["weights_keys"]["ddsa"])}
    return [label for label, (mine, other) in keys.items() if mine != other]


def epsilon_sweep_numbers(dataset: str) -> dict[str, float | int | str] | None:
    """The recorded Figure 5 run at the paper's eps (:func:`_clean_and_pgd`), beside the same cells of the
    recorded gray-box run (``gb_*``), its device and the minutes its classifier and DDSA trained (DDSA's with
    its PGD training pairs); ``None`` before that run exists."""
    doc, gray = document(dataset, "epsilon_sweep"), document(dataset, "gray_box")
    if doc is None:
        return None
    frame, weights = pd.DataFrame(doc["results"]["rows"]), doc["results"]["weights"]
    at_paper_eps = _clean_and_pgd(frame[(frame.eps - doc["config"]["eps"]).abs() < 1e-9])
    gb = {f"gb_{k}": v for k, v in _clean_and_pgd(pd.DataFrame(gray["results"]["rows"])).items()} if gray else {}
    return at_paper_eps | gb | {
        "device": doc["provenance"]["device"], "train_clf": weights["classifier"]["train_wall_s"] / 60,
        "train_ddsa": weights["ddsa"]["train_wall_s"] / 60}


def gray_box_tables(dataset: str, doc: dict | None) -> list[pd.DataFrame] | str:
    """The recorded gray-box table beside the paper's and the sparsity statistics, or why they are missing."""
    if doc is None:
        return missing("gray_box", dataset)
    return [tables.gray_box_table(doc["results"], dataset), tables.sparsity_frame(doc["results"])]


def beta_sweep_history(dataset: str) -> pd.DataFrame | None:
    """:func:`history` of the beta sweep, rates in numeric order (the record's keys are strings, sorted as text)."""
    frame = history(dataset, "beta_sweep", "beta")
    return frame.sort_values("beta", key=lambda b: b.astype(float), kind="stable") if frame is not None else None


def beta_sweep_numbers(dataset: str) -> dict[str, float | int | str | list[float]] | None:
    """The recorded beta sweep as numbers: its device, the validation images and their split, the rates
    tried; the book's rate's final gray-box PGD accuracy on them (``book``), the best other rate and its
    accuracy (``rival``, ``rival_acc``), the book's lead over it and one measurement's noise (a 95 %
    binomial half-width), both in points. ``None`` before the sweep exists."""
    doc = document(dataset, "beta_sweep")
    if doc is None:
        return None
    run, book = doc["results"], make_config("paper", dataset).sparsity_beta
    acc = pd.DataFrame(run["rows"]).set_index("beta").val_acc_pgd_graybox
    rivals = acc.drop(book)
    return {"device": doc["provenance"]["device"], "images": run["images"], "split": run["split"],
            "betas": [float(b) for b in acc.index], "book": float(acc[book]), "rival": float(rivals.idxmax()),
            "rival_acc": float(rivals.max()), "lead": float(100 * (acc[book] - rivals.max())),
            "noise": 100 * sanity.binomial_margin(acc.max(), run["images"], continuity=False)}


def lr_sweep_doc(dataset: str) -> dict | None:
    """The largest-scale recorded learning-rate sweep of ``dataset``: the paper profile's, else the reduced one's."""
    return document(dataset, "lr_sweep") or table8_run(dataset, "lr_sweep")


CLASSIFIER_FIELDS = ("train_size", "test_size")  # with every clf_* field: what shapes a classifier and its test accuracy


def lr_deviations(doc: dict) -> pd.DataFrame:
    """The classifier settings of a recorded learning-rate sweep that differ from the paper profile's."""
    dev = deviations(doc)
    return dev[[f.startswith("clf_") or f in CLASSIFIER_FIELDS for f in dev.index]]


def lr_sweep_numbers(dataset: str) -> dict[str, float | int | str] | None:
    """The recorded learning-rate sweep (:func:`lr_sweep_doc`) as numbers: its profile, epochs, test images and
    device; at Table 3's rate the lowest and final training loss and the test accuracy (``t3_*``); the best
    other rate, its final loss and test accuracy (``other*``), its gain over Table 3's rate and one
    measurement's noise (95 % binomial half-width), both in points; and the lowest training loss of the
    paper-profile classifier, its epoch and the epochs run (``paper_*``; 0 epochs when that is not recorded).
    ``None`` before the sweep exists."""
    doc = lr_sweep_doc(dataset)
    if doc is None:
        return None
    run = doc["results"]
    rows, paper_lr = pd.DataFrame(run["rows"]).set_index("lr"), make_config("paper", dataset).clf_lr
    mine, others = rows.loc[paper_lr], rows.drop(paper_lr)
    other = others.loc[others.test_accuracy.idxmax()]
    paper = document(dataset, "classifier")
    history = paper["results"]["history"] if paper else []
    low = min(history, key=lambda h: h["loss"]) if history else {"loss": float("nan"), "epoch": 0}
    return {"profile": doc["profile"], "epochs": doc["config"]["clf_epochs"], "images": run["images"],
            "device": doc["provenance"]["device"], "t3_min_loss": float(mine.min_loss),
            "t3_final_loss": float(mine.final_loss), "t3_acc": float(mine.test_accuracy),
            "other": float(other.name), "other_final_loss": float(other.final_loss),
            "other_acc": float(other.test_accuracy), "gap": float(100 * (other.test_accuracy - mine.test_accuracy)),
            "noise": 100 * sanity.binomial_margin(max(other.test_accuracy, mine.test_accuracy), run["images"],
                                                  continuity=False),
            "paper_low_loss": low["loss"], "paper_low_epoch": low["epoch"], "paper_epochs": len(history)}


def cifar10_costs() -> dict[str, float | int | str]:
    """What CIFAR-10's classifier and learning-rate sweep cost, from the records that exist: Table 3's epochs
    on the CPU in hours (``clf_hours_low``, ``_high``), scaled from each run that trained the reduced
    classifier (:func:`_reduced_classifier_runs`: their count and minutes) and its epochs; twice the
    paper-profile classifier's training minutes (``lr_cost_gpu``: the sweep on its GPU); the reduced
    sweep's minutes per rate and its device."""
    out: dict[str, float | int | str] = {}
    epochs = make_config("paper", "cifar10").clf_epochs
    red, sweep = table8_run("cifar10", "classifier"), table8_run("cifar10", "lr_sweep")
    if red:
        minutes = [m for m, _, _ in _reduced_classifier_runs(red, sweep)]
        scale = epochs / red["config"]["clf_epochs"] / 60
        out |= {"clf_hours_low": min(minutes) * scale, "clf_hours_high": max(minutes) * scale,
                "red_clf_epochs": red["config"]["clf_epochs"], "red_clf_runs": len(minutes),
                "red_clf_minutes_low": min(minutes), "red_clf_minutes_high": max(minutes)}
    if paper := document("cifar10", "classifier"):
        out["lr_cost_gpu"] = 2 * paper["wall_s"]["train"] / 60
    if sweep:
        minutes = [w["train_wall_s"] / 60 for w in sweep["results"]["weights"].values()]
        out |= {"lr_cost_cpu_low": min(minutes), "lr_cost_cpu_high": max(minutes),
                "lr_cost_cpu_device": sweep["provenance"]["device"]}
    return out


def _reduced_classifier_runs(red: dict, sweep: dict | None) -> list[tuple[float, str, str]]:
    """(training minutes, device, day) of each recorded run that trained the reduced CIFAR-10 classifier:
    its own record, and the learning-rate sweep's row of the same weights key when that row trained it again."""
    when = lambda doc: (doc["provenance"]["device"], doc["provenance"]["date"][:10])
    runs = [(red["wall_s"]["train"] / 60, *when(red))]
    row = sweep["results"]["weights"].get(f"{red['config']['clf_lr']:g}") if sweep else None
    if row and not row["cached"] and row["key"] == red["results"]["weights_key"]:
        runs.append((row["train_wall_s"] / 60, *when(sweep)))
    return runs


# --- Every threat model (chapter 6) ---------------------------------------------------------------

def accuracy_at(rows: list[dict], defense: str, attack: str = "pgd") -> float:
    """The accuracy of ``defense`` under ``attack`` in one threat model's rows."""
    return next(r["accuracy"] for r in rows if r["attack"] == attack and r["defense"] == defense)


# --- Adaptive evaluation (chapter 7) --------------------------------------------------------------

def adaptive_frames(dataset: str, profile: str = "paper") -> dict | None:
    """The recorded adaptive run as the frames the chapter draws (battery, curves, checks, weaker
    threat models, ablation) and its ``config``, or ``None`` before that run exists."""
    doc = document(dataset, "adaptive", profile)
    if doc is None:
        return None
    run = doc["results"]
    frames: dict = {"config": doc["config"]}
    for name, key in (("battery", "battery"), ("eps", "eps_curve"), ("steps", "steps_curve"), ("restarts", "restarts"),
                      ("checks", "checks"), ("weaker", "weaker"), ("unbounded", "unbounded")):
        frames[name] = pd.DataFrame(run[key])
    frames["ablation"] = rows(dataset, "sparsity_ablation", index="denoiser") if profile == "paper" else None  # recorded with the paper's only
    frames["keys"] = run.get("keys", {})
    return frames


def adaptive_accuracy_table(dataset: str, rec: dict | None = None) -> pd.DataFrame | str:
    """The recorded robust-accuracy table (defense × attack), or why it is missing."""
    rec = rec or adaptive_frames(dataset)
    if rec is None:
        return missing("adaptive", dataset)
    return adaptive.accuracy_table(rec["battery"])


def magnet_detector_aware(dataset: str, rec: dict | None = None) -> pd.DataFrame | str:
    """MagNet attacked with its detectors in the loop, from the recorded adaptive run, or why it is missing."""
    if dataset != "mnist":
        return tables.MAGNET_MNIST_ONLY
    rec = rec or adaptive_frames(dataset)
    if rec is None or "detector-aware" not in set(rec["battery"].attack):
        return PENDING
    return tables.detector_aware_table(rec["battery"], rec["config"]["adaptive_steps"],
                                                 rec["config"]["adaptive_restarts"])


# --- CIFAR-10's adaptive evaluation at the scale two CPU cores run (chapter 7) -----------------------

CPU_PROFILE = "quick"  # the profile CIFAR-10's battery is recorded in until a GPU records the paper's


def cpu_adaptive_table(dataset: str, profile: str = CPU_PROFILE) -> pd.DataFrame | str:
    """The robust-accuracy table (attack × defense) of the recorded ``profile`` adaptive run, or why it is missing."""
    rec = adaptive_frames(dataset, profile)
    if rec is None:
        return missing("adaptive", dataset, profile, ("gray_box", "adaptive"))
    return adaptive.accuracy_table(rec["battery"])


def _clean_behind(gray: dict | None, keys: dict[str, str]) -> dict[str, float] | None:
    """Clean accuracy per defense from a gray-box record, when it used the adaptive run's classifier and denoisers."""
    if gray is None:
        return None
    run = gray["results"]
    clf = run["classifier_key"]
    same = {"No defense": clf} | {label: experiments.system_key(run["weights_keys"][name], clf)
                                  for label, name in (("DDSA", "ddsa"), ("DDA", "dda"))}
    if any(keys.get(label) != key for label, key in same.items()):
        return None
    pgd = [r for r in run["rows"] if r["attack"] == "pgd"]  # the rows of the adaptive record's gray-box PGD images
    return {r["defense"]: r["clean_accuracy"] for r in pgd} | {"images": pgd[0]["images"]}


def cpu_adaptive_numbers(dataset: str, profile: str = CPU_PROFILE) -> dict | None:
    """The recorded ``profile`` adaptive run of ``dataset`` as numbers: its scale (classifier epochs and
    training images, denoiser epochs and pair images, eps), :func:`~ddsa_core.tables.verdict`'s numbers,
    DDSA's gray-box gain over no defense, the sanity checks passed and run, and clean accuracy per
    defense with its images (``clean_*``, from the gray-box record of the same weights, else absent);
    ``None`` before the run exists."""
    rec = adaptive_frames(dataset, profile)
    if rec is None:
        return None
    cfg = Config(**rec["config"])
    gray = rec["weaker"][rec["weaker"].threat_model == "gray-box"].set_index("defense").accuracy
    out = tables.verdict(rec["battery"], rec["weaker"]) | {
        "clf_epochs": cfg.clf_epochs, "train_images": cfg.train_size or data.TRAIN_SIZE[dataset],
        "ae_epochs": cfg.ae_epochs, "ae_images": denoiser_train_size(cfg) or data.TRAIN_SIZE[dataset], "eps": cfg.eps,
        "gain": float(gray["DDSA"] - gray["No defense"]), "checks_passed": int(rec["checks"].passed.sum()),
        "checks": len(rec["checks"])}
    clean = _clean_behind(document(dataset, "gray_box", profile), rec["keys"])
    return out | ({f"clean_{VERDICT_NAMES[k]}": v for k, v in clean.items()} if clean else {})


VERDICT_NAMES = tables.VERDICT_DEFENSES | {"images": "images"}


# --- Table 8 and Figure 8 (chapter 4): recorded at paper scale on a GPU, and at reduced scale on two CPU cores ---

REDUCED = "reduced"
TABLE8_PROFILES = ("paper", REDUCED)  # the profiles Table 8 is recorded in
TABLE8_STAGES = ("classifier", "attacks_no_defense", "gray_box", "denoised_examples")  # Table 8 and Figure 8


def table8_run(dataset: str, name: str, profile: str = REDUCED) -> dict | None:
    """A recorded run of Table 8's stages, ``results/<profile>/<dataset>/<name>.json``, if any."""
    return document(dataset, name, profile)


def denoised_images(dataset: str, profile: str) -> dict | None:
    """Figure 7's (MNIST) or 8's (CIFAR-10) images from a recorded run's DDSA (clean, adversarial, denoised), if recorded."""
    doc = table8_run(dataset, "denoised_examples", profile)
    if doc is None:
        return None
    res = doc["results"]
    pred = lambda part: (torch.tensor(res[f"{part}_values"]), torch.tensor(res[f"{part}_indices"]))
    return ({k: results.unpack_images(res[k]) for k in experiments.EXAMPLE_IMAGES} | {"y": torch.tensor(res["y"])}
            | {part: pred(part) for part in experiments.EXAMPLE_PREDICTIONS})


def deviations(doc: dict) -> pd.DataFrame:
    """Every config field of a recorded run that differs from the paper profile's, with both values."""
    theirs = make_config("paper", doc["dataset"]).to_dict()
    show = lambda v: "all" if v is None else v
    config = results.recorded_config(doc["config"])
    rows = [{"field": k, "paper profile": show(theirs[k]), "this run": show(v)}
            for k, v in config.items() if k not in ("profile", "device") and v != theirs[k]]
    return pd.DataFrame(rows, columns=["field", "paper profile", "this run"]).astype(str).set_index("field")


def reduced_tables(dataset: str) -> list[pd.DataFrame] | str:
    """The reduced run's gray-box table beside the paper's, and its deviations from the paper profile, or why they are missing."""
    doc = table8_run(dataset, "gray_box")
    if doc is None:
        return missing("gray_box", dataset, REDUCED, TABLE8_STAGES)
    return [tables.gray_box_table(doc["results"], dataset), deviations(doc)]


def gray_box_claims(dataset: str, profile: str = "paper") -> pd.DataFrame | str:
    """The paper's gray-box claims measured on a recorded gray-box run (Table 7 or 8) alone, or why it is missing."""
    doc = table8_run(dataset, "gray_box", profile)
    if doc is None:
        return missing("gray_box", dataset, profile)
    claims = tables.claims_table({"gray_box": doc["results"]["rows"]}, dataset)
    return claims[claims["threat model"] == "gray-box"].dropna(axis=1, how="all")  # the others' "not measured" notes go


def table8_numbers(dataset: str, profile: str = REDUCED) -> dict[str, float | int]:
    """A recorded run of Table 8's stages as numbers, each part once its record exists: the classifier's
    clean accuracy and test images; the RMS pixel error PGD adds (``pgd_rms``); the minutes every stage
    took; and from the gray-box record (:func:`_gray_numbers`) the denoisers' numbers."""
    if profile not in TABLE8_PROFILES:
        raise ValueError(f"profile must be one of {tuple(TABLE8_PROFILES)} (the recorded Table 8 runs); got {profile!r}")
    docs = {name: table8_run(dataset, name, profile) for name in TABLE8_STAGES}
    out: dict[str, float | int] = {}
    if clf := docs["classifier"]:  # its wall_s["train"]: a later stage only reloads it
        out |= {"clean": clf["results"]["test_accuracy"], "clean_images": clf["results"]["test_size"]}
    if attacks := docs["attacks_no_defense"]:  # per image ||delta||_2 / sqrt(pixels): its RMS per pixel
        pgd = next(r for r in attacks["results"]["rows"] if r["attack"] == "pgd")
        out["pgd_rms"] = pgd["mean_l2"] / math.sqrt(math.prod(INPUT_SHAPES[dataset]))
    if all(docs.values()):  # what each stage cost, the crafting and training it reloaded included
        out["minutes"] = sum(results.compute_s(d) for d in docs.values()) / 60
    return out | (_gray_numbers(docs["gray_box"]) if docs["gray_box"] else {})


GRAY_LABELS = {"nodef": "No defense", "ddsa": "DDSA", "dda": "DDA"}  # key part: the gray-box table's defense


def _gray_numbers(gray: dict) -> dict[str, float | int]:
    """The gray-box part of :func:`table8_numbers`: PGD and clean accuracy per defense (``<nodef|ddsa|dda>_<pgd|clean>``)
    on ``images``; the monitoring and C&W images; DDSA's last-epoch RMS error on the PGD examples; the range,
    in points, of each denoiser's accuracy under attack minus its clean accuracy (``gap_low``, ``gap_high``);
    and the denoisers' epochs, training pairs, optimiser steps against the paper's scale's, pairs a
    second, and the hours the paper's scale would take at that rate."""
    dataset, cfg = gray["dataset"], gray["config"]
    pairs = denoiser_train_size(Config(**cfg)) or data.TRAIN_SIZE[dataset]  # None: the whole training split
    rows = gray["results"]["rows"]
    pgd = {r["defense"]: r for r in rows if r["attack"] == "pgd"}
    gaps = [r["accuracy"] - r["clean_accuracy"] for r in rows if r["defense"] in ("DDSA", "DDA")]
    paper_cfg = make_config("paper", dataset)
    steps = lambda n, batch, epochs: -(-n // batch) * epochs  # optimiser steps: ceil(n / batch) a epoch
    rate = pairs * cfg["ae_epochs"] / gray["wall_s"]["train_dda"]  # DDA's wall has no PGD crafting in it
    out = {"images": pgd["DDSA"]["images"], "val_images": cfg["ae_val_size"],
           "cw_images": next(r["images"] for r in rows if r["attack"] == "cw" and r["defense"] == "DDSA"),
           "ddsa_rms": math.sqrt(gray["results"]["history"]["ddsa"][-1]["val_mse_pgd"]),
           "gap_low": 100 * min(gaps), "gap_high": 100 * max(gaps), "epochs": cfg["ae_epochs"], "pairs": pairs,
           "steps": steps(pairs, cfg["ae_batch_size"], cfg["ae_epochs"]),
           "paper_steps": steps(data.TRAIN_SIZE[dataset], paper_cfg.ae_batch_size, paper_cfg.ae_epochs),
           "pairs_s": rate, "paper_hours": data.TRAIN_SIZE[dataset] * paper_cfg.ae_epochs / rate / 3600}
    for key, label in GRAY_LABELS.items():
        out |= {f"{key}_pgd": pgd[label]["accuracy"], f"{key}_clean": pgd[label]["clean_accuracy"]}
    return out
