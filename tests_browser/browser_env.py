"""Paths shared by the browser test and its fixtures (overridable from the environment)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOOK = Path(os.environ.get("BOOK_HTML", ROOT / "_build" / "html")).resolve()
SCREENSHOTS = Path(os.environ.get("BOOK_SCREENSHOTS", ROOT / "_build" / "screenshots")).resolve()

if str(ROOT / "tools") not in sys.path:  # tools/book_check.py: the static link checker
    sys.path.insert(0, str(ROOT / "tools"))
