"""The frames of a video file from frame ``first`` on, reached by reading packets, not decoding them.

Decoding a video from its start to frame 50,000 takes minutes (about 660 frames/s for 854×480
H.264 on a 2-core CPU, fewer at 1080p); reading its packets without decoding them takes seconds
(about 11,000 a second). In a file whose groups of pictures are closed, frame ``first`` can be
decoded from the last keyframe before it, and that keyframe's place in display order is the number
of packets before it. :func:`frames_from_keyframe` finds it in one pass over the packets, decodes
from there, and checks every frame it decodes against the timestamps of the packets it came from.

Where a file does not allow it (timestamps missing, packets to discard, pictures decoded after a
keyframe but shown before it, a file that does not start on a keyframe, frames that do not come one
per packet), it raises :class:`NoShortcut`: before the first frame it gives out for what it can see
up to there, later for a packet it cannot vouch for. The caller then decodes from the start
(:meth:`qmra.data.frames.VideoFile.frames_from`): a frame's index is always the one decoding from the
start gives it.
"""

from __future__ import annotations

import heapq
from pathlib import Path
from typing import Iterator


class NoShortcut(Exception):
    """This file cannot be entered at a keyframe with the frame numbers decoding from its start gives."""


class PacketCount:
    """Whole packets of the video stream read so far (to compare with the header's frame count)."""

    def __init__(self) -> None:
        self.packets = 0


def frames_from_keyframe(path: Path, first: int, seen: PacketCount) -> Iterator:
    """Decoded PyAV frames ``first``, ``first + 1``, ... of the video at ``path`` (first video
    stream), decoded from the last keyframe at or before frame ``first``; :class:`NoShortcut` where
    the file does not allow it. ``seen`` counts the file's packets."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"
        packets = container.demux(stream)
        group, index = _group_before(packets, first, seen)  # the packets from the keyframe on, its index
        if not group[0].size:
            raise NoShortcut("no packets")
        # The timestamps of the packets fed to the decoder and not yet out as frames: frames come out
        # in display order, so each must carry the smallest of them.
        pending = [p.pts for p in group if p.size]
        heapq.heapify(pending)
        for frame in _decoded(group, packets, pending, seen):
            if not pending or heapq.heappop(pending) != frame.pts:
                raise NoShortcut(f"frame {index} is not the one its packets say")
            if index >= first:
                yield frame
            index += 1


def _decoded(group: list, packets: Iterator, pending: list, seen: PacketCount) -> Iterator:
    """The decoder's frames from ``group``'s packets, then from the rest of ``packets``, each later
    packet's timestamp added to ``pending`` before it is decoded."""
    for packet in group:
        yield from packet.decode()
    for packet in packets:
        if packet.size:
            if packet.pts is None or packet.is_discard or packet.is_corrupt:
                raise NoShortcut("a packet without a timestamp, one to discard or one cut short")
            seen.packets += 1
            heapq.heappush(pending, packet.pts)
        yield from packet.decode()  # the demuxer's last, empty packet drains the decoder


def _group_before(packets: Iterator, first: int, seen: PacketCount) -> tuple[list, int]:
    """Read packets until the keyframe after frame ``first`` (or the end): the packets to decode, from
    the last keyframe at or before frame ``first`` to that next keyframe (or the demuxer's last, empty
    packet, which drains the decoder), and the frame index of the keyframe they start with."""
    group: list = []
    start = 0
    latest_before = None  # the highest timestamp of the packets before the group
    for packet in packets:
        if not packet.size:
            if group:
                _check_closed(group, latest_before)
            return group + [packet], start
        if packet.pts is None or packet.is_discard or packet.is_corrupt:
            raise NoShortcut("a packet without a timestamp, one to discard or one cut short")
        if packet.is_keyframe and seen.packets > first and group:
            _check_closed(group, latest_before)
            seen.packets += 1
            return group + [packet], start
        if packet.is_keyframe:
            if group:
                top = max(p.pts for p in group)
                latest_before = top if latest_before is None else max(latest_before, top)
            group, start = [packet], seen.packets
        elif not group:
            raise NoShortcut("the file does not start on a keyframe")
        else:
            group.append(packet)
        seen.packets += 1
    raise NoShortcut("the file ended without the demuxer's last packet")


def _check_closed(group: list, latest_before: int | None) -> None:
    """The group's keyframe is shown after every packet before it and before every packet after it."""
    keyframe = group[0].pts
    if (latest_before is not None and latest_before >= keyframe) or any(p.pts < keyframe for p in group[1:]):
        raise NoShortcut("pictures shown on the other side of the keyframe they are decoded after")
