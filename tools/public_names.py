"""Public names defined at the top level of more than one ``ddsa_core`` module (the book's rule: none).

Run from the project's root: ``python tools/public_names.py``; exits 1 and lists them when any is.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path


def definitions(package: Path) -> dict[str, list[str]]:
    """Each public top-level name (function, class or assignment) -> the modules that define it."""
    found: dict[str, list[str]] = {}
    for path in sorted(package.glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names = [node.name]
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = [t.id for t in targets if isinstance(t, ast.Name)]
            else:
                continue
            for name in names:
                if not name.startswith("_"):
                    found.setdefault(name, []).append(path.stem)
    return found


def twice(package: Path) -> dict[str, list[str]]:
    return {name: mods for name, mods in definitions(package).items() if len(mods) > 1}


if __name__ == "__main__":
    dup = twice(Path(__file__).resolve().parents[1] / "ddsa_core")
    for name, mods in sorted(dup.items()):
        print(f"{name}: {', '.join(mods)}")
    sys.exit(1 if dup else 0)
