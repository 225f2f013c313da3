"""Throughput of ddsa_core.attacks against torchattacks 3.5.1 on one model, batch and device.

Self-contained: a randomly initialised Table-2 MNIST classifier and uniform random images (no
weights or data needed); throughput does not depend on training. Pairs: FGSM-FGSM, PGD-PGD and
MIM-MIFGSM at equal steps; Rand+FGSM-RFGSM(steps=1), which is NOT the same attack (torchattacks
steps by alpha, Tramer by eps - alpha) but costs the same one gradient; C&W per iteration against
torchattacks.CW (one binary-search step each, iterations counted by model calls because
torchattacks may stop early), and our batched C&W against a loop over single images.

    python benchmarks/bench_attacks.py --quick --out bench_attacks.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable

import torch
import torchattacks
from torch import Tensor, nn

from ddsa_core.attacks import build
from ddsa_core.models import build_classifier
from ddsa_core.runtime import resolve_device

TARGETS = {"fgsm": 0.9, "pgd": 0.9, "mim": 0.9, "cw": 0.8}  # ours / torchattacks, at least


class Counting(nn.Module):
    """Wraps a model and counts forward calls (one per C&W iteration)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.calls = model, 0

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        return self.model(x)


def timed(runs: list[Callable[[], object]], device: torch.device, repeats: int,
          min_seconds: float = 0.0) -> list[float]:
    """Best wall time of each run over interleaved rounds, after one warm-up round: at least
    ``repeats`` rounds, and more until every run has been timed for ``min_seconds`` in all.

    Interleaving and keeping the best time make the ratio robust to other load on the machine; the
    time floor gives a cheap attack (FGSM: about 0.15 s a call) as many chances as a slow one.
    """
    def once(run: Callable[[], object]) -> float:
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start
    for run in runs:
        once(run)
    rounds: list[list[float]] = []
    while len(rounds) < max(1, repeats) or min(map(sum, zip(*rounds, strict=True))) < min_seconds:
        rounds.append([once(run) for run in runs])
    return [min(times) for times in zip(*rounds, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short CI run: fewer steps, images")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--batch", type=int, default=None, help="images per batch (256; quick 64)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs, best kept (3; quick 2)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="least timed seconds per attack and side; more rounds until reached (3; quick 0)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    batch = args.batch or (64 if args.quick else 256)
    repeats = args.repeats or (2 if args.quick else 3)
    seconds = args.seconds if args.seconds is not None else (0.0 if args.quick else 3.0)
    pgd_steps, cw_iters, loop_images = (10, 10, 8) if args.quick else (40, 50, 16)

    torch.manual_seed(args.seed)
    model = Counting(build_classifier("mnist")).to(device).eval()
    x = torch.rand(batch, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    ours = {
        "fgsm": build("fgsm", model, "mnist"),
        "rfgsm": build("rfgsm", model, "mnist"),
        "mim": build("mim", model, "mnist"),
        "pgd": build("pgd", model, "mnist", nb_iter=pgd_steps),
        "cw": build("cw", model, "mnist", max_iter=cw_iters, binary_search_steps=1,
                    abort_early=False),
    }
    theirs = {
        "fgsm": torchattacks.FGSM(model, eps=0.3),
        "rfgsm": torchattacks.RFGSM(model, eps=0.3, alpha=0.05, steps=1),
        "mim": torchattacks.MIFGSM(model, eps=0.3, alpha=0.06, steps=10, decay=1.0),
        "pgd": torchattacks.PGD(model, eps=0.3, alpha=0.01, steps=pgd_steps, random_start=True),
        "cw": torchattacks.CW(model, c=1.0, kappa=10.0, steps=cw_iters, lr=1.0),
    }
    notes = {"rfgsm": "not equivalent: torchattacks steps by alpha", "pgd": f"{pgd_steps} steps",
             "mim": "10 steps", "cw": f"per iteration ({cw_iters} its)"}

    rows = []
    for name in ours:
        iterations = [1.0, 1.0]  # per image and call; C&W rates are per iteration
        if name == "cw":
            for i, attack in enumerate((ours[name], theirs[name])):  # torchattacks may stop early
                model.calls = 0
                attack(x, y)
                iterations[i] = model.calls
        runs = [lambda a=ours[name]: a(x, y), lambda a=theirs[name]: a(x, y)]
        best = timed(runs, device, repeats, seconds)
        rates = [batch * its / sec for its, sec in zip(iterations, best, strict=True)]
        rows.append({"attack": name, "ours_per_s": rates[0], "torchattacks_per_s": rates[1],
                     "ratio": rates[0] / rates[1], "target": TARGETS.get(name),
                     "unit": "image-iterations/s" if name == "cw" else "images/s",
                     "note": notes.get(name, "")})

    xs, ys = x[:loop_images], y[:loop_images]
    single = timed([lambda: [ours["cw"](xs[i:i + 1], ys[i:i + 1]) for i in range(loop_images)]],
                   device, repeats)[0]
    loop_rate = loop_images * cw_iters / single
    cw_rate = rows[-1]["ours_per_s"]
    rows.append({"attack": "cw batched vs per-sample loop", "ours_per_s": cw_rate,
                 "loop_per_s": loop_rate, "ratio": cw_rate / loop_rate, "target": 5.0,
                 "unit": "image-iterations/s", "note": f"loop over {loop_images} single images"})

    print(f"device {device}, batch {batch}, threads {torch.get_num_threads()}, "
          f"torch {torch.__version__}, torchattacks {torchattacks.__version__}")
    print(f"{'attack':<32}{'ours/s':>12}{'other/s':>12}{'ratio':>8}{'target':>8}  note")
    for row in rows:
        other = row.get("torchattacks_per_s", row.get("loop_per_s"))
        target = f"{row['target']:.1f}" if row["target"] else "-"
        flag = "" if not row["target"] or row["ratio"] >= row["target"] else "  BELOW TARGET"
        print(f"{row['attack']:<32}{row['ours_per_s']:>12.1f}{other:>12.1f}{row['ratio']:>8.2f}"
              f"{target:>8}  {row['note']}{flag}")
    if args.out:
        report = {"device": str(device), "batch": batch, "repeats": repeats, "min_seconds": seconds,
                  "quick": args.quick, "threads": torch.get_num_threads(), "torch": torch.__version__,
                  "torchattacks": torchattacks.__version__, "python": platform.python_version(),
                  "results": rows}
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
