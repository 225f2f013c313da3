"""Issue 8's speed levers, each measured against the book's default on one device, with a check that it keeps results.

Each row is one lever on one workload: the best time of the default and of the lever over
interleaved rounds (``bench_attacks.timed``, so other load slows both alike), the speedup
(default / lever), a numeric check of the lever against the default on the same weights and
inputs, and where the book applies it:

=================  ===========================================================================
channels-last      4-D weights in channels-last memory: every network's training step (the
                   paper profile's batch, and the quick one where it differs), the white-box
                   attack gradient and the inference pass through a denoiser. Check: largest
                   output difference over the largest output (eval mode, no dropout) <= 1e-5;
                   for the attack gradient, the share of pixels whose gradient sign agrees >= 0.99
torch.compile      the training step of a compiled model; ``compile_s`` is its first step
                   (inductor's disk cache off), and ``break_even_steps`` how many steps repay it.
                   Check: as channels-last, after timing, on the compiled model's weights
inference_mode     ``torch.inference_mode`` against ``torch.no_grad`` for evaluation. Check: equal
autocast           bfloat16 autocast of the training step, on CUDA only (issue 8: mixed precision
                   for training only). Check: relative loss difference <= 1e-2
batch size         the denoiser's training step at larger batches (``lever_batch``; ``batch`` is
                   the quick profile's 32), in images per second: it changes the optimisation,
                   so it is a figure, not a lever the book pulls
=================  ===========================================================================

    python benchmarks/bench_levers.py [--quick] [--device cuda] [--out levers.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "1")  # before torch reads it: compile_s is a first compile

import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_attacks import timed  # noqa: E402
from bench_training import QUICK_BATCH, Network, networks, train_step  # noqa: E402

from ddsa_core.attacks import lse_margin  # noqa: E402
from ddsa_core.config import make_config  # noqa: E402
from ddsa_core.defenses import Defended  # noqa: E402
from ddsa_core.models import INPUT_SHAPES, build_classifier, build_denoiser  # noqa: E402
from ddsa_core.runtime import device_name, place, resolve_device  # noqa: E402

CL = torch.channels_last
LEVERS = ("layout", "compile", "inference", "autocast", "batch")
TOLERANCE = {"output": 1e-5, "sign": 0.99, "loss": 1e-2}
# Where the book pulls a lever (ddsa_core.runtime.place): the networks measured faster in channels-last on the CPU.
APPLIED = {("channels-last", "cpu", name) for name in ("ddsa denoiser", "magnet detector_l2", "magnet detector_l1")}
APPLIED |= {("inference_mode", dev, "evaluation") for dev in ("cpu", "cuda")}


def inputs(net: Network, batch: int, device: torch.device) -> tuple[Tensor, ...]:
    """Random inputs of ``net``'s kind (images and labels, image pairs, or images) on ``device``."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(batch, *INPUT_SHAPES[net.dataset], generator=g)
    both = {"xy": (x, torch.randint(0, 10, (batch,), generator=g)),
            "pair": (x, torch.rand(batch, *INPUT_SHAPES[net.dataset], generator=g)), "x": (x,)}[net.inputs]
    return tuple(t.to(device) for t in both)


@contextmanager
def exact_float32():
    """TF32 off while checking, so that a gap measures the lever, not which TF32 kernel cuDNN picked
    (the timings keep PyTorch's defaults, TF32 convolutions on CUDA included)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def output_gap(reference: nn.Module, other: nn.Module, x: Tensor) -> float:
    """Largest output difference of two networks in eval mode, over the largest output."""
    with torch.no_grad(), exact_float32():
        a, b = reference.eval()(x), other.eval()(x)
    return ((a - b).abs().max() / a.abs().max().clamp_min(1e-12)).item()


def row(lever: str, workload: str, net: str, dataset: str, batch: int, base_s: float, lever_s: float,
        check: str, value: float | None, ok: bool | None, device: torch.device, **extra) -> dict:
    applied = (lever, device.type, net) in APPLIED or (lever, device.type, workload) in APPLIED
    return {"lever": lever, "workload": workload, "network": net, "dataset": dataset, "batch": batch,
            "default_s": base_s, "lever_s": lever_s, "speedup": base_s / lever_s, "check": check,
            "check_value": value, "within_tolerance": ok, "applied": applied, **extra}


def layout_rows(net: Network, batch: int, device: torch.device, repeats: int, seconds: float) -> list[dict]:
    """Channels-last against the default layout for one network's training step."""
    torch.manual_seed(0)
    base = net.build().to(device)
    fast = copy.deepcopy(base).to(memory_format=CL)
    tensors = inputs(net, batch, device)
    gap = output_gap(base, fast, tensors[0])
    steps = [train_step(net, m.train(), tensors) for m in (base, fast)]
    t = timed(steps, device, repeats, seconds)
    return [row("channels-last", "train", net.name, net.dataset, batch, t[0], t[1], "output gap", gap,
                gap <= TOLERANCE["output"], device)]


def compile_row(net: Network, batch: int, device: torch.device, repeats: int, seconds: float) -> dict:
    """torch.compile against eager for one network's training step, with its compile time."""
    torch.manual_seed(0)
    base = net.build().to(device)
    comp = copy.deepcopy(base)
    compiled = torch.compile(comp)
    tensors = inputs(net, batch, device)
    eager, fast = train_step(net, base.train(), tensors), train_step(net, comp.train(), tensors, forward=compiled)
    start = time.perf_counter()
    fast()  # compiles the training graph, forward and backward
    compile_s = time.perf_counter() - start
    t = timed([eager, fast], device, repeats, seconds)
    base.load_state_dict(comp.state_dict())  # the same weights on both sides for the check
    gap = output_gap(base, compiled, tensors[0])  # eval mode: a graph of its own, compiled here
    gain = t[0] - t[1]
    return row("torch.compile", "train", net.name, net.dataset, batch, t[0], t[1], "output gap", gap,
               gap <= TOLERANCE["output"], device, compile_s=compile_s,
               break_even_steps=compile_s / gain if gain > 0 else None)


def autocast_row(net: Network, batch: int, device: torch.device, repeats: int, seconds: float) -> dict:
    """bfloat16 autocast against float32 for one training step (CUDA only)."""
    torch.manual_seed(0)
    base = net.build().to(device)
    half = copy.deepcopy(base)
    tensors = inputs(net, batch, device)
    steps = [train_step(net, base.train(), tensors), train_step(net, half.train(), tensors, autocast=True)]
    torch.manual_seed(5)
    full_loss = steps[0]()
    torch.manual_seed(5)
    gap = abs(steps[1]() - full_loss) / max(abs(full_loss), 1e-12)  # the first step: same weights, same noise
    t = timed(steps, device, repeats, seconds)
    return row("autocast bf16", "train", net.name, net.dataset, batch, t[0], t[1], "loss gap", gap,
               gap <= TOLERANCE["loss"], device)


def denoiser_pass_rows(dataset: str, batch: int, device: torch.device, repeats: int, seconds: float) -> list[dict]:
    """Channels-last for the defended system's attack gradient and inference (the denoiser's layout only)."""
    torch.manual_seed(0)
    den, clf = build_denoiser(dataset).to(device).eval(), build_classifier(dataset).to(device).eval()
    fast = copy.deepcopy(den).to(memory_format=CL)
    g = torch.Generator().manual_seed(2)
    x = torch.rand(batch, *INPUT_SHAPES[dataset], generator=g).to(device)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)
    systems = [Defended(den, clf), Defended(fast, clf)]

    def gradient(system: nn.Module) -> Callable[[], Tensor]:
        def run() -> Tensor:
            xx = x.clone().requires_grad_(True)
            return torch.autograd.grad(lse_margin(system(xx), y).sum(), xx)[0]
        return run

    def infer(system: nn.Module) -> Callable[[], Tensor]:
        def run() -> Tensor:
            with torch.inference_mode():
                return system(x)
        return run

    with exact_float32():
        agree = (gradient(systems[0])().sign() == gradient(systems[1])().sign()).float().mean().item()
    gap = output_gap(systems[0], systems[1], x)
    tg = timed([gradient(s) for s in systems], device, repeats, seconds)
    ti = timed([infer(s) for s in systems], device, repeats, seconds)
    return [row("channels-last", "attack gradient", "ddsa denoiser", dataset, batch, tg[0], tg[1], "sign agreement",
                agree, agree >= TOLERANCE["sign"], device),
            row("channels-last", "inference", "ddsa denoiser", dataset, batch, ti[0], ti[1], "output gap", gap,
                gap <= TOLERANCE["output"], device)]


def inference_mode_row(dataset: str, batch: int, device: torch.device, repeats: int, seconds: float) -> dict:
    """torch.inference_mode against torch.no_grad for the classifier's evaluation pass."""
    torch.manual_seed(0)
    clf = build_classifier(dataset).to(device).eval()
    x = torch.rand(batch, *INPUT_SHAPES[dataset], generator=torch.Generator().manual_seed(3)).to(device)

    def under(context: Callable) -> Callable[[], Tensor]:
        def run() -> Tensor:
            with context():
                return clf(x)
        return run
    same = torch.equal(under(torch.no_grad)(), under(torch.inference_mode)())
    t = timed([under(torch.no_grad), under(torch.inference_mode)], device, repeats, seconds)
    return row("inference_mode", "evaluation", "classifier", dataset, batch, t[0], t[1], "equal outputs",
               float(same), same, device)


def batch_rows(net: Network, batches: tuple[int, ...], device: torch.device, repeats: int, seconds: float) -> list[dict]:
    """Images per second of one network's training step at each batch, against the first."""
    per_image = []
    for batch in batches:
        torch.manual_seed(0)
        model = place(net.build(), device, net.channels_last_on_cpu).train()  # the book's layout
        per_image.append(timed([train_step(net, model, inputs(net, batch, device))],
                               device, repeats, seconds)[0] / batch)
    return [row(f"batch {b}", "train", net.name, net.dataset, batches[0], per_image[0] * batches[0],
                t * batches[0], "figure only: changes the optimisation", None, None, device, lever_batch=b,
                images_per_s=1 / t)
            for b, t in zip(batches[1:], per_image[1:], strict=True)]


def quick_batch(net: Network) -> int:
    """The quick profile's batch for ``net`` (the chapters' cold cost), where it differs from the paper's."""
    cfg = make_config("quick", net.dataset)
    field = {"classifier": "clf_batch_size", "adversarial training": "clf_batch_size",
             "ddsa denoiser": "ae_batch_size"}.get(net.name, "magnet_batch_size" if "magnet" in net.name else None)
    return getattr(cfg, field) if field else net.batch


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"short CI run: MNIST, batches capped at {QUICK_BATCH}, one round, compile on the substitute only")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--datasets", default="mnist,cifar10", help="comma-separated")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seconds", type=float, default=None, help="least timed seconds per side (2; quick 0)")
    parser.add_argument("--levers", default=",".join(LEVERS), help=f"comma-separated subset of {LEVERS}")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    levers = set(args.levers.split(","))
    if levers - set(LEVERS):
        parser.error(f"--levers: unknown {sorted(levers - set(LEVERS))}; choose from {LEVERS}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    datasets = ("mnist",) if args.quick else tuple(args.datasets.split(","))
    repeats, seconds = (1, 0.0) if args.quick else (3, 2.0 if args.seconds is None else args.seconds)
    cap = (lambda b: min(b, QUICK_BATCH)) if args.quick else (lambda b: b)

    rows: list[dict] = []
    nets = networks(datasets)
    for net in nets:
        for batch in sorted({cap(net.batch), cap(quick_batch(net))}):
            if "layout" in levers:
                rows += layout_rows(net, batch, device, repeats, seconds)
            if "autocast" in levers and device.type == "cuda":
                rows.append(autocast_row(net, batch, device, repeats, seconds))
        print(f"[levers] {net.name} {net.dataset}: training step done", flush=True)
    for ds in datasets:
        if "layout" in levers:
            rows += denoiser_pass_rows(ds, cap(256), device, repeats, seconds)
        if "inference" in levers:
            rows.append(inference_mode_row(ds, cap(500), device, repeats, seconds))
    to_compile = [n for n in nets if n.name == "black-box substitute"] if args.quick else \
        [n for n in nets if n.name in ("classifier", "ddsa denoiser")]
    for net in to_compile if "compile" in levers else []:
        rows.append(compile_row(net, cap(net.batch), device, repeats, seconds))
        print(f"[levers] {net.name} {net.dataset}: compiled in {rows[-1]['compile_s']:.0f} s", flush=True)
    if "batch" in levers:
        denoiser = next(n for n in nets if n.name == "ddsa denoiser")
        rows += batch_rows(denoiser, (8, 16) if args.quick else (32, 64, 128, 256), device, repeats, seconds)

    print(f"device {device} ({device_name(device)}), threads {torch.get_num_threads()}, torch {torch.__version__}"
          + (" (quick: MNIST, small batches, one round)" if args.quick else ""))
    print(f"{'lever':<16}{'workload':<17}{'network':<22}{'data':<9}{'batch':>6}{'default ms':>12}{'lever ms':>10}"
          f"{'speedup':>9}  {'check':<28}{'applied':>8}")
    for r in rows:
        check = r["check"] if r["within_tolerance"] is None else \
            f"{r['check']} {r['check_value']:.2g}" + ("" if r["within_tolerance"] else " (out)")
        print(f"{r['lever']:<16}{r['workload']:<17}{r['network']:<22}{r['dataset']:<9}{r['batch']:>6}"
              f"{1e3 * r['default_s']:>12.1f}{1e3 * r['lever_s']:>10.1f}{r['speedup']:>9.2f}  {check:<28}"
              f"{'yes' if r['applied'] else 'no':>8}")
    if device.type != "cuda":
        print("autocast: not measured (CUDA only; issue 8 asks for mixed precision on CUDA, for training only)")
    report = {"device": str(device), "device_name": device_name(device), "quick": args.quick,
              "threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version(),
              "tolerance": TOLERANCE, "rounds": repeats, "min_timed_s": seconds, "results": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
