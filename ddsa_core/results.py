"""Recorded results: JSON files with provenance under ``results/<profile>/<dataset>/``.

The committed records (``results/paper``, ``results/reduced`` and two of ``results/quick``) are what
the book shows as "recorded". Only the record command (``python -m ddsa_core record``, inside
:func:`recording`) writes them. A chapter run, in Jupyter, by papermill or under nbval, writes its
records under ``_build/records/`` instead (``$DDSA_LIVE_RECORDS``), so rerunning a chapter never
overwrites a committed record. Where ``$DDSA_RESULTS`` names another folder (the tests' isolated
one), every record goes there.
"""
from __future__ import annotations

import base64
import contextlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from . import cache, data
from .config import RECIPE_DEFAULTS, Config
from .runtime import REPO_ROOT, provenance

if TYPE_CHECKING:  # pandas loads where a table is built: recording a run does not need it
    import pandas as pd


def results_root() -> Path:
    """``$DDSA_RESULTS`` or the repository's ``results/`` folder."""
    return Path(os.environ.get("DDSA_RESULTS", REPO_ROOT / "results"))


def result_path(profile: str, dataset: str, name: str) -> Path:
    return results_root() / profile / dataset / f"{name}.json"


_RECORDING = False  # True only inside recording(): the record command writes results/


@contextlib.contextmanager
def recording():
    """Within this block, :func:`record` writes the committed records' folder (the record command)."""
    global _RECORDING
    before, _RECORDING = _RECORDING, True
    try:
        yield
    finally:
        _RECORDING = before


def record_path(profile: str, dataset: str, name: str) -> Path:
    """Where :func:`record` writes: ``results/`` for the record command or an explicit ``$DDSA_RESULTS``,
    else ``$DDSA_LIVE_RECORDS`` (default ``_build/records/``)."""
    if _RECORDING or "DDSA_RESULTS" in os.environ:
        return result_path(profile, dataset, name)
    live = Path(os.environ.get("DDSA_LIVE_RECORDS", REPO_ROOT / "_build" / "records"))
    return live / profile / dataset / f"{name}.json"


def record(name: str, cfg: Config, results: dict[str, Any], wall_s: dict[str, float], device: torch.device) -> dict:
    """Write one result with its provenance (commit, device, date, wall times, profile, data source, seed)."""
    doc = {
        "name": name,
        "profile": cfg.profile,
        "dataset": cfg.dataset,
        "data_source": data.data_source(cfg.dataset),
        "seed": cfg.seed,
        "config": cfg.to_dict(),
        "provenance": provenance(device),
        "wall_s": wall_s,
        "results": results,
    }
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    cache.atomic_write(record_path(cfg.profile, cfg.dataset, name), lambda tmp: tmp.write_text(text))
    return doc


def pack_images(x: torch.Tensor) -> dict[str, Any]:
    """Images in [0, 1] as JSON: their shape and base64 of their uint8 pixels (for figures, not for attacks)."""
    pixels = (x.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
    return {"shape": list(pixels.shape), "uint8_base64": base64.b64encode(pixels.numpy().tobytes()).decode("ascii")}


def unpack_images(packed: dict[str, Any]) -> torch.Tensor:
    """The float images in [0, 1] of :func:`pack_images`, each pixel rounded to 1/255."""
    raw = bytearray(base64.b64decode(packed["uint8_base64"]))
    return torch.frombuffer(raw, dtype=torch.uint8).reshape(packed["shape"]).float() / 255


def load_record(profile: str, dataset: str, name: str) -> dict | None:
    """A recorded result, or ``None`` if that run has not been recorded yet."""
    path = result_path(profile, dataset, name)
    return json.loads(path.read_text()) if path.exists() else None


def wall_total(doc: dict) -> float:
    """Seconds a recorded run took: its ``this_run`` time. Records written before every stage kept
    ``this_run`` sum their parts instead, except the classifier's training, which ``classifier`` counts."""
    wall = doc["wall_s"]
    if "this_run" in wall:
        return wall["this_run"]
    return sum(v for k, v in wall.items() if isinstance(v, (int, float)) and k != "train_classifier")


def compute_s(doc: dict) -> float:
    """Seconds a recorded stage's results cost: its own run, or, when it reloaded cached sets and weights,
    the crafting and training times they carry (the classifier's training counts in its own stage only)."""
    carried = sum(v for k, v in doc["wall_s"].items()
                  if k.startswith(("craft_", "train")) and k != "train_classifier" and isinstance(v, (int, float)))
    return max(wall_total(doc), carried)


#: How :func:`classifier_recipe` names each recipe field that differs from Table 3 read literally.
RECIPE_LABELS = {"clf_loss": {"keras_clipped": "Keras loss"}, "clf_checkpoint": {"best_val": "best epoch"},
                 "clf_augment": {"shift_flip": "augmentation"}}


def recorded_config(config: dict) -> dict:
    """A recorded config with every recipe field: a record made before those fields existed trained
    with :data:`~ddsa_core.config.RECIPE_DEFAULTS`."""
    return {**RECIPE_DEFAULTS, **config}


def classifier_recipe(config: dict) -> str:
    """The classifier recipe a recorded config trained, short: "Table 3 literal", or what differs from it
    ("dropout 0.75", "Keras loss", "best epoch")."""
    recipe = {k: recorded_config(config)[k] for k in RECIPE_DEFAULTS}
    parts = [RECIPE_LABELS.get(k, {}).get(v, f"dropout {v}" if k == "clf_dropout" else f"{k}={v}")
             for k, v in recipe.items() if v != RECIPE_DEFAULTS[k]]
    return " + ".join(parts) or "Table 3 literal"


def provenance_table(docs: list[dict]) -> "pd.DataFrame":
    """One row per recorded document: where, when and by which commit it ran, its wall time, the
    classifier recipe it attacked (:func:`classifier_recipe`), and every other config field in which it
    deviates from its profile's defaults (``field=value``, or blank)."""
    import pandas as pd

    from .config import make_config

    rows = []
    for doc in docs:
        default = make_config(doc["profile"], doc["dataset"], seed=doc["seed"]).to_dict()
        deviations = [f"{k}={v}" for k, v in doc["config"].items()
                      if k != "device" and k not in RECIPE_DEFAULTS and default.get(k) != v]
        rows.append({"record": f"{doc['profile']}/{doc['dataset']}/{doc['name']}", "device": doc["provenance"]["device"],
                     "commit": doc["provenance"]["commit"][:7], "date": doc["provenance"]["date"][:10],
                     "wall time (min)": round(wall_total(doc) / 60, 1), "classifier": classifier_recipe(doc["config"]),
                     "deviations": ", ".join(deviations)})
    return pd.DataFrame(rows).set_index("record")


def provenance_of(records: list[str]) -> "pd.DataFrame":
    """:func:`provenance_table` of the records ``records`` (each ``"<profile>/<dataset>/<name>"``, the
    table's index) that exist, in the order given: the one provenance table of a chapter."""
    docs = (load_record(*record.split("/")) for record in records)
    return provenance_table([doc for doc in docs if doc is not None])
