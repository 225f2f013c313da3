"""Where things run and where they are kept: device, seeds, folders, provenance."""
from __future__ import annotations

import datetime as _dt
import functools
import os
import platform
import subprocess
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def resolve_device(name: str = "auto") -> torch.device:
    """CUDA when available for ``"auto"``, else the CPU; an explicit name is taken as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"config field 'device' is {name!r} but CUDA is not available; use 'auto' or 'cpu'")
    return torch.device(name)



PROGRESS_STYLES = ("auto", "text")


def progress(iterable=None, **kwargs):
    """A tqdm bar: a widget in Jupyter (ipywidgets), text on a terminal. ``DDSA_PROGRESS=text`` forces
    text, as ``make execute`` does: a widget executed into a chapter would make its HTML load a widget
    manager from a CDN, while text bars go to stderr, which the book leaves out."""
    style = os.environ.get("DDSA_PROGRESS", "auto")
    if style not in PROGRESS_STYLES:
        raise ValueError(f"DDSA_PROGRESS must be one of {PROGRESS_STYLES}; got {style!r}")
    if style == "text":
        from tqdm.std import tqdm
    else:
        from tqdm.auto import tqdm
    return tqdm(iterable, **kwargs)

def place(model: torch.nn.Module, device: torch.device, channels_last_on_cpu: bool = False) -> torch.nn.Module:
    """``model`` on ``device``; with ``channels_last_on_cpu``, its 4-D weights channels-last on the CPU,
    where the book's autoencoders train 1.3-2.3x and are attacked 1.4-1.6x faster so
    (``benchmarks/bench_levers.py``; not measured on CUDA yet, so left in PyTorch's default layout there)."""
    if channels_last_on_cpu and device.type == "cpu":
        return model.to(device, memory_format=torch.channels_last)
    return model.to(device)


def data_root() -> Path:
    """Folder holding the raw datasets: ``$DDSA_DATA``, else ``~/.cache/ddsa/data``."""
    return Path(os.environ.get("DDSA_DATA", Path.home() / ".cache" / "ddsa" / "data")).expanduser()


def cache_root() -> Path:
    """Writable folder for decoded data, weights and adversarial sets: ``$DDSA_CACHE``, else ``~/.cache/ddsa``."""
    path = Path(os.environ.get("DDSA_CACHE", Path.home() / ".cache" / "ddsa")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


@functools.cache
def git_commit() -> str:
    """The repository's HEAD commit, with ``+dirty`` when the work tree has changes, read once per
    process: a long run records the commit whose code it loaded, not one committed while it ran.

    ``$DDSA_COMMIT`` overrides it, for a copy of the work tree without ``.git`` (a GPU machine).
    """
    if os.environ.get("DDSA_COMMIT"):
        return os.environ["DDSA_COMMIT"]
    try:
        run = lambda *a: subprocess.run(["git", *a], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout.strip()
        commit = run("rev-parse", "HEAD")
        dirty = run("status", "--porcelain", "--untracked-files=no")
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def device_name(device: torch.device) -> str:
    """A human-readable name of the device: the GPU model, or the CPU's model, architecture and threads
    (two CPUs of one architecture can differ 2x in speed, so a wall time needs the model beside it)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = cpu_model()
    return f"cpu ({model + ', ' if model else ''}{platform.machine()}, {torch.get_num_threads()} threads)"


@functools.cache
def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's model name as the kernel reports it (Linux), else ``platform.processor()``, else ""."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("model name"):
                    return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    processor = platform.processor()  # often only the architecture again ("x86_64", "aarch64"): then none
    return "" if processor == platform.machine() else processor


def provenance(device: torch.device) -> dict[str, str]:
    """Commit, device, date and library versions, stored beside every recorded result."""
    return {
        "commit": git_commit(),
        "device": device_name(device),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
