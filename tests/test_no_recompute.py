"""A second execution of the chapters loads everything: it trains nothing, attacks nothing, writes no artifact.

The first pass runs every chapter-level computation of :mod:`ddsa_core.experiments` on a tiny MNIST
config in an empty cache. The second pass runs them again with training (``fit``, wherever it is
looked up), attacking (``Attack.__call__``) and artifact writing (``cache.save``) made to raise,
and must return the same numbers and leave the cache folder as it was. The last tests break the
cache on purpose and check that the guards then do raise, so this test can fail.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from torch import nn

from ddsa_core import attacks, cache, defenses, experiments, training
from ddsa_core.config import Config, make_config
from ddsa_core.runtime import cache_root

TINY = dict(train_size=64, test_size=32, attack_size=32, cw_size=8, cw_max_iter=5, cw_binary_steps=1,
            clf_epochs=1, ae_epochs=1, ae_val_size=32, magnet_epochs=1, magnet_detector_epochs=1,
            magnet_val_size=32, adv_epochs=1, bb_holdout=16, bb_rounds=2, bb_epochs=1)
# PGD runs the paper's 40 iterations whatever the profile, so the later chapters attack with two cheap
# attacks that still cover both code paths of ``craft`` (with and without ``last_success``).
FEW = ("fgsm", "cw")
VOLATILE = {"loaded_from_cache", "cached"}  # the hit flags: the only outputs allowed to differ between the passes


class Recomputed(AssertionError):
    """Raised by the guards: something was trained, attacked or written on the second pass."""


def tiny_config() -> Config:
    """The quick MNIST profile shrunk to seconds."""
    return make_config("quick", "mnist", device="cpu", **TINY)


def run_chapters(cfg) -> dict[str, Any]:
    """Every computation the chapters make (02 classifiers ... 06 results), in the book's order."""
    out: dict[str, Any] = {}
    out["classifier"] = experiments.classifier_run(cfg)
    out["no_defense"] = experiments.no_defense_run(cfg)  # all five attacks
    out["gradient_masking"] = experiments.gradient_masking_run(cfg)
    out["gradient_variants"] = experiments.gradient_variants_run(cfg, names=("fgsm",))
    out["ddsa"] = experiments.ddsa_run(cfg, names=FEW)  # trains on PGD examples all the same
    out["epsilon_sweep"] = experiments.epsilon_sweep(cfg, defenses.denoiser(cfg, "ddsa"), eps_values=(0.1, 0.3),
                                                 names=("fgsm",))
    out["denoised_examples"] = experiments.craft_and_denoise(out["ddsa"], cfg)
    out["baselines"] = experiments.baselines_run(cfg, names=FEW)
    out["threat_models"] = experiments.threat_model_run(cfg, names=FEW)  # black-, gray- and white-box
    return out


def plain(obj: Any) -> Any:
    """A comparable form: tensors and module weights by content hash, floats by repr (NaN equals NaN)."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous().reshape(-1)
        return ("tensor", str(t.dtype), tuple(obj.shape), hashlib.sha256(t.view(torch.uint8).numpy().tobytes()).hexdigest()
                if t.numel() else "")
    if isinstance(obj, nn.Module):
        return ("module", type(obj).__name__, plain(dict(obj.state_dict())))
    if isinstance(obj, pd.DataFrame):
        return ("frame", plain(obj.to_dict("split")))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):  # Trained, AdversarialSet
        return ("dataclass", type(obj).__name__, plain({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}))
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, float):
        return repr(obj)
    return obj


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two :func:`plain` forms differ, as paths like ``baselines/rows/3/accuracy``."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in differences(a.get(k), b.get(k), f"{path}/{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}/{i}")]
    return [] if a == b else [f"{path}: {repr(a)[:200]} then {repr(b)[:200]}"]


def files(root: Path) -> dict[str, tuple[int, int]]:
    """Every artifact under the cache root (the shared ``data`` link left out), with size and mtime."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file() and p.relative_to(root).parts[0] != "data"}


def guard(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make training, attacking and writing artifacts raise, wherever ``ddsa_core`` looks them up."""
    def refuse(what):
        def raiser(*args, **kwargs):
            raise Recomputed(f"{what} was called on the second pass")
        return raiser

    patched, real_fit = [], training.fit
    for name, module in list(sys.modules.items()):
        if (name == "ddsa_core" or name.startswith("ddsa_core.")) and getattr(module, "fit", None) is real_fit:
            monkeypatch.setattr(module, "fit", refuse(f"{name}.fit"))
            patched.append(name)
    monkeypatch.setattr(attacks.Attack, "__call__", refuse("Attack.__call__"))
    monkeypatch.setattr(cache, "save", refuse("cache.save"))
    return patched


@pytest.fixture(scope="module")
def first_pass(tmp_path_factory):
    """The chapters run once in an empty cache (the decoded datasets shared with the real cache)."""
    shared_data = cache_root() / "data"
    shared_data.mkdir(parents=True, exist_ok=True)
    root = tmp_path_factory.mktemp("cache")
    os.symlink(shared_data, root / "data", target_is_directory=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DDSA_CACHE", str(root))
        mp.setenv("DDSA_RESULTS", str(tmp_path_factory.mktemp("results")))
        cfg = tiny_config()
        yield cfg, root, plain(run_chapters(cfg)), files(root)


def test_second_pass_trains_and_attacks_nothing(first_pass, monkeypatch):
    cfg, root, first, before = first_pass
    assert before, "the first pass cached nothing"
    patched = guard(monkeypatch)
    assert {"ddsa_core.training", "ddsa_core.defenses", "ddsa_core.baselines", "ddsa_core.threat_models"} <= set(patched)
    second = run_chapters(cfg)
    assert second["classifier"]["loaded_from_cache"] is True
    changed = differences(first, plain(second))
    assert not changed, "the second pass returned other numbers:\n" + "\n".join(changed[:20])
    assert files(root) == before  # nothing rewritten, nothing added


def _break_load(monkeypatch, kind: str | None) -> None:
    """``cache.read_artifact`` finds nothing of ``kind`` (None: of any kind but the decoded datasets)."""
    real = cache.read_artifact

    def broken(path):
        folder = Path(path).parent.name
        return None if (folder == kind if kind else folder != "data") else real(path)
    monkeypatch.setattr(cache, "read_artifact", broken)


@pytest.mark.parametrize("kind", [None, "adversarial"], ids=["no-cache", "no-adversarial-cache"])
def test_guards_catch_a_broken_cache(first_pass, monkeypatch, kind):
    """With the cache (or only its adversarial sets) unreadable, the second pass must trip a guard."""
    cfg = first_pass[0]
    guard(monkeypatch)
    _break_load(monkeypatch, kind)
    expected = "fit" if kind is None else "Attack.__call__"
    with pytest.raises(Recomputed, match=expected):
        experiments.no_defense_run(cfg)
