"""The package's layers: each module imports only modules of its own layer or below, and no public
name is defined in two modules (so ``records.x`` reads what ``experiments.x`` would otherwise run)."""
from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ddsa_core"

# Bottom to top, as the book is built: a module may import the modules of its own layer and below.
LAYERS = (
    {"config", "runtime", "cache", "paper", "data"},  # data
    {"models", "evaluation", "sparsity", "training"},  # models
    {"attacks", "adversarial", "diagnostics", "defenses", "baselines"},  # attacks and defenses
    {"threat_models", "adaptive", "sanity", "results"},  # threat models, evaluation, recording
    {"experiments", "protocol"},  # the stages the book shows
    {"tables", "records", "figures"},  # what the chapters display
    {"cli", "__main__"},  # the command line, python -m ddsa_core record|reproduce
)


def _imports(path: Path) -> set[str]:
    """The ``ddsa_core`` modules ``path`` imports (``from . import x``, ``from .x import y``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found |= {a.name for a in node.names} if node.module is None else {node.module.split(".")[0]}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ddsa_core"):
            found |= {a.name for a in node.names} if node.module == "ddsa_core" else {node.module.split(".")[1]}
    return found


def _public_names():
    spec = importlib.util.spec_from_file_location("public_names", ROOT / "tools" / "public_names.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("public_names", module)
    spec.loader.exec_module(module)
    return module


def test_every_module_has_a_layer():
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert modules == set().union(*LAYERS), (modules ^ set().union(*LAYERS))


@pytest.mark.parametrize("level", range(len(LAYERS)))
def test_a_module_imports_only_its_layer_and_below(level):
    allowed = set().union(*LAYERS[: level + 1])
    for name in sorted(LAYERS[level]):
        above = _imports(PACKAGE / f"{name}.py") - allowed
        assert not above, f"ddsa_core.{name} imports {sorted(above)}, from a layer above it"


def test_no_public_name_is_defined_in_two_modules():
    assert _public_names().twice(PACKAGE) == {}


def test_the_check_finds_a_name_defined_twice(tmp_path):
    (tmp_path / "a.py").write_text("def table():\n    pass\n_private = 1\n")
    (tmp_path / "b.py").write_text("table = None\n_private = 2\n")
    assert _public_names().twice(tmp_path) == {"table": ["a", "b"]}
