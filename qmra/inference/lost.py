"""Which objects a run lost, and from which frame: so that a lost object is reported, never silent."""

from __future__ import annotations

from qmra.inference.results import FrameResult


class LostObjects:
    """Follows :attr:`FrameResult.lost` frame by frame.

    An object is lost from the first frame its mask is empty until a frame where it has a mask
    again (objects that leave the view count too: masks alone cannot tell the two apart).
    """

    def __init__(self) -> None:
        self.since: dict[int, int] = {}  # object id → the frame it has been lost since
        self.frames_lost: dict[int, int] = {}  # object id → frames with an empty mask, in all

    def update(self, result: FrameResult) -> list[int]:
        """Take one frame's result; returns the ids lost on this frame that had a mask before it."""
        newly = []
        for object_id, lost in result.lost.items():
            if not lost:
                self.since.pop(object_id, None)
                continue
            self.frames_lost[object_id] = self.frames_lost.get(object_id, 0) + 1
            if object_id not in self.since:
                self.since[object_id] = result.index
                newly.append(object_id)
        return newly

    @property
    def lost_at_end(self) -> dict[int, int]:
        """Objects still lost after the last frame seen → the frame they were lost on."""
        return dict(sorted(self.since.items()))

    def summary(self, objects: int) -> str:
        """'no object lost', or 'lost 2 of 3 objects to the end: 1 from frame 40, 3 from frame 57'."""
        lost = self.lost_at_end
        if not lost:
            return "no object lost"
        listed = ", ".join(f"{object_id} from frame {frame}" for object_id, frame in lost.items())
        return f"lost {len(lost)} of {objects} object{'s' if objects != 1 else ''} to the end: {listed}"
