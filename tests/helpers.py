"""Shared by the test modules (imported as ``helpers``; ``conftest`` holds only fixtures, so a
``conftest.py`` elsewhere in the repository cannot shadow what the tests import)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck"]
