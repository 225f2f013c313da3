"""Wall time of a recorded run, per stage, read from ``results/<profile>/<dataset>/*.json``.

``python benchmarks/paper_stages.py [--dataset mnist] [--profile paper|reduced]`` prints a Markdown table: each stage of
``python -m ddsa_core record`` with the device, commit and date it ran on, its wall time, and its cost: the
wall time, or the crafting and training it reloaded from the cache when those are larger (``results.compute_s``;
stages that reload the same weights share that cost, so the column has no total).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ddsa_core import experiments, results# noqa: E402


def stage_rows(dataset: str, profile: str = "paper") -> list[dict]:
    """One row per recorded stage, in the recorder's order."""
    rows = []
    for stage in experiments.STAGES:
        doc = results.load_record(profile, dataset, stage)
        if doc:
            prov = doc["provenance"]
            rows.append({"stage": stage, "device": prov["device"], "commit": prov["commit"][:7],
                         "date": prov["date"][:16], "wall_s": results.wall_total(doc), "cost_s": results.compute_s(doc)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--profile", default="paper", help="paper or reduced: the committed runs")
    args = parser.parse_args(argv)
    rows = stage_rows(args.dataset, args.profile)
    print("| stage | device | commit | started (UTC) | wall s | cost s |\n|---|---|---|---|---:|---:|")
    for r in rows:
        print(f"| {r['stage']} | {r['device']} | {r['commit']} | {r['date']} | {r['wall_s']:.0f} | {r['cost_s']:.0f} |")
    wall = sum(r["wall_s"] for r in rows)  # costs overlap where stages reload the same weights: not summed
    print(f"| **total** | | | | **{wall:.0f}** ({wall / 60:.1f} min) | |")
    runs: dict[tuple[str, str], float] = {}  # one record command per device and commit
    for r in rows:
        runs[r["device"], r["commit"]] = runs.get((r["device"], r["commit"]), 0.0) + r["wall_s"]
    for (device, commit), s in runs.items():
        print(f"| total of the run | {device} | {commit} | | {s:.0f} ({s / 60:.1f} min) | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
