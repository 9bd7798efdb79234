"""``qmra ui``: a local web app for box-prompted video segmentation (see :mod:`qmra.ui.server`).

Standard library only: ``http.server`` serves plain HTML and JavaScript from ``static/``; masks
are computed by :mod:`qmra.ui.page` with the same session API as ``qmra segment``.
"""

from qmra.ui.config import UiConfig
from qmra.ui.server import UiServer, create_server

__all__ = ["UiConfig", "UiServer", "create_server"]
