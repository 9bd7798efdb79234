"""What a folder offers to open in ``qmra ui``: its sub-folders, videos and TIFF stacks, and how many
frames it holds as a frame folder."""

from __future__ import annotations

from pathlib import Path

from qmra.data.frames import IMAGE_SUFFIXES, STACK_SUFFIXES, VIDEO_SUFFIXES, natural_key
from qmra.data.tiff_stack import is_tiff_stack

#: Entries looked at, and entries returned, in a folder's natural order.
MAX_SCANNED, MAX_LISTED = 2000, 500
#: A folder with more TIFF files than this is a folder of frames: its files are not opened to look for stacks.
MAX_STACK_PROBES = 200


def folder_listing(folder: Path) -> dict:
    """``{"dir", "entries": [{"name", "kind": "folder"|"video"|"stack"}], "frames"}`` for ``folder``;
    hidden names are left out. A TIFF file is a stack when it has several pages, else a frame."""
    paths = sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=lambda p: natural_key(p.name))
    stacks = _stacks([p for p in paths if p.suffix.lower() in STACK_SUFFIXES and p.is_file()])
    entries = []
    for path in paths[:MAX_SCANNED]:
        if path.is_dir():
            entries.append({"name": path.name, "kind": "folder"})
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            entries.append({"name": path.name, "kind": "video"})
        elif path in stacks:
            entries.append({"name": path.name, "kind": "stack"})
    frames = sum(1 for p in paths if p.suffix.lower() in IMAGE_SUFFIXES and p not in stacks)
    return {"dir": str(folder), "entries": entries[:MAX_LISTED], "frames": frames}


def _stacks(tiffs: list[Path]) -> set[Path]:
    """The multi-page TIFFs among ``tiffs`` (each file's header read), none in a folder of many frames."""
    return set() if len(tiffs) > MAX_STACK_PROBES else {p for p in tiffs if is_tiff_stack(p)}
