"""Fixtures of the inference tests."""

from __future__ import annotations

import pytest

from qmra.inference import Segmenter
from tests.inference.helpers import tiny_segmenter


@pytest.fixture
def segmenter() -> Segmenter:
    return tiny_segmenter()
