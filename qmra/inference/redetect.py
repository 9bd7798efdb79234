"""Finding a lost object again by its look on the frame where it was boxed (``--redetect``).

QMRA's stage 1 reads the memory and predicts the object's box map; trained on clips where objects
move a little from frame to frame, it looks near where the object was. An object hidden for some
frames that comes back elsewhere is then not found again, although its look has not changed: the
query encoder's stride-16 features of the object's cells on its boxed frame are still closer to the
object, once it is back, than the features of that frame's background are.

So each object keeps an :class:`Appearance` from its boxed frame: the unit feature vectors of its
cells (its mask covers at least half of the cell) and of the background (cells outside its box
grown by one cell). On a frame where its mask is empty, every cell of the query votes: the mean of
its 3 best cosine similarities to the object's cells against the same to the background's. Cells
where the object wins form blobs; the one with most margin, if its area is within
:data:`AREA_RANGE` of the object's on its boxed frame, is where the object is, and its box is handed
to stage 2 in place of stage 1's empty one (:class:`qmra.inference.predict.FramePredictor`). Where
the object is still hidden the background wins everywhere and nothing is proposed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from qmra.model import BackboneFeatures
from qmra.model.preprocess import Padding
from qmra.model.prior import largest_blob, rectangle_prior

#: How many of a cell's best matches its vote averages, among the object's cells and the background's.
TOP_MATCHES = 3
#: At most this many cells of each kind are kept (evenly spaced), bounding a vote's cost on large frames.
MAX_OBJECT_CELLS = 512
MAX_BACKGROUND_CELLS = 2048
#: A blob is the object only if its area, in cells, is within this factor range of the object's on
#: its boxed frame (objects come back nearer or farther, not ten times the size).
AREA_RANGE = (0.2, 5.0)
#: A cell holds the object where its mask covers more than this share of it.
CELL_COVER = 0.5


@dataclass(frozen=True)
class Appearance:
    """An object's look on its boxed frame: ``object_cells`` N×C and ``background_cells`` M×C unit
    feature vectors, and ``area``, the object's mask area in cells (a 0-d tensor, kept on the device)."""

    object_cells: torch.Tensor
    background_cells: torch.Tensor
    area: torch.Tensor


def stride16_features(features: BackboneFeatures | tuple[BackboneFeatures, ...]) -> torch.Tensor:
    """The 1×C×h×w stride-16 query features (an ensemble's: its first network's)."""
    first = features if isinstance(features, BackboneFeatures) else features[0]
    return first.r4[:1]


def cell_cover(masks: torch.Tensor, padding: Padding, grid: tuple[int, int]) -> torch.Tensor:
    """B×h×w masks (0..1) at the working size → B×gh×gw, the share of each feature cell they cover."""
    padded = padding.pad(masks[:, None].float())
    return F.interpolate(padded, size=grid, mode="area")[:, 0]


def appearance(features: torch.Tensor, cover: torch.Tensor) -> Appearance:
    """An object's :class:`Appearance` from its frame's 1×C×h×w features and its mask's h×w cell cover."""
    vectors = F.normalize(features[0].float(), dim=0).flatten(1).T  # h·w × C
    flat = cover.flatten()
    inside = flat > CELL_COVER
    if not bool(inside.any()) and bool(flat.max() > 0):  # an object smaller than a cell: its best-covered cell
        inside = flat >= flat.max()
    box = _box_cells((cover > 0)[None], grown=1).flatten()
    return Appearance(_evenly(vectors[inside], MAX_OBJECT_CELLS), _evenly(vectors[~box], MAX_BACKGROUND_CELLS),
                      flat.sum())


def find(look: Appearance, features: torch.Tensor, padding: Padding) -> torch.Tensor | None:
    """Where the object of ``look`` is on a frame with 1×C×gh×gw ``features``: a 1×1×h×w box map at
    the working size (1 inside the box), or None where no blob of cells votes for it at a size it
    could have."""
    if len(look.background_cells) == 0 or len(look.object_cells) == 0:
        return None  # the object filled its boxed frame (nothing to tell it from), or had no pixel there
    grid = features.shape[-2:]
    vectors = F.normalize(features[0].float(), dim=0).flatten(1).T
    margin = (_vote(vectors, look.object_cells) - _vote(vectors, look.background_cells)).view(1, 1, *grid)
    wins = margin > 0
    if not bool(wins.any()):
        return None
    blob = largest_blob(wins, margin.clamp(min=0), cell=1)[0, 0]
    ratio = float(blob.sum()) / max(float(look.area), 1.0)
    if not AREA_RANGE[0] <= ratio <= AREA_RANGE[1]:
        return None
    cells = _box_cells(blob[None], grown=0).float()[:, None]  # 1×1×gh×gw
    padded = F.interpolate(cells, size=(padding.padded_height, padding.padded_width), mode="nearest")
    return padding.crop(padded)


def _vote(vectors: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """Each of the P×C unit ``vectors``' mean cosine similarity to its best :data:`TOP_MATCHES` of ``cells``."""
    similarity = vectors @ cells.T
    return similarity.topk(min(TOP_MATCHES, cells.shape[0]), dim=1).values.mean(1)


def _box_cells(present: torch.Tensor, grown: int) -> torch.Tensor:
    """B×gh×gw booleans → the same, True over their tight box grown by ``grown`` cells on each side."""
    box = rectangle_prior(present[:, None].float())
    if grown:
        box = F.max_pool2d(box, 2 * grown + 1, stride=1, padding=grown)
    return box[:, 0] > 0


def _evenly(rows: torch.Tensor, limit: int) -> torch.Tensor:
    """At most ``limit`` of ``rows``, evenly spaced (the same ones on every run)."""
    if rows.shape[0] <= limit:
        return rows
    return rows[torch.linspace(0, rows.shape[0] - 1, limit, device=rows.device).long()]


class Redetector:
    """The :class:`Appearance` of each object of a video, from its boxed frame (per-video state: a
    session's, through its frame predictor), and the boxes it proposes for the lost ones."""

    def __init__(self) -> None:
        self._looks: dict[int, Appearance] = {}

    def remember(self, object_ids: list[int], features: torch.Tensor, masks: torch.Tensor, padding: Padding) -> None:
        """The objects boxed on a frame: its 1×C×gh×gw features and their B×h×w masks at the working size."""
        cover = cell_cover(masks, padding, tuple(features.shape[-2:]))
        for slot, object_id in enumerate(object_ids):
            self._looks[object_id] = appearance(features, cover[slot])

    def forget(self, object_id: int) -> None:
        self._looks.pop(object_id, None)

    def __contains__(self, object_id: int) -> bool:
        """Whether the look of ``object_id`` is kept."""
        return object_id in self._looks

    def priors(self, object_ids: list[int], probabilities: torch.Tensor, box_maps: torch.Tensor,
               features: torch.Tensor, padding: Padding) -> tuple[torch.Tensor, list[int]] | None:
        """Stage 2's B×1×h×w box maps with the lost objects (no pixel of their B×h×w
        ``probabilities`` over 0.5) given the box where their look is found, and the rows of those
        found; None where no lost object is found (or none is lost): the frame's prediction stands."""
        lost = (probabilities.flatten(1).amax(1) <= 0.5).tolist()
        found: dict[int, torch.Tensor] = {}
        for slot, object_id in enumerate(object_ids):
            look = self._looks.get(object_id)
            if lost[slot] and look is not None:
                box = find(look, features, padding)
                if box is not None:
                    found[slot] = box
        if not found:
            return None
        priors = box_maps.clone()
        for slot, box in found.items():
            priors[slot] = box[0].to(priors.dtype)
        return priors, sorted(found)
