"""The network every page shares: one computation at a time, and the networks test-time adaptation
made for the last few (frame, boxes), so that the forward and backward runs from a box reuse the
adaptation its preview already paid for."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import replace

from qmra.inference.segmenter import Segmenter

ADAPTED_KEPT = 2  # adapted networks kept for reuse (each is a copy of the network)


class Engine:
    """The network shared by every page, one computation at a time.

    Previews (the mask of a box on its own frame) skip test-time adaptation unless
    ``adapt_previews``: on one frame the box alone gives nearly the same mask (DAVIS car-shadow,
    frame 0, shipped weights: J 0.865 without, 0.866 with 10 steps) at a tenth of the time; runs
    adapt as the weights recommend, once per box (forward and backward share it)."""

    def __init__(self, segmenter: Segmenter, adapt_previews: bool = False) -> None:
        self.segmenter = segmenter
        self.compute = threading.Lock()
        self._adapted: OrderedDict[tuple, Segmenter] = OrderedDict()
        self.adapt_previews = adapt_previews
        self.previewer = segmenter if adapt_previews or not self.adapts else Segmenter(
            segmenter.model, segmenter.device, replace(segmenter.settings, adapt_steps=0), progress=False)

    @property
    def adapts(self) -> bool:
        """Whether runs may adapt the network: always, or on greyscale video (weights that learned from colour only)."""
        settings = self.segmenter.settings
        return settings.adapt_steps > 0 or (self.segmenter.colour_only and settings.grey_adapt_steps > 0)

    def segmenter_for(self, key: tuple, preview: bool = False) -> Segmenter:
        """A segmenter whose network is already adapted to ``key``'s frame and boxes, else the shared one
        (for a preview: the one that does not adapt, unless ``adapt_previews``)."""
        found = self._adapted.get(key)
        if found is not None:
            self._adapted.move_to_end(key)
            return found
        return self.previewer if preview else self.segmenter

    def remember(self, key: tuple, adapted_model) -> None:
        settings = replace(self.segmenter.settings, adapt_steps=0)
        self._adapted[key] = Segmenter(adapted_model, self.segmenter.device, settings, progress=False)
        while len(self._adapted) > ADAPTED_KEPT:
            self._adapted.popitem(last=False)

    def forget(self, prefix: str) -> None:
        for key in [k for k in self._adapted if k[0] == prefix]:
            del self._adapted[key]
