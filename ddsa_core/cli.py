"""The command line, ``python -m ddsa_core <command>``, with two commands.

``record``: ``python -m ddsa_core record --profile paper --dataset mnist`` runs, in dependency order,
every stage that writes ``results/<profile>/<dataset>/<stage>.json`` (:data:`ddsa_core.experiments.STAGES`,
the same calls the chapters make), each timed, so a machine without papermill (a GPU box) can produce
the recorded runs the book shows. A stage already recorded with the same config and commit is
skipped, so an interrupted run resumes; ``--budget-s`` stops starting new stages after that many seconds.

``reproduce``: ``python -m ddsa_core reproduce`` runs the book's chapters with papermill for one
profile. Each chapter (a MyST Markdown notebook, read with jupytext) runs with ``profile``, ``dataset``,
``seed`` and ``device`` injected, in the order of ``_toc.yml``, and is written to ``<out>/book/<chapter>.ipynb``. A chapter already executed
with the same parameters is skipped, so an interrupted run resumes where it stopped (and everything
inside a chapter is cached too). The chapters' records go to ``_build/records/``; only ``record``
writes the committed ``results/``.
"""
from __future__ import annotations

import json
import re
import sys
import time
import traceback
from pathlib import Path

import torch

from . import experiments, results
from .config import Config, cli_parser, make_config
from .runtime import REPO_ROOT, git_commit


# --- record ---------------------------------------------------------------------------------------

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
                    experiments.STAGES[stage](cfg)
                status = "recorded"
            except Exception:  # report and go on: later stages may not need this one
                traceback.print_exc()
                status = "failed"
            rows.append({"stage": stage, "status": status, "wall_s": time.perf_counter() - start})
        print(f"[record] {rows[-1]['stage']}: {rows[-1]['status']} ({rows[-1]['wall_s']:.0f} s)", flush=True)
    return rows



def _record(argv: list[str]) -> int:
    parser = cli_parser(description="Record a profile's results without Jupyter.", profile="paper", dataset="mnist",
                        datasets="mnist or cifar10")
    parser.prog = "python -m ddsa_core record"
    parser.add_argument("--stages", nargs="*", help=f"some of {list(experiments.STAGES)} (default: every stage of the "
                        f"dataset; {', '.join(f'{s} runs on {list(d)} only' for s, d in experiments.ONLY_ON.items())})")
    parser.add_argument("--budget-s", type=float, default=float("inf"), help="start no stage after this many seconds")
    parser.add_argument("--force", action="store_true", help="rerun stages recorded before")
    parser.add_argument("--dry-run", action="store_true", help="list what would run, and run nothing")
    parser.add_argument("--deterministic", action="store_true",
                        help="deterministic cuDNN kernels, so a rerun on the same GPU retrains the same weights")
    args = parser.parse_args(argv)
    try:
        cfg = make_config(args.profile, args.dataset, seed=args.seed, device=args.device)
        allowed = experiments.stages_for(cfg.dataset)
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



# --- reproduce ------------------------------------------------------------------------------------

def chapters(root: Path = REPO_ROOT) -> list[Path]:
    """The numbered chapters listed in ``_toc.yml``, in book order: MyST Markdown notebooks (jupytext)."""
    toc = (root / "_toc.yml").read_text()
    names = re.findall(r"file:\s*(book/\d\d_\w+)", toc)
    return [root / f"{name}.md" for name in names]


def chapter_notebook(chapter: Path):
    """A chapter's text source as the notebook papermill executes and Jupyter Book renders."""
    import jupytext

    return jupytext.read(chapter)


def already_done(output: Path, parameters: dict) -> bool:
    """True when ``output`` is a notebook papermill finished without error, with these parameters."""
    if not output.exists():
        return False
    meta = json.loads(output.read_text()).get("metadata", {}).get("papermill", {})
    finished = bool(meta.get("end_time")) and not meta.get("exception")  # papermill: exception None on success
    return finished and meta.get("parameters") == parameters


def run_chapters(profile: str, dataset: str, seed: int = 0, device: str = "auto", out: Path | None = None,
        only: list[str] | None = None, force: bool = False, dry_run: bool = False) -> list[dict]:
    """Execute the chapters; returns one row per chapter with its status and wall time.

    ``dry_run`` executes nothing: each chapter not done before is reported as ``would run``.
    """
    for ds in (["mnist", "cifar10"] if dataset == "both" else [dataset]):
        make_config(profile, ds, seed=seed, device=device)  # fail on bad input before any compute
    import papermill  # heavy import, after validation

    out = Path(out or REPO_ROOT / "_build" / "executed" / profile / dataset)
    parameters = {"profile": profile, "dataset": dataset, "seed": seed, "device": device}
    todo = [c for c in chapters() if not only or any(c.stem.startswith(o) for o in only)]
    if only and not todo:
        raise ValueError(f"--only {only} matches no chapter; chapters: {[c.stem for c in chapters()]}")
    rows = []
    for i, chapter in enumerate(todo, 1):
        target = out / "book" / f"{chapter.stem}.ipynb"
        if not force and already_done(target, parameters):
            print(f"[{i}/{len(todo)}] {chapter.stem}: done before, skipped", flush=True)
            rows.append({"chapter": chapter.stem, "status": "skipped", "wall_s": 0.0})
            continue
        if dry_run:
            print(f"[{i}/{len(todo)}] {chapter.stem}: would run ({profile}, {dataset})", flush=True)
            rows.append({"chapter": chapter.stem, "status": "would run", "wall_s": 0.0})
            continue
        print(f"[{i}/{len(todo)}] {chapter.stem}: running ({profile}, {dataset})", flush=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial.ipynb")
        t0 = time.perf_counter()
        papermill.execute_notebook(chapter_notebook(chapter), str(partial), parameters=parameters, cwd=str(chapter.parent),
                                   progress_bar=False, log_output=False)
        partial.replace(target)  # only a finished chapter counts as done
        rows.append({"chapter": chapter.stem, "status": "executed", "wall_s": time.perf_counter() - t0})
        print(f"    {rows[-1]['wall_s']:.0f} s", flush=True)
    return rows


def _reproduce(argv: list[str]) -> int:
    parser = cli_parser(description="Run the book's chapters with papermill for one profile.", profile="quick", dataset="both",
                        datasets="mnist, cifar10 or both")
    parser.prog = "python -m ddsa_core reproduce"
    parser.add_argument("--out", type=Path, default=None, help="folder for the executed notebooks")
    parser.add_argument("--only", nargs="*", help="chapter name prefixes, e.g. 02 03")
    parser.add_argument("--force", action="store_true", help="rerun chapters even if done before")
    parser.add_argument("--dry-run", action="store_true", help="list the chapters that would run, and run nothing")
    args = parser.parse_args(argv)
    try:
        rows = run_chapters(args.profile, args.dataset, args.seed, args.device, args.out, args.only, args.force, args.dry_run)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    total = sum(r["wall_s"] for r in rows)
    print(f"{len(rows)} chapters, {total:.0f} s: " + ", ".join(f"{r['chapter']} {r['status']} {r['wall_s']:.0f}s" for r in rows))
    return 0



COMMANDS = {"record": _record, "reproduce": _reproduce}


def main(argv: list[str] | None = None) -> int:
    """``python -m ddsa_core record|reproduce [options]``; exit code 2 on a bad command or option."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python -m ddsa_core {{{','.join(COMMANDS)}}} [options]", file=sys.stderr)
        return 2
    return COMMANDS[argv[0]](argv[1:])
