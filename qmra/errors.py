"""Errors that the command line turns into one clear line (``qmra: error: ...``, exit code 2)."""

from __future__ import annotations


class QmraError(Exception):
    """Base class for every error caused by the user's input (files, arguments, weights)."""


class ConfigError(QmraError, ValueError):
    """A model or run setting that is not allowed (unknown backbone or variant, bad size)."""


class WeightsError(QmraError, ValueError):
    """A weights file that is missing, corrupt, or made for another architecture."""


class DataError(QmraError):
    """Input data that cannot be used: missing, unreadable or corrupt files, inconsistent frames or masks."""


class BoxError(QmraError, ValueError):
    """A box that is malformed, not finite, empty, or outside the image."""
