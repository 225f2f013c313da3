"""Run the book's chapters with papermill for one profile: ``python -m ddsa_core.reproduce``.

Each chapter runs with ``profile``, ``dataset``, ``seed`` and ``device`` injected, in the order of
``_toc.yml``, and is written to ``<out>/book/<chapter>.ipynb``. A chapter already executed with
the same parameters is skipped, so an interrupted run resumes where it stopped (and everything
inside a chapter is cached too). The chapters' records go to ``_build/records/``; only
``python -m ddsa_core.record`` writes the committed ``results/``.
"""
from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

from .config import cli_parser, make_config
from .runtime import REPO_ROOT


def chapters(root: Path = REPO_ROOT) -> list[Path]:
    """The numbered chapter notebooks listed in ``_toc.yml``, in book order."""
    toc = (root / "_toc.yml").read_text()
    names = re.findall(r"file:\s*(book/\d\d_\w+)", toc)
    return [root / f"{name}.ipynb" for name in names]


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
        target = out / "book" / chapter.name
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
        papermill.execute_notebook(str(chapter), str(partial), parameters=parameters, cwd=str(chapter.parent),
                                   progress_bar=False, log_output=False)
        partial.replace(target)  # only a finished chapter counts as done
        rows.append({"chapter": chapter.stem, "status": "executed", "wall_s": time.perf_counter() - t0})
        print(f"    {rows[-1]['wall_s']:.0f} s", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = cli_parser(__doc__.splitlines()[0], profile="quick", dataset="both", datasets="mnist, cifar10 or both")
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


if __name__ == "__main__":
    sys.exit(main())
