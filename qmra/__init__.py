"""qmra: box-prompted video object segmentation with Query-Memory Re-Aggregation (AAAI 2021)."""

from qmra.errors import ConfigError, QmraError, WeightsError

__version__ = "0.1.0"

__all__ = ["ConfigError", "QmraError", "WeightsError", "__version__"]
