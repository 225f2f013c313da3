"""Run every benchmark, write one JSON file, print a short summary table.

Each benchmark runs in its own process (``bench_attacks.py``, ``bench_training.py``, ``bench_levers.py``) with the
same ``--quick``, ``--device`` and ``--threads``; their own tables are printed as they finish. The
combined JSON goes to ``--out``, else ``benchmarks/results/<device-kind>.json`` (``<device-kind>-quick``
for ``--quick``, which git ignores).

    python benchmarks/run_all.py --quick          # CI: well under a minute on 2 CPU cores
    python benchmarks/run_all.py                  # the figures in benchmarks/README.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = {"attacks": "bench_attacks.py", "training": "bench_training.py", "levers": "bench_levers.py"}


def device_kind(device: str) -> str:
    """A file-name slug of the device: ``cpu-x86_64-2cores`` or the GPU's name (``nvidia-h100-80gb-hbm3``)."""
    import torch

    from ddsa_core.runtime import resolve_device

    resolved = resolve_device(device)
    if resolved.type == "cuda":
        name = torch.cuda.get_device_name(resolved)
    else:
        name = f"cpu-{platform.machine()}-{os.cpu_count()}cores"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def summary(results: dict) -> list[str]:
    """The short table: one line per attack ratio and per trained network."""
    lines = [f"{'benchmark':<44}{'ours/s':>11}{'vs':>11}{'ratio':>8}{'target':>8}"]
    for row in results.get("attacks", {}).get("results", []):
        other = row.get("torchattacks_per_s", row.get("loop_per_s"))
        target = f"{row['target']:.1f}" if row.get("target") else "-"
        flag = "" if not row.get("target") or row["ratio"] >= row["target"] else "  below target"
        lines.append(f"{'attack ' + row['attack']:<44}{row['ours_per_s']:>11.1f}{other:>11.1f}"
                     f"{row['ratio']:>8.2f}{target:>8}{flag}")
    training = results.get("training")
    if training:
        peak = training["matmul"]["flop_per_s"]
        lines.append(f"{'training (img/s; GFLOP/s vs matmul ' + format(peak / 1e9, '.1f') + ')':<44}"
                     f"{'img/s':>11}{'GFLOP/s':>11}{'frac':>8}{'paper h':>9}")
        for row in training["results"]:
            label = f"train {row['network']} {row['dataset']} b{row['batch']}"
            lines.append(f"{label:<44}{row['images_per_s']:>11.1f}{row['flop_per_s'] / 1e9:>11.2f}"
                         f"{row['fraction_of_matmul']:>8.1%}"
                         + (f"{row['paper_train_h']:>9.2f}" if row.get("paper_train_h") is not None else f"{'-':>9}"))
    for row in results.get("levers", {}).get("results", []):
        if row["within_tolerance"] is not None:  # the batch-size rows are figures, not levers
            label = f"{row['lever']} {row['workload']} {row['network']} {row['dataset']} b{row['batch']}"
            lines.append(f"{label[:60]:<60}{row['speedup']:>8.2f}x" + ("  applied" if row["applied"] else "")
                         + ("" if row["within_tolerance"] else "  outside tolerance"))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the benchmarks' short modes (CI)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads in each benchmark")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help=f"comma-separated subset of {tuple(BENCHMARKS)}")
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/<device-kind>.json)")
    args = parser.parse_args()

    names = [n for n in args.only.split(",") if n]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {tuple(BENCHMARKS)}")
    kind = device_kind(args.device)
    out = Path(args.out) if args.out else HERE / "results" / f"{kind}{'-quick' if args.quick else ''}.json"
    flags = ["--device", args.device] + (["--quick"] if args.quick else []) + \
            (["--threads", str(args.threads)] if args.threads else [])

    results: dict = {"device_kind": kind, "quick": args.quick, "python": platform.python_version(),
                     "cpu_count": os.cpu_count(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                     "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "wall_s": {}}
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            part = Path(tmp) / f"{name}.json"
            print(f"== {name}: {BENCHMARKS[name]} {' '.join(flags)}", flush=True)
            start = time.perf_counter()
            run = subprocess.run([sys.executable, str(HERE / BENCHMARKS[name]), *flags, "--out", str(part)])
            results["wall_s"][name] = round(time.perf_counter() - start, 1)
            if run.returncode != 0 or not part.exists():
                failed.append(name)
                continue
            results[name] = json.loads(part.read_text())

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n== summary ({kind}{', quick' if args.quick else ''}; "
          + ", ".join(f"{k} {v} s" for k, v in results["wall_s"].items()) + f"), written to {out}")
    print("\n".join(summary(results)))
    if failed:
        sys.exit(f"benchmark(s) failed: {failed}")


if __name__ == "__main__":
    main()
