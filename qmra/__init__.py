"""qmra: box-prompted video object segmentation with Query-Memory Re-Aggregation (AAAI 2021)."""

from qmra.errors import BoxError, ConfigError, DataError, QmraError, WeightsError

__version__ = "0.1.0"

__all__ = ["BoxError", "ConfigError", "DataError", "QmraError", "WeightsError", "__version__"]
