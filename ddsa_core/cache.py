"""Content-keyed tensor cache on safetensors: atomic writes, checked reads.

Every file carries a SHA-256 of its tensors in its header. A truncated or tampered file fails
the check, is deleted, and is rebuilt; it is never loaded. Writes go to a temporary file in the
same folder and are renamed into place, so a crash or a concurrent writer never leaves a
half-written file.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .runtime import cache_root

Tensors = dict[str, torch.Tensor]


def content_key(**parts: Any) -> str:
    """A short hash of everything that determines an artifact (sorted JSON of ``parts``)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def artifact_path(kind: str, key: str) -> Path:
    """Where the artifact of a kind (``classifier``, ``data``, ...) and key lives."""
    return cache_root() / kind / f"{key}.safetensors"


def _digest(tensors: Tensors) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")  # 0-d: BatchNorm's counter
    return h.hexdigest()


def _umask() -> int:
    """The process's file-creation mask: from /proc where Linux gives it, else by setting it and straight back
    (which another thread could catch half-way)."""
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1], 8) for line in fh if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a result should read like any file open() makes
        write(Path(tmp))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save(path: Path, tensors: Tensors, meta: dict[str, Any]) -> None:
    """Write tensors and JSON-able metadata, with the tensors' digest, atomically."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    header = {"meta": json.dumps(meta, sort_keys=True), "sha256": _digest(tensors)}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=header))


def read_artifact(path: Path) -> tuple[Tensors, dict[str, Any]] | None:
    """The tensors and metadata at ``path``; ``None`` when absent or corrupt (a corrupt file is removed)."""
    if not path.exists():
        return None
    try:
        with safe_open(str(path), framework="pt") as fh:  # one read: the tensors and the header's metadata
            tensors, header = {k: fh.get_tensor(k) for k in fh.keys()}, fh.metadata()
        if header["sha256"] != _digest(tensors):
            raise ValueError("digest mismatch")
        return tensors, json.loads(header["meta"])
    except (SafetensorError, ValueError, KeyError, TypeError, OSError, RuntimeError) as err:
        warnings.warn(f"cache file {path} is corrupt ({err}); it will be rebuilt", stacklevel=2)
        path.unlink(missing_ok=True)
        return None


def cached(path: Path, build: Callable[[], tuple[Tensors, dict[str, Any]]]) -> tuple[Tensors, dict[str, Any], bool]:
    """Load ``path`` if valid, else ``build()`` and save it. Returns (tensors, meta, was_cached)."""
    hit = read_artifact(path)
    if hit is not None:
        return (*hit, True)
    tensors, meta = build()
    save(path, tensors, meta)
    return tensors, meta, False
