"""Shared fixtures. Data comes from ``$DDSA_DATA`` (CI: ``../shared/data``); artifacts from ``$DDSA_CACHE``."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("DDSA_DATA", str(ROOT.parent / "shared" / "data"))
os.environ.setdefault("DDSA_CACHE", str(ROOT / ".cache"))
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(scope="session")
def mnist_classifier():
    """The quick-profile Table 2 MNIST classifier (trained once, then cached), on the CPU, in eval mode."""
    from ddsa_core.config import make_config
    from ddsa_core.training import classifier

    return classifier(make_config("quick", "mnist", device="cpu")).model.eval()


@pytest.fixture(scope="session")
def mnist_test_batch():
    """The first 200 MNIST test images and labels."""
    from ddsa_core import data

    return data.load("mnist", "test", 200)
