"""Shared test set-up: deterministic seeds, and the DAVIS data location ($QMRA_DAVIS_ROOT, else
../shared/data/davis2016 beside the checkout: the same under `make test` and CI)."""

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
    root = os.environ.get("QMRA_DAVIS_ROOT") or str(Path(__file__).resolve().parents[2] / "shared" / "data" / "davis2016")
    if not Path(root).is_dir():
        pytest.skip("real DAVIS data not found: set QMRA_DAVIS_ROOT to ../shared/data/davis2016")
    return Path(root)
