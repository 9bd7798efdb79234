"""Shared test set-up: deterministic seeds, the DAVIS data location ($QMRA_DAVIS_ROOT, else
../shared/data/davis2016 beside the checkout: the same under `make test` and CI), and slow tests.

Tests marked ``@pytest.mark.slow`` (each takes many seconds: real-data runs, training loops) are
skipped unless ``QMRA_SLOW_TESTS=1`` (CI sets it: `.ci/run`; `make test-all` here), so that `make
test` stays at about a minute on a 2-core machine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _steady_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """Segmenters choose their thread count from the machine's load (qmra.inference.threads), and a
    different count rounds reductions differently: a pixel can flip between two runs that tests
    compare exactly (seen in CI). Tests see an idle machine; test_threads reads the real load."""
    import qmra.inference.threads

    monkeypatch.setattr(qmra.inference.threads, "other_runnable", lambda: 0.0)


@pytest.fixture(scope="session")
def weights(tmp_path_factory) -> Path:
    """A checkpoint of the tiny test network (random weights, the same in every run: a session fixture
    is made before ``_seed`` runs, and torch's own seed differs from process to process, so unseeded
    weights once gave a test empty masks in about one run in fifteen)."""
    from tests.tiny import tiny_checkpoint

    with torch.random.fork_rng():
        torch.manual_seed(0)
        return tiny_checkpoint(tmp_path_factory.mktemp("weights") / "tiny.safetensors")


@pytest.fixture
def davis_root() -> Path:
    """The real DAVIS 2016 copy, from $QMRA_DAVIS_ROOT; tests that need it skip when it is absent."""
    root = os.environ.get("QMRA_DAVIS_ROOT") or str(Path(__file__).resolve().parents[2] / "shared" / "data" / "davis2016")
    if not Path(root).is_dir():
        pytest.skip("real DAVIS data not found: set QMRA_DAVIS_ROOT to ../shared/data/davis2016")
    return Path(root)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes many seconds; run with QMRA_SLOW_TESTS=1 (CI, make test-all)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("QMRA_SLOW_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="slow: QMRA_SLOW_TESTS=1 (CI, make test-all) runs it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
