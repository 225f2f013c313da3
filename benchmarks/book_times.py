"""Wall time of the book, per chapter: cold (nbval in `make test`) and warm (papermill in `make book`).

Reads what the two commands leave behind, so it measures the very runs CI makes and costs nothing:

- cold: `make test` runs nbval with ``--junitxml=_build/nbval.xml``; the cell times of each chapter
  are summed (the first cell includes the kernel's start). In CI the model cache starts empty, but
  the unit tests run first and train a few of the quick models (MagNet and adversarial training among
  them), so a newcomer's first `make book` pays somewhat more (benchmarks/README.md: 838 s against 740).
- warm: `make book` executes each chapter with papermill into ``_build/stage/book``; papermill
  stores each notebook's duration. After `make test` the cache is full, so this is a rerun's cost.

    .venv/bin/python benchmarks/book_times.py [--junit _build/nbval.xml] [--stage _build/stage] [--out F]

Either source may be missing (then its column is empty). Target (issue 8): the quick book in 10 minutes.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 600  # issue 8: the whole quick book in 10 minutes on 2 CPU cores


def chapter_of(name: str) -> str | None:
    """``book.03_attacks.ipynb`` or ``book/03_attacks.ipynb`` -> ``03_attacks``."""
    match = re.search(r"(\d\d_\w+)\.ipynb", name)
    return match.group(1) if match else None


def cold_times(junit: Path) -> dict[str, float]:
    """Seconds per chapter, summed over nbval's cell test cases in a JUnit XML report."""
    if not junit.exists():
        return {}
    times: dict[str, float] = {}
    for case in ET.parse(junit).iter("testcase"):
        chapter = chapter_of(case.get("classname", ""))
        if chapter:
            times[chapter] = times.get(chapter, 0.0) + float(case.get("time", 0))
    return times


def warm_times(stage: Path) -> dict[str, float]:
    """Seconds per chapter, from papermill's metadata in the executed notebooks under ``stage/book``."""
    times = {}
    for nb in sorted((stage / "book").glob("[0-9][0-9]_*.ipynb")):
        duration = json.loads(nb.read_text()).get("metadata", {}).get("papermill", {}).get("duration")
        if duration is not None:
            times[nb.stem] = float(duration)
    return times


def _total(rows: list[dict], col: str) -> float | None:
    """The sum of a column over the chapters that have it, or ``None`` when none has."""
    values = [r[col] for r in rows if r[col] is not None]
    return sum(values) if values else None


def table(cold: dict[str, float], warm: dict[str, float]) -> list[dict]:
    """One row per chapter, then the total."""
    rows = [{"chapter": c, "cold_s": cold.get(c), "warm_s": warm.get(c)} for c in sorted(set(cold) | set(warm))]
    return rows + [{"chapter": "total", "cold_s": _total(rows, "cold_s"), "warm_s": _total(rows, "warm_s")}]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--junit", type=Path, default=ROOT / "_build" / "nbval.xml")
    parser.add_argument("--stage", type=Path, default=ROOT / "_build" / "stage")
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "book_times.json")
    args = parser.parse_args(argv)
    rows = table(cold_times(args.junit), warm_times(args.stage))
    if len(rows) == 1:
        print(f"error: no chapter times in {args.junit} or {args.stage / 'book'}; run make test or make book first",
              file=sys.stderr)
        return 2
    fmt = lambda v: f"{v:8.0f}" if v is not None else f"{'-':>8}"
    print(f"{'chapter':<20} {'cold s':>8} {'warm s':>8}")
    for r in rows:
        print(f"{r['chapter']:<20} {fmt(r['cold_s'])} {fmt(r['warm_s'])}")
    for col, what in (("cold_s", "cold (nbval after the unit tests)"), ("warm_s", "warm (full cache)")):
        value = rows[-1][col]
        if value is not None:
            flag = "" if value <= TARGET_S else "  BELOW TARGET"
            print(f"quick book, {what}: {value / 60:.1f} min against a {TARGET_S // 60}-min target{flag}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"target_s": TARGET_S, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
