"""Shared test set-up: deterministic seeds, and the DAVIS data location (set by .ci/run)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def davis_root() -> Path:
    """The real DAVIS 2016 copy, from $QMRA_DAVIS_ROOT; tests that need it skip when it is absent."""
    root = os.environ.get("QMRA_DAVIS_ROOT")
    if not root or not Path(root).is_dir():
        pytest.skip("real DAVIS data not found: set QMRA_DAVIS_ROOT to ../shared/data/davis2016")
    return Path(root)
