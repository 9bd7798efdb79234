"""The boxes a user gave: which object starts (or restarts) where."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence, Union

import numpy as np

from qmra.data.boxes import Box
from qmra.data.frames import FrameInfo
from qmra.data.object_ids import check_object_id
from qmra.errors import BoxError, QmraError


@dataclass(frozen=True)
class Prompt:
    """Object ``object_id`` (1..255) starts on frame ``frame`` (>= 0) inside ``box`` (pixels, xyxy).

    ``mask``: None (a box alone), or the object's H×W bool mask on that frame at the frames' size,
    which ``box`` then surrounds: that frame's result is this mask, and test-time adaptation with
    mask losses (``adapt_mask_weight`` > 0) learns its shape (:mod:`qmra.inference.adapt`); the
    memory, encoded with boxes, does not. Prompts compare by id, frame and box.
    """

    object_id: int
    frame: int
    box: Box
    mask: np.ndarray | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        object_id, frame = check_object_id(self.object_id), self.frame
        if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)) or frame < 0:
            raise QmraError(f"frame must be an integer >= 0, got {frame!r}")
        if not isinstance(self.box, Box):
            raise QmraError(f"expected a Box, got {self.box!r}")
        object.__setattr__(self, "object_id", object_id)
        object.__setattr__(self, "frame", int(frame))
        if self.mask is not None:
            mask = np.asarray(self.mask)
            if mask.ndim != 2:
                raise BoxError(f"object {object_id}: expected an H×W mask, got an array of shape {mask.shape}")
            if not mask.any():
                raise BoxError(f"object {object_id}: its mask on frame {frame} is empty")
            object.__setattr__(self, "mask", mask.astype(bool, copy=False))

    @property
    def key(self) -> tuple:
        """What the prompt gives, hashable: id, box and :func:`mask_digest` of the mask."""
        return self.object_id, self.box.as_tuple(), mask_digest(self.mask)

    @classmethod
    def on_video(cls, object_id: int, box: Box | Sequence[float] | str, frame: int, info: FrameInfo,
                 mask: np.ndarray | None = None) -> "Prompt":
        """A prompt for a video with ``info``: ``box`` (a :class:`Box`, four numbers or ``"x0,y0,x1,y1"``)
        clipped to the frame; a frame past the end, or a box of zero area, not finite or wholly outside
        the frame, is an error naming the object. ``mask``: the object's mask (:attr:`mask`), which
        must have the frames' size (:func:`check_mask_size`)."""
        if mask is not None:
            mask = np.asarray(mask)
            if mask.ndim == 2:
                check_mask_size((mask.shape[1], mask.shape[0]), info.width, info.height)
        if isinstance(box, str):
            box = Box.parse(box)
        elif not isinstance(box, Box):
            box = Box.from_sequence(list(box))
        prompt = cls(object_id, frame, box)  # checks the id and the frame
        # A count estimated from the duration can fall short: a run that ends first says so instead.
        if info.num_frames is not None and not info.estimated and prompt.frame >= info.num_frames:
            raise QmraError(f"object {prompt.object_id}: frame {prompt.frame} is past the end of the video "
                            f"({info.num_frames} frames)")
        _check_not_fractions(prompt.object_id, box, info)
        try:
            clipped = box.clip(info.width, info.height)
        except BoxError as error:
            raise BoxError(f"object {prompt.object_id}: {error}") from None
        return cls(prompt.object_id, prompt.frame, clipped, mask)


def mask_digest(mask: np.ndarray | None) -> str | None:
    """A short hash of an H×W mask (None without one): prompts with equal masks have equal keys."""
    if mask is None:
        return None
    return hashlib.sha1(np.packbits(mask).tobytes() + str(mask.shape).encode()).hexdigest()[:16]


def check_mask_size(mask_size: tuple[int, int], width: int, height: int) -> None:
    """Masks of ``mask_size`` (width, height) and frames must have one size (the frames as players
    show them), or the boxes would land elsewhere: a :class:`BoxError` if not."""
    if (width, height) != mask_size:
        raise BoxError(f"the masks are {mask_size[0]}x{mask_size[1]} pixels but the video's frames are {width}x{height}: "
                       "give masks of the frames' size")


def check_prompt_masks(prompts: Iterable[Prompt], width: int, height: int) -> None:
    """Every mask given with ``prompts`` has the frames' size (:func:`check_mask_size`): said before
    any work, where a session would say it on starting."""
    for prompt in prompts:
        if prompt.mask is not None:
            check_mask_size((prompt.mask.shape[1], prompt.mask.shape[0]), width, height)


def _check_not_fractions(object_id: int, box: Box, info: FrameInfo) -> None:
    """A box inside the frame's first pixel, not on its edges: four fractions of the frame's size
    (as YOLO and some labelling tools export boxes), which as pixels would be an object lost at once."""
    values = box.as_tuple()
    if info.width * info.height > 1 and all(0 <= v <= 1 for v in values) and not all(v in (0, 1) for v in values):
        corners = ",".join(f"{v * size:.6g}" for v, size in zip(values, (info.width, info.height) * 2))
        raise BoxError(f"object {object_id}: box {box.format()} lies inside the frame's first pixel: boxes are in pixels; "
                       f"if these are fractions of the frame's width and height, on this {info.width}x{info.height} video "
                       f"that box's corners are {corners}")


BoxGiven = Union[Box, Sequence[float], str]
#: Boxes as a caller may give them at once: ``{object_id: box}`` (frame 0), or ``(object_id, box)``
#: and ``(object_id, box, frame)`` tuples, or :class:`Prompt` objects.
PromptsGiven = Union[Mapping[int, BoxGiven], Iterable[Union[Prompt, tuple]]]


def prompt_items(prompts: PromptsGiven) -> list[tuple[int, BoxGiven, int, np.ndarray | None]]:
    """``prompts`` as (object id, box, frame, mask or None) in the order given."""
    if isinstance(prompts, Mapping):
        return [(object_id, box, 0, None) for object_id, box in prompts.items()]
    items: list[tuple[int, BoxGiven, int, np.ndarray | None]] = []
    for item in prompts:
        if isinstance(item, Prompt):
            items.append((item.object_id, item.box, item.frame, item.mask))
        elif isinstance(item, tuple) and len(item) in (2, 3):
            items.append((item[0], item[1], item[2] if len(item) == 3 else 0, None))
        else:
            raise QmraError(f"a prompt is a Prompt or an (object_id, box[, frame]) tuple, got {item!r}")
    return items


def check_on_grid(prompts: Iterable[Prompt], start: int, step: int, run: str) -> None:
    """Every box on a frame ``start + k * step`` (k any integer); else a :class:`QmraError` that says
    the ``run`` ("--every 3 from frame 0") skips its frame, and the two nearest it does not."""
    for prompt in prompts:
        if (prompt.frame - start) % step:
            below = prompt.frame - (prompt.frame - start) % step
            raise QmraError(f"object {prompt.object_id} is boxed on frame {prompt.frame}, which {run} skips: box it on "
                            f"frame {below} or {below + step}")


class PromptBook:
    """Every object's boxes, by frame: a later box for an object corrects it from that frame on."""

    def __init__(self) -> None:
        self._boxes: dict[int, dict[int, Prompt]] = {}  # object id → frame → its box there

    def __bool__(self) -> bool:
        return bool(self._boxes)

    @property
    def object_ids(self) -> list[int]:
        return sorted(self._boxes)

    def of(self, object_id: int) -> list[Prompt]:
        """The boxes given for ``object_id``, by frame."""
        return [self._boxes[object_id][f] for f in sorted(self._boxes.get(object_id, {}))]

    def add(self, prompt: Prompt) -> None:
        self._boxes.setdefault(prompt.object_id, {})[prompt.frame] = prompt

    def get(self, object_id: int, frame: int) -> Prompt:
        return self._boxes[object_id][frame]

    def remove(self, object_id: int) -> None:
        if object_id not in self._boxes:
            known = ", ".join(map(str, self.object_ids)) or "none"
            raise QmraError(f"unknown object id {object_id!r} (known: {known})")
        del self._boxes[object_id]

    def clear(self) -> None:
        self._boxes.clear()

    def frames(self) -> list[int]:
        """Every frame with a box on it (repeats included)."""
        return [f for frames in self._boxes.values() for f in frames]

    def starting(self, index: int) -> list[Prompt]:
        """The boxes on frame ``index``: objects that start there, or restart (a correction), by id."""
        return [frames[index] for _, frames in sorted(self._boxes.items()) if index in frames]

    def after(self, index: int) -> list[Prompt]:
        """The boxes on frames after ``index``."""
        return [p for frames in self._boxes.values() for p in frames.values() if p.frame > index]

    def before(self, index: int) -> list[Prompt]:
        """The boxes on frames before ``index``."""
        return [p for frames in self._boxes.values() for p in frames.values() if p.frame < index]

    def check_reached(self, last: int) -> None:
        """A run that ended on frame ``last`` (the video's last): boxes after it are an error."""
        late = self.after(last)
        if late:
            raise QmraError(f"object {late[0].object_id}: frame {late[0].frame} is past the end of the video "
                            f"({last + 1} frames)")
