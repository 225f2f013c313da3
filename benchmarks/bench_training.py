"""Training throughput of every network the book trains, and how close it comes to the machine's matmul rate.

Each network runs the book's own training step (``ddsa_core.training.fit``'s inner loop: batch to
the device, its loss, zero_grad, backward, optimiser step, the DDSA sparsity rule where it applies,
``loss.item()``) in the book's memory layout (``ddsa_core.runtime.place``) at the paper profile's batch size (``make_config("paper", dataset)``), on random
inputs and freshly initialised weights: throughput does not depend on either. A few warm-up steps,
then timed steps (at least 3 and 3 s; --quick: 2); the median step time gives images/s.

FLOPs per step are counted once with ``torch.utils.flop_counter.FlopCounterMode`` (forward and
backward; matmuls and convolutions only, as the counter counts them: elementwise ops and the
optimiser are free). Achieved FLOP/s = FLOPs per step / median step time, printed beside the FLOP/s
of a large float32 matrix multiply measured in the same process on the same device, so "of matmul"
is the fraction of what this machine does at best on dense float32 math. "paper h" is what the
paper profile's epochs over the 50,000 training images would take at this rate (one network; the
DDSA line counts DDSA only, DDA costs as much again; PGD crafting of the denoisers' data not included).

    python benchmarks/bench_training.py --quick --out bench_training.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from ddsa_core import baselines, data, defenses, models, threat_models
from ddsa_core.config import make_config
from ddsa_core.models import INPUT_SHAPES
from ddsa_core.runtime import device_name, place, resolve_device
from ddsa_core.training import cross_entropy, make_optimizer

QUICK_BATCH = 16  # --quick caps every batch here, so CI finishes in seconds; not the paper's figures


@dataclass
class Network:
    """One network as the book trains it: how to build it, its loss, optimiser, batch and inputs."""

    name: str
    dataset: str
    build: Callable[[], nn.Module]
    loss: Callable[..., Tensor]
    optimizer: tuple[str, float]
    batch: int
    inputs: str  # "xy": images and labels; "pair": (adversarial, clean) images; "x": images only
    epochs: int | None  # the paper profile's epochs over the training split (None: not a fixed split)
    after_step: Callable[[nn.Module], None] | None = None
    note: str = ""
    channels_last_on_cpu: bool = False  # as ddsa_core.runtime.place lays it out in the book
    extra: dict = field(default_factory=dict)


def networks(datasets: tuple[str, ...]) -> list[Network]:
    """Every network the chapters train, with the paper profile's settings."""
    nets = []
    for ds in datasets:
        cfg = make_config("paper", ds)
        clf_opt = (cfg.clf_optimizer, cfg.clf_lr)
        nets.append(Network("classifier", ds, lambda ds=ds: models.build_classifier(ds), cross_entropy, clf_opt,
                            cfg.clf_batch_size, "xy", cfg.clf_epochs, note="Table 2"))
        rule = defenses.sparsity_rule(cfg, sparse=True)
        nets.append(Network("ddsa denoiser", ds, lambda ds=ds: models.build_denoiser(ds),
                            defenses.reconstruction_loss, (cfg.ae_optimizer, cfg.ae_lr), cfg.ae_batch_size, "pair",
                            cfg.ae_epochs, after_step=rule.after_step, note="Table 4, eq. 9 + sparsity rule; DDA costs the same",
                            channels_last_on_cpu=True))
        if ds == "mnist":  # MagNet is built for MNIST only (ddsa_core.baselines)
            noisy = baselines.noisy_reconstruction_loss(cfg.magnet_noise)
            adam = ("adam", baselines.MAGNET_LR)
            nets.append(Network("magnet reformer", ds, lambda ds=ds: models.magnet_reformer(ds), noisy, adam,
                                cfg.magnet_batch_size, "x", cfg.magnet_epochs, note="Table 5 mirrored"))
            for part, (structure, _) in baselines.DETECTORS.items():
                nets.append(Network(f"magnet {part}", ds, lambda ds=ds, s=structure: models.magnet_detector(ds, s),
                                    noisy, adam, cfg.magnet_batch_size, "x", cfg.magnet_detector_epochs,
                                    note=f"MagNet {structure}", channels_last_on_cpu=True))
        nets.append(Network("adversarial training", ds, lambda ds=ds: models.build_classifier(ds),
                            baselines.fgsm_training_loss(ds, cfg.eps, cfg.adv_ratio), clf_opt, cfg.clf_batch_size,
                            "xy", cfg.adv_epochs, note="FGSM on the current weights each step"))
        nets.append(Network("black-box substitute", ds, lambda ds=ds: models.substitute_mlp(ds), cross_entropy,
                            ("adam", threat_models.SUBSTITUTE_LR), threat_models.SUBSTITUTE_BATCH, "xy",
                            None, note="MLP 200-200-10, trained on a few thousand points"))
    return nets


class _GlobalOnly:
    """Stands in for FlopCounterMode's ModuleTracker: totals only, no per-module backward hooks.

    The tracker's multi-grad hooks make ``torch.autograd.grad`` on a leaf input raise ("A leaf node
    was passed to _will_engine_execute_node ..."), which is what the FGSM inside adversarial
    training calls.
    """

    parents = {"Global"}

    def __enter__(self) -> "_GlobalOnly":
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def count_flops(step: Callable[[], object]) -> int:
    """FLOPs of one call of ``step`` (forward + backward matmuls and convolutions)."""
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _GlobalOnly()
    with counter:
        step()
    return counter.get_total_flops()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_times(step: Callable[[], object], device: torch.device, warmup: int, min_steps: int,
               min_seconds: float, max_steps: int) -> list[float]:
    """Seconds of each timed step, after ``warmup`` steps: at least ``min_steps`` and ``min_seconds``."""
    for _ in range(warmup):
        step()
    sync(device)
    times: list[float] = []
    while len(times) < max_steps and (len(times) < min_steps or sum(times) < min_seconds):
        start = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def matmul_flops(device: torch.device, n: int, repeats: int) -> dict:
    """Best FLOP/s of an n×n float32 matrix multiply on ``device`` (2n³ FLOPs per product)."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device)
    b = torch.randn(n, n, generator=gen).to(device)
    per_call = max(1, int(2e11 // (2 * n ** 3))) if device.type == "cuda" else 1  # CUDA: amortise launch and sync
    times = step_times(lambda: [a @ b for _ in range(per_call)], device, warmup=2, min_steps=repeats,
                       min_seconds=0.0, max_steps=repeats)
    best = min(times)
    return {"n": n, "dtype": "float32", "flop_per_s": 2 * n ** 3 * per_call / best, "best_s": best / per_call,
            "tf32": bool(device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32)}


def train_step(net: Network, model: nn.Module, tensors: tuple[Tensor, ...], forward: nn.Module | None = None,
               autocast: bool = False, move_to: torch.device | None = None) -> Callable[[], float]:
    """One step of ``fit``'s inner loop on ``model`` (through ``forward`` when compiled; batches moved to
    ``move_to`` each step when given, as ``fit`` moves them); returns the loss."""
    opt = make_optimizer(net.optimizer[0], model.parameters(), net.optimizer[1])
    forward = model if forward is None else forward
    device_type = (tensors[0].device if move_to is None else move_to).type

    def step() -> float:
        batch = tensors if move_to is None else [t.to(move_to, non_blocking=True) for t in tensors]
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=autocast):
            loss = net.loss(forward, *batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if net.after_step is not None:
            net.after_step(model)
        return loss.item()
    return step


def bench_network(net: Network, device: torch.device, batch: int, warmup: int, min_steps: int,
                  min_seconds: float, max_steps: int, seed: int) -> dict:
    """Images/s and FLOP/s of one network's training step at ``batch``."""
    torch.manual_seed(seed)
    model = place(net.build(), device, net.channels_last_on_cpu).train()
    shape = INPUT_SHAPES[net.dataset]
    x = torch.rand(batch, *shape)  # on the CPU, as fit keeps its tensors; moved each step as fit moves them
    tensors = {"xy": (x, torch.randint(0, 10, (batch,))), "pair": (x, torch.rand(batch, *shape)), "x": (x,)}[net.inputs]
    step = train_step(net, model, tensors, move_to=device)

    flops = count_flops(step)
    times = step_times(step, device, warmup, min_steps, min_seconds, max_steps)
    median = statistics.median(times)
    return {"network": net.name, "dataset": net.dataset, "batch": batch, "paper_batch": net.batch,
            "optimizer": net.optimizer[0], "inputs": net.inputs, "note": net.note,
            "params": sum(p.numel() for p in model.parameters()), "flop_per_step": flops,
            "flop_per_image": flops / batch, "steps_timed": len(times), "median_step_s": median,
            "min_step_s": min(times), "images_per_s": batch / median, "flop_per_s": flops / median,
            "paper_epochs": net.epochs,
            "paper_train_h": None if net.epochs is None else net.epochs * data.TRAIN_SIZE[net.dataset] * median / batch / 3600}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"short CI run: batches capped at {QUICK_BATCH}, 1 warm-up and 2 timed steps")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--datasets", default="mnist,cifar10", help="comma-separated")
    parser.add_argument("--only", default=None, help="comma-separated network names (substring match)")
    parser.add_argument("--seconds", type=float, default=None, help="least timed seconds per network (3; quick 0)")
    parser.add_argument("--matmul-n", type=int, default=None,
                        help="matmul size (CPU 2048, CUDA 8192; quick 1024 and 4096)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    warmup, min_steps, max_steps = (1, 2, 2) if args.quick else (1, 3, 30)  # the FLOP-counted step warms up too
    seconds = args.seconds if args.seconds is not None else (0.0 if args.quick else 3.0)
    n = args.matmul_n or {(True, "cuda"): 4096, (False, "cuda"): 8192}.get((args.quick, device.type),
                                                                            1024 if args.quick else 2048)

    peak = matmul_flops(device, n, repeats=3 if args.quick else 5)
    nets = networks(tuple(args.datasets.split(",")))
    if args.only:
        wanted = args.only.split(",")
        nets = [net for net in nets if any(w in net.name for w in wanted)]
    rows = []
    for net in nets:
        batch = min(net.batch, QUICK_BATCH) if args.quick else net.batch
        row = bench_network(net, device, batch, warmup, min_steps, seconds, max_steps, args.seed)
        row["fraction_of_matmul"] = row["flop_per_s"] / peak["flop_per_s"]
        rows.append(row)
    peak_after = matmul_flops(device, n, repeats=3 if args.quick else 5)  # the load may change during the run
    peak["flop_per_s_after"] = peak_after["flop_per_s"]

    print(f"device {device} ({device_name(device)}), threads {torch.get_num_threads()}, torch {torch.__version__}"
          + (f", quick: batch <= {QUICK_BATCH}" if args.quick else ""))
    print(f"matmul {n}x{n} float32: {peak['flop_per_s'] / 1e9:.1f} GFLOP/s before, "
          f"{peak_after['flop_per_s'] / 1e9:.1f} GFLOP/s after the networks"
          + (" (TF32 on)" if peak["tf32"] else ""))
    print(f"{'network':<24}{'data':<9}{'batch':>6}{'MFLOP/img':>11}{'img/s':>10}{'GFLOP/s':>10}{'of matmul':>11}{'paper h':>9}")
    for r in rows:
        print(f"{r['network']:<24}{r['dataset']:<9}{r['batch']:>6}{r['flop_per_image'] / 1e6:>11.1f}"
              f"{r['images_per_s']:>10.1f}{r['flop_per_s'] / 1e9:>10.2f}{r['fraction_of_matmul']:>10.1%}"
              + (f"{r['paper_train_h']:>9.2f}" if r["paper_train_h"] is not None else f"{'-':>9}"))
    report = {"device": str(device), "device_name": device_name(device), "quick": args.quick,
              "threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version(),
              "warmup_steps": warmup, "min_timed_steps": min_steps, "min_timed_s": seconds,
              "matmul": peak, "results": rows}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    main()
