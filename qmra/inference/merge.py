"""Several objects' probabilities → one label map (STM's soft aggregation, the paper's softmax)."""

from __future__ import annotations

from typing import Callable, Collection, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from qmra.data.boxes import Box, render_box_map
from qmra.data.object_ids import MAX_OBJECT_ID
from qmra.inference.pieces import drop_small_pieces
from qmra.inference.results import FrameResult, ProbabilityMaps

EPSILON = 1e-7


def soft_aggregate(probabilities: torch.Tensor) -> torch.Tensor:
    """N×H×W object probabilities → (N+1)×H×W probabilities of {background, object 1..N}.

    background = Π(1 − p_i); all clamped to [1e-7, 1 − 1e-7]; logit = log(p / (1 − p)); softmax over
    the N + 1 classes. With no object, everything is background.
    """
    if probabilities.dim() != 3:
        raise ValueError(f"expected N×H×W probabilities, got shape {tuple(probabilities.shape)}")
    background = torch.prod(1 - probabilities, dim=0, keepdim=True)
    stacked = torch.cat([background, probabilities], dim=0).clamp(EPSILON, 1 - EPSILON)
    return torch.softmax(torch.log(stacked / (1 - stacked)), dim=0)


def label_map(probabilities: torch.Tensor, object_ids: list[int]) -> torch.Tensor:
    """(N+1)×H×W merged probabilities (background first) → H×W uint8 ids of the most probable class.

    The same as ``argmax`` over the classes (ties go to the earlier class), but a running maximum
    over the few classes: a reduction across the leading dimension of a large map is ~50× slower
    on CPU.
    """
    if probabilities.shape[0] != len(object_ids) + 1:
        raise ValueError(f"{probabilities.shape[0]} maps for {len(object_ids)} objects (expected background + one each)")
    best = probabilities[0]
    labels = torch.zeros(probabilities.shape[1:], dtype=torch.uint8, device=probabilities.device)
    for slot, object_id in enumerate(object_ids, start=1):
        better = probabilities[slot] > best
        labels.masked_fill_(better, object_id)
        best = torch.maximum(best, probabilities[slot])
    return labels


def boxed_in_front(own: torch.Tensor, object_ids: list[int], boxes: dict[int, Box | torch.Tensor | None],
                   boxed: Collection[int], frame_size: tuple[int, int]) -> torch.Tensor:
    """N×h×w object probabilities (``object_ids`` in order) on a frame where the objects ``boxed``
    were boxed → N×h×w probabilities to merge. ``boxes``: each object's box, as in :func:`merge_frame`
    (in pixels of the H×W ``frame_size``, or an h×w box map).

    The user's box is their word for where the object is. Inside it, every object with a larger box
    gives way: its probability is multiplied by 1 − the boxed object's. An object boxed in front of
    another (a rider on a horse, whose box holds the rider's) so keeps the pixels it is sure of, and
    since :func:`~qmra.inference.boxed.hold_to_box` gives it pixels of p ≥ 0.5, its mask is not
    empty on the frame where it was boxed. Computed on the device, without a wait.
    """
    if not boxed:
        return own
    size = tuple(own.shape[-2:])

    def box_map(box: Box | torch.Tensor | None) -> torch.Tensor:
        if isinstance(box, torch.Tensor):
            return box.to(own.dtype)
        return torch.from_numpy(render_box_map(box, frame_size, size)).to(own.device)  # type: ignore[arg-type]

    maps = torch.stack([box_map(boxes[i]) for i in object_ids])
    areas = maps.flatten(1).sum(1)
    give_way = torch.ones_like(own)
    for object_id in boxed:
        slot = object_ids.index(object_id)
        larger = (areas > areas[slot]).to(own.dtype)[:, None, None]  # the objects that give way to this one
        give_way = give_way * (1 - larger * (own[slot] * maps[slot]))
    return own * give_way


def merge_frame(index: int, name: str, frame: np.ndarray, probabilities: dict[int, torch.Tensor],
                boxes: dict[int, Box | torch.Tensor | None], before_wait: Callable[[], None] | None = None,
                boxed: Collection[int] = (), min_piece: float = 0.0,
                given: Mapping[int, np.ndarray] | None = None) -> FrameResult:
    """Frame ``index`` (named ``name``, H×W×3 ``frame``) with its objects' h×w probabilities at the
    working size merged into one H×W label map, and each object's box: a :class:`Box`, or an h×w
    box map on the device (stage 2's tracked box), whose extent becomes its box. ``boxed``: the
    objects the user boxed on this frame (their boxes in ``boxes``), to which objects with larger
    boxes give way inside their boxes (:func:`boxed_in_front`). ``min_piece``: pieces of a mask smaller
    than this share of its largest piece are dropped (:func:`drop_small_pieces`). ``given``: H×W bool
    masks the user gave for some objects on this frame, which are their labels here, exactly, over
    any other object's (their probabilities and confidence stay the network's, from their boxes:
    what the quality signals compare later frames with). Everything the host needs crosses over in one go.
    ``before_wait``: work to queue on the device once the copies to the host are queued, before
    waiting for them."""
    object_ids = sorted(probabilities)
    if not object_ids:
        return FrameResult(index, name, np.zeros(frame.shape[:2], np.uint8), {}, frame)
    own = torch.stack([probabilities[i] for i in object_ids]).float()
    height, width = frame.shape[:2]
    working = tuple(own.shape[-2:])
    in_front = boxed_in_front(own, object_ids, boxes, boxed, (height, width))
    merged = soft_aggregate(in_front)  # at the working size: a quarter of the pixels at resolution 240
    full = merged if working == (height, width) else F.interpolate(merged[None], size=(height, width), mode="bilinear",
                                                                    align_corners=False)[0]
    labels = label_map(full, object_ids)
    # Confidence: each object's mean own probability where it is confident (p > 0.5), at the working size.
    confident = own > 0.5
    confidence = (own * confident).flatten(1).sum(1) / confident.flatten(1).sum(1).clamp(min=1)
    # Pixels per label. Not torch.bincount: on CUDA it reads the largest label back to size its
    # output, a wait for the device in the middle of the frame.
    flat = labels.flatten().long()
    areas = torch.zeros(MAX_OBJECT_ID + 1, dtype=torch.long, device=labels.device).scatter_add_(0, flat, torch.ones_like(flat))
    # A tracked box map's extent: which rows and columns it covers (a few hundred booleans each).
    tracked = [i for i in object_ids if isinstance(boxes[i], torch.Tensor)]
    extents = [(boxes[i].bool().any(dim=1), boxes[i].bool().any(dim=0)) for i in tracked]  # type: ignore[union-attr]
    copies = _HostCopies([labels, confidence, areas, *(e for pair in extents for e in pair)])
    if before_wait is not None:
        before_wait()
    host = copies.wait()
    scale = (width / working[1], height / working[0])
    final_boxes = {i: b for i, b in boxes.items() if not isinstance(b, torch.Tensor)}
    for slot, object_id in enumerate(tracked):
        final_boxes[object_id] = _extent_box(host[3 + 2 * slot].numpy(), host[4 + 2 * slot].numpy(), scale)
    maps = ProbabilityMaps(object_ids, merged, own, (height, width))
    scores, area = host[1].tolist(), host[2].numpy()
    labels = drop_small_pieces(host[0].numpy(), min_piece)  # never empties a mask: the areas stand
    lost = {i: bool(area[i] == 0) for i in object_ids}
    for object_id, mask in (given or {}).items():
        labels[labels == object_id] = 0
        labels[mask] = object_id
        lost[object_id] = False  # a given mask is never empty (Prompt)
    return FrameResult(index, name, labels, {i: final_boxes[i] for i in object_ids}, frame, maps,
                       confidence={i: float(scores[slot]) for slot, i in enumerate(object_ids)}, lost=lost)


class _HostCopies:
    """A frame's results on their way to the host: on CUDA, copied into page-locked memory
    asynchronously, with one wait for all of them (not one per tensor) that does not wait for work
    queued after them."""

    def __init__(self, tensors: list[torch.Tensor]) -> None:
        self._event: torch.cuda.Event | None = None
        if not tensors or tensors[0].device.type != "cuda":
            self._tensors = [t.cpu() for t in tensors]  # on the CPU these are the tensors themselves
            return
        self._tensors = [torch.empty(t.shape, dtype=t.dtype, pin_memory=True).copy_(t, non_blocking=True) for t in tensors]
        self._event = torch.cuda.Event()
        self._event.record(torch.cuda.current_stream(tensors[0].device))

    def wait(self) -> list[torch.Tensor]:
        if self._event is not None:
            self._event.synchronize()
        return self._tensors


def _extent_box(rows: np.ndarray, cols: np.ndarray, scale: tuple[float, float]) -> Box | None:
    """The box covered by a box map's occupied rows and columns, in frame pixels (None: empty)."""
    ys, xs = np.flatnonzero(rows), np.flatnonzero(cols)
    if ys.size == 0 or xs.size == 0:
        return None
    sx, sy = scale
    return Box(xs[0] * sx, ys[0] * sy, (xs[-1] + 1) * sx, (ys[-1] + 1) * sy)
