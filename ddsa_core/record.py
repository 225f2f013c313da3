"""Record a profile's results without Jupyter: ``python -m ddsa_core.record --profile paper --dataset mnist``.

Runs, in dependency order, every stage that writes ``results/<profile>/<dataset>/<stage>.json`` (the
same calls the chapters make), each timed, so a machine without papermill (a GPU box) can produce the
recorded runs the book shows. A stage already recorded with the same config and commit is skipped,
so an interrupted run resumes; ``--budget-s`` stops starting new stages after that many seconds.
"""
from __future__ import annotations

import sys
import time
import traceback
from typing import Callable

import torch

from . import baselines, experiments, protocol, results
from .config import Config, cli_parser, make_config
from .runtime import git_commit

STAGES: dict[str, Callable[[Config], object]] = {
    "classifier": experiments.classifier_run,
    "attacks_no_defense": experiments.no_defense_run,
    "gradient_masking": experiments.gradient_masking_run,
    "attacks_gradient_variants": experiments.gradient_variants_run,
    "gray_box": experiments.ddsa_run,
    "beta_sweep": experiments.beta_sweep_run,
    "denoised_examples": experiments.denoised_examples_run,
    "epsilon_sweep": experiments.epsilon_sweep_run,
    "baselines": experiments.baselines_run,
    "threat_models": experiments.threat_model_run,
    "pgd_iterations": experiments.pgd_iterations_run,
    "adaptive": experiments.adaptive_run,
    "sparsity_ablation": experiments.ablation_run,
    "seeds": experiments.seeds_run,
    "classifier_variants": protocol.classifier_variants_run,  # the recipes Table 3 leaves open (chapter 2)
    "lr_sweep": experiments.lr_sweep_run,  # last: a diagnosis that trains classifiers no table uses
}


ONLY_ON = {"baselines": baselines.MAGNET_DATASETS,  # chapter 5 compares MagNet and adversarial training where MagNet runs
           "beta_sweep": ("mnist",),  # it judges on a validation split, which CIFAR-10 lacks
           "classifier_variants": ("mnist",),  # CIFAR-10's recipe candidates differ (augmentation, BatchNorm): not yet run
           "lr_sweep": ("cifar10",)}  # Table 3's MNIST rate trains (chapter 2); its CIFAR-10 rate does not settle


def stages_for(dataset: str) -> list[str]:
    """Every stage the book reads for ``dataset``, in dependency order."""
    return [s for s in STAGES if dataset in ONLY_ON.get(s, (dataset,))]


def is_recorded(cfg: Config, stage: str) -> bool:
    """True when ``stage`` is recorded for exactly this config by this commit."""
    doc = results.load_record(cfg.profile, cfg.dataset, stage)
    return bool(doc) and doc["config"] == cfg.to_dict() and doc["provenance"]["commit"] == git_commit()


def record_stages(cfg: Config, stages: list[str], budget_s: float = float("inf"), force: bool = False,
        dry_run: bool = False) -> list[dict]:
    """Run ``stages`` in order; a failing stage is reported and the next one still runs.

    ``dry_run`` computes nothing: each stage not recorded before is reported as ``would run``.
    """
    git_commit()  # read now, so that every stage records the commit whose code this process loaded
    rows, t0 = [], time.perf_counter()
    for stage in stages:
        if not force and is_recorded(cfg, stage):
            rows.append({"stage": stage, "status": "recorded before", "wall_s": 0.0})
        elif dry_run:
            rows.append({"stage": stage, "status": "would run", "wall_s": 0.0})
        elif time.perf_counter() - t0 > budget_s:
            rows.append({"stage": stage, "status": "not started (budget)", "wall_s": 0.0})
        else:
            start = time.perf_counter()
            try:
                with results.recording():  # the one writer of results/
                    STAGES[stage](cfg)
                status = "recorded"
            except Exception:  # report and go on: later stages may not need this one
                traceback.print_exc()
                status = "failed"
            rows.append({"stage": stage, "status": status, "wall_s": time.perf_counter() - start})
        print(f"[record] {rows[-1]['stage']}: {rows[-1]['status']} ({rows[-1]['wall_s']:.0f} s)", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = cli_parser(__doc__.splitlines()[0], profile="paper", dataset="mnist", datasets="mnist or cifar10")
    parser.add_argument("--stages", nargs="*", help=f"some of {list(STAGES)} (default: every stage of the dataset; "
                        f"{', '.join(f'{s} runs on {list(d)} only' for s, d in ONLY_ON.items())})")
    parser.add_argument("--budget-s", type=float, default=float("inf"), help="start no stage after this many seconds")
    parser.add_argument("--force", action="store_true", help="rerun stages recorded before")
    parser.add_argument("--dry-run", action="store_true", help="list what would run, and run nothing")
    parser.add_argument("--deterministic", action="store_true",
                        help="deterministic cuDNN kernels, so a rerun on the same GPU retrains the same weights")
    args = parser.parse_args(argv)
    try:
        cfg = make_config(args.profile, args.dataset, seed=args.seed, device=args.device)
        allowed = stages_for(cfg.dataset)
        args.stages = allowed if args.stages is None else args.stages
        unknown = sorted(set(args.stages) - set(allowed))
        if unknown:
            raise ValueError(f"--stages {unknown} unknown for dataset {cfg.dataset!r}; allowed: {allowed}")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.deterministic:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
        torch.use_deterministic_algorithms(True, warn_only=True)
    rows = record_stages(cfg, args.stages, args.budget_s, args.force, args.dry_run)
    print("[record] " + ", ".join(f"{r['stage']} {r['status']} {r['wall_s']:.0f}s" for r in rows), flush=True)
    return 1 if any(r["status"] == "failed" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
