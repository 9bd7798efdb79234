"""Why FFmpeg could not open a video file, in words a user can act on."""

from __future__ import annotations

from pathlib import Path


def unreadable(path: Path, error: Exception) -> str:
    """Why FFmpeg could not open ``path``, in words: an MP4/MOV without its index (the usual layout
    writes it last, so a copy cut short loses it), something that is no video, or FFmpeg's own text."""
    import av

    if not isinstance(error, av.error.InvalidDataError):
        return str(error)
    boxes = mp4_boxes(path)
    if boxes is None:
        return "it is not a video file (or it is damaged)"
    if b"moov" not in boxes:
        return "the file is truncated (its index, written at the end, is missing)"
    return str(error)


def mp4_boxes(path: Path) -> list[bytes] | None:
    """The top-level box types of an MP4/MOV file (None: not one), read from their headers only."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
            if len(head) < 12 or head[4:8] != b"ftyp":
                return None
            size, types, offset = path.stat().st_size, [], 0
            while offset + 8 <= size:
                handle.seek(offset)
                header = handle.read(16)
                length, kind = int.from_bytes(header[:4], "big"), header[4:8]
                if length == 1 and len(header) == 16:
                    length = int.from_bytes(header[8:16], "big")
                types.append(kind)
                if length < 8:
                    break
                offset += length
            return types
    except OSError:
        return None
