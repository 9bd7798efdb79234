"""What the web app must compute, and which stored masks are still current.

Each object has one or more *keyframes*: boxes the user drew on some frames. The object's mask on
frame ``t`` comes from exactly one of them (its *owner*):

- on and after its first keyframe, the last keyframe at or before ``t``, propagated forward;
- before its first keyframe, the first keyframe, propagated backward (a session over the reversed
  frames ``k, k-1, ..., 0``).

So a correction (a new box on a later frame) replaces the object's masks from that frame on and
keeps the earlier ones. A stored mask records which keyframe made it and in which direction (its
*tag*); it is current when that is its frame's owner now, so editing a box invalidates exactly the
frames that box owns, and nothing is ever recomputed twice.

Work is grouped into sessions by start frame and direction: every stale forward stretch that starts
on frame ``k`` runs in one session over frames ``k ..`` (each object leaves the session where its
stretch ends), every stale backward stretch from ``k`` in one session over ``k, k-1, ..., 0``.
Objects in one session share the frame's encoding and are merged by the model's soft aggregation;
masks from different sessions are merged per frame by :meth:`Plan.paint_order`: the object whose
keyframe is later is painted last and wins where two masks overlap.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from qmra.data.boxes import Box
from qmra.data.object_ids import MAX_OBJECT_ID, check_object_id
from qmra.errors import QmraError
from qmra.inference.prompts import mask_digest

FORWARD, BACKWARD = "forward", "backward"
NONE = -1  # no mask stored


@dataclass(frozen=True)
class Keyframe:
    """A box the user drew: object ``object_id`` on frame ``frame``. ``uid`` is never reused, so a
    box drawn again (even the same one) is a new keyframe and its old masks are no longer current.
    ``mask``: the H×W bool mask the user loaded for it (``box`` is then its tight box), or None."""

    uid: int
    object_id: int
    frame: int
    box: Box
    mask: np.ndarray | None = field(default=None, compare=False, repr=False)

    def tag(self, direction: str) -> int:
        return 2 * self.uid + (direction == BACKWARD)


@dataclass(frozen=True)
class Member:
    """One object's part in a :class:`Task`: it starts with ``box`` (and its ``mask``, where one was
    loaded) on the task's first frame and its masks are written for the frames in ``frames``
    (positions in the task's frame list)."""

    object_id: int
    box: Box
    tag: int
    frames: range  # positions in Task.frames whose masks this member writes
    mask: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Task:
    """One session: the frames in order (``frames[0]`` is the start frame) and the objects in it."""

    direction: str
    start: int
    frames: list[int]
    members: list[Member]

    @property
    def key(self) -> tuple:
        """What the session's first frame sees: the adapted network can be reused for the same key."""
        return (self.start, tuple(sorted((m.object_id, m.box.as_tuple(), mask_digest(m.mask)) for m in self.members)))


@dataclass
class Plan:
    """Keyframes of every object and the tag of each stored mask (objects × frames, small ints)."""

    num_frames: int
    keyframes: dict[int, list[Keyframe]] = field(default_factory=dict)
    made_by: dict[int, np.ndarray] = field(default_factory=dict)
    _uids: itertools.count = field(default_factory=lambda: itertools.count(1))

    # ------------------------------------------------------------------ editing

    @property
    def object_ids(self) -> list[int]:
        return sorted(self.keyframes)

    def set_box(self, object_id: int, frame: int, box: Box, mask: np.ndarray | None = None) -> Keyframe:
        """Object ``object_id``'s box (and mask, where one was loaded) on ``frame``, replacing what it had there."""
        self._check(object_id, frame)
        keyframe = Keyframe(next(self._uids), object_id, frame, box, mask)
        kept = [k for k in self.keyframes.get(object_id, []) if k.frame != frame]
        self.keyframes[object_id] = sorted(kept + [keyframe], key=lambda k: k.frame)
        self.made_by.setdefault(object_id, np.full(self.num_frames, NONE, np.int64))
        return keyframe

    def remove_box(self, object_id: int, frame: int) -> None:
        """Remove an object's box on one frame; its last box removes the object."""
        boxes = self.keyframes.get(object_id, [])
        kept = [k for k in boxes if k.frame != frame]
        if len(kept) == len(boxes):
            raise QmraError(f"object {object_id} has no box on frame {frame}")
        if kept:
            self.keyframes[object_id] = kept
        else:
            self.remove_object(object_id)

    def remove_object(self, object_id: int) -> None:
        if object_id not in self.keyframes:
            raise QmraError(f"unknown object {object_id} (known: {', '.join(map(str, self.object_ids)) or 'none'})")
        del self.keyframes[object_id]
        del self.made_by[object_id]

    def resize(self, num_frames: int) -> None:
        """The video turned out to have ``num_frames`` frames (a video's header may promise others);
        boxes on frames past the end are dropped."""
        if num_frames == self.num_frames:
            return
        for object_id in self.object_ids:
            old = self.made_by[object_id]
            new = np.full(num_frames, NONE, np.int64)
            new[: min(num_frames, old.size)] = old[:num_frames]
            self.made_by[object_id] = new
            kept = [k for k in self.keyframes[object_id] if k.frame < num_frames]
            if kept:
                self.keyframes[object_id] = kept
            else:
                self.remove_object(object_id)
        self.num_frames = num_frames

    def next_object_id(self) -> int:
        free = [i for i in range(1, MAX_OBJECT_ID + 1) if i not in self.keyframes]
        if not free:
            raise QmraError(f"at most {MAX_OBJECT_ID} objects")
        return free[0]

    def _check(self, object_id: object, frame: object) -> None:
        check_object_id(object_id)
        if isinstance(frame, bool) or not isinstance(frame, int) or not 0 <= frame < self.num_frames:
            raise QmraError(f"frame must be an integer 0..{self.num_frames - 1}, got {frame!r}")

    # ------------------------------------------------------------------ ownership

    def owner_tags(self, object_id: int) -> np.ndarray:
        """For each frame, the tag a current mask of ``object_id`` must carry."""
        tags = np.full(self.num_frames, NONE, np.int64)
        boxes = self.keyframes.get(object_id, [])
        if not boxes:
            return tags
        tags[: boxes[0].frame] = boxes[0].tag(BACKWARD)
        for keyframe, following in zip(boxes, boxes[1:] + [None]):
            tags[keyframe.frame : self.num_frames if following is None else following.frame] = keyframe.tag(FORWARD)
        return tags

    def owner_frames(self, object_id: int) -> np.ndarray:
        """For each frame, the frame of the keyframe that owns it (for the paint order)."""
        frames = np.zeros(self.num_frames, np.int64)
        boxes = self.keyframes.get(object_id, [])
        if boxes:
            frames[: boxes[0].frame] = boxes[0].frame
            for keyframe, following in zip(boxes, boxes[1:] + [None]):
                frames[keyframe.frame : self.num_frames if following is None else following.frame] = keyframe.frame
        return frames

    def current(self, object_id: int) -> np.ndarray:
        """Frames (bool per frame) where the stored mask of ``object_id`` is current."""
        return self.made_by[object_id] == self.owner_tags(object_id)

    def current_objects(self, frame: int) -> list[int]:
        """Objects with a current mask on ``frame``, in paint order (later keyframe last; then by id)."""
        ids = [i for i in self.object_ids
               if self.made_by[i][frame] != NONE and self.made_by[i][frame] == self.owner_tags(i)[frame]]
        return sorted(ids, key=lambda i: (int(self.owner_frames(i)[frame]), i))

    def paint_order(self, frame: int) -> list[int]:
        return self.current_objects(frame)

    def record(self, object_id: int, frame: int, tag: int) -> None:
        """A mask with ``tag`` was stored for ``object_id`` on ``frame``."""
        if object_id in self.made_by:
            self.made_by[object_id][frame] = tag

    def done_frames(self) -> np.ndarray:
        """Frames (bool) where every object's mask is current."""
        done = np.ones(self.num_frames, bool)
        for object_id in self.object_ids:
            done &= self.current(object_id)
        return done if self.keyframes else np.zeros(self.num_frames, bool)

    def shown_frames(self) -> np.ndarray:
        """Frames (bool) where at least one object's mask is current (they have something to show)."""
        shown = np.zeros(self.num_frames, bool)
        for object_id in self.object_ids:
            shown |= self.current(object_id)
        return shown

    # ------------------------------------------------------------------ work

    def tasks(self, directions: tuple[str, ...] = (FORWARD, BACKWARD), start: int | None = None) -> list[Task]:
        """The sessions that bring every stale mask up to date in ``directions`` (forward sessions
        first, each direction by start frame). ``start``: only stretches that start there."""
        stretches: dict[tuple[str, int], list[tuple[Keyframe, int]]] = {}
        for object_id in self.object_ids:
            boxes = self.keyframes[object_id]
            current = self.current(object_id)
            if FORWARD in directions:
                for keyframe, following in zip(boxes, boxes[1:] + [None]):
                    end = self.num_frames if following is None else following.frame
                    if not current[keyframe.frame : end].all():
                        stretches.setdefault((FORWARD, keyframe.frame), []).append((keyframe, end))
            first = boxes[0]
            if BACKWARD in directions and first.frame > 0 and not current[: first.frame].all():
                stretches.setdefault((BACKWARD, first.frame), []).append((first, 0))
        tasks = []
        for (direction, frame), entries in sorted(stretches.items(), key=lambda item: (item[0][0] != FORWARD, item[0][1])):
            if start is not None and frame != start:
                continue
            if direction == FORWARD:
                last = max(end for _, end in entries)
                frames = list(range(frame, last))
                members = [Member(k.object_id, k.box, k.tag(FORWARD), range(0, end - frame), k.mask) for k, end in entries]
            else:
                frames = list(range(frame, -1, -1))
                members = [Member(k.object_id, k.box, k.tag(BACKWARD), range(1, frame + 1), k.mask) for k, _ in entries]
            tasks.append(Task(direction, frame, frames, sorted(members, key=lambda m: m.object_id)))
        return tasks
