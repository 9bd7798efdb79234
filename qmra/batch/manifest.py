"""What ``qmra batch`` segments: one :class:`BatchItem` per video, read from a manifest.

Three forms, all read and checked before any work starts (a bad one is a :class:`QmraError` naming
the line, so the command exits with code 2):

- **JSON Lines** (``.jsonl``): one video a line, ``{"video": PATH, "boxes": [...], "id": NAME,
  "box_format": "xyxy"|"xywh", "frames": "FIRST-LAST"}``; ``id``, ``box_format`` and ``frames`` (only
  those frames, as ``qmra segment --frames``) are optional; ``"masks": PATH`` (a mask PNG or a folder
  of them, as ``qmra segment --masks``, relative to the manifest) may stand instead of ``boxes``.
- **CSV** (``.csv``): a header row naming the same columns; ``boxes`` holds the JSON text.
- **A JSON list** (``.json``) of the same objects.
- **A folder of videos** (and of multi-page TIFF stacks), each with one of these beside it:
  ``NAME.boxes.json`` (the ``--boxes`` schema), ``NAME.masks.png`` (a first-frame mask),
  ``NAME.masks.json`` (RLE masks) or ``NAME.masks/`` (masks named after frames), the last three
  read as ``qmra segment --masks``.

``boxes`` takes ``qmra segment --boxes``' schema (``[{"id": 1, "frame": 0, "box": [x0, y0, x1,
y1]}, ...]``) or plain boxes on the first frame (``[[x0, y0, x1, y1], ...]``: objects 1, 2, ...; with
``frames``, the range's first frame).
A relative ``video`` path is taken from the manifest's folder (and made absolute: workers on other
machines, or in another working folder, read it). ``id`` names the video's output
folder; without it, the video's file name without its extension. Whether a video opens, and whether
its boxes lie inside its frames, is found when it is opened: it then fails alone.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

from qmra.data.boxes import BOX_FORMATS
from qmra.data.frames import STACK_SUFFIXES, VIDEO_SUFFIXES
from qmra.data.tiff_stack import is_tiff_stack
from qmra.errors import QmraError
from qmra.inference.mask_prompts import MaskPrompts, prompts_from_masks
from qmra.inference.prompt_files import check_boxes_in_range, parse_frame_range, prompts_from_list
from qmra.inference.prompts import Prompt

#: The keys a manifest entry may have.
KEYS = ("video", "boxes", "masks", "id", "box_format", "frames")
#: Ids become folder names: letters, digits, dot, dash, underscore and spaces inside.
_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._ -]{0,199}$")
RESERVED_IDS = ("index.jsonl",)


@dataclass(frozen=True)
class BatchItem:
    """One video of a batch: its ``id`` (its output folder's name), ``video`` (a file or a frame
    folder), its ``prompts``, ``where`` it was given (for messages), and the frames to segment,
    ``first`` to ``last`` (None: to the end)."""

    id: str
    video: Path
    prompts: tuple[Prompt, ...]
    where: str
    first: int = 0
    last: int | None = None


def read_manifest(path: str | Path, box_format: str = "xyxy") -> list[BatchItem]:
    """Every video of the manifest at ``path`` (JSON Lines, CSV or a folder), in its order;
    ``box_format`` is the boxes' layout where an entry does not give its own."""
    path = Path(path)
    if path.is_dir():
        entries = _folder_entries(path)
    elif not path.is_file():
        raise QmraError(f"manifest not found: {path}")
    elif path.suffix.lower() == ".csv":
        entries = _csv_entries(path)
    elif path.suffix.lower() == ".json":
        entries = _json_list_entries(path)
    else:
        entries = _jsonl_entries(path)
    items: list[BatchItem] = []
    seen: dict[str, str] = {}
    for where, entry in entries:
        item = _item(entry, where, (path if path.is_dir() else path.parent).absolute(), box_format)
        if item.id in seen:
            raise QmraError(f"{where}: id {item.id!r} is already used by {seen[item.id]}; give each video its own \"id\"")
        seen[item.id] = where
        items.append(item)
    if not items:
        raise QmraError(f"{path}: no video in the manifest")
    return items


def _jsonl_entries(path: Path) -> Iterator[tuple[str, dict]]:
    for number, line in enumerate(_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as error:
            raise QmraError(f"{where}: not valid JSON ({error.msg} at column {error.colno})") from None
        if not isinstance(entry, dict):
            raise QmraError(f"{where}: expected a JSON object like {{\"video\": ..., \"boxes\": [...]}}")
        yield where, entry


def _json_list_entries(path: Path) -> Iterator[tuple[str, dict]]:
    """A ``.json`` file: one JSON list of the entries JSON Lines would hold, one a line."""
    try:
        document = json.loads(_text(path))
    except json.JSONDecodeError as error:
        raise QmraError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(document, list):
        raise QmraError(f"{path}: expected a JSON list of {{\"video\": ..., \"boxes\": [...]}} objects "
                        "(or JSON Lines, one object a line, in a .jsonl file)")
    for number, entry in enumerate(document, start=1):
        where = f"{path} entry {number}"
        if not isinstance(entry, dict):
            raise QmraError(f"{where}: expected a JSON object like {{\"video\": ..., \"boxes\": [...]}}")
        yield where, entry


def _csv_entries(path: Path) -> Iterator[tuple[str, dict]]:
    reader = csv.DictReader(_text(path).splitlines())
    columns = reader.fieldnames or []
    present = {"video": "video" in columns, "boxes or masks": "boxes" in columns or "masks" in columns}
    missing = [name for name, there in present.items() if not there]
    if missing:
        raise QmraError(f"{path} line 1: the header must name the columns video and boxes or masks (and optionally "
                        f"id, box_format, frames); {', '.join(missing)} missing")
    for row in reader:
        where = f"{path} line {reader.line_num}"
        entry: dict = {k: v for k, v in row.items() if k is not None and v not in (None, "")}
        if "boxes" in entry:
            try:
                entry["boxes"] = json.loads(entry["boxes"])
            except json.JSONDecodeError as error:
                raise QmraError(f"{where}: the boxes column is not valid JSON ({error.msg})") from None
        yield where, entry


def _is_video_file(path: Path) -> bool:
    """A video file, or a TIFF of several pages (one page is a picture, not a video)."""
    suffix = path.suffix.lower()
    return path.is_file() and (suffix in VIDEO_SUFFIXES or (suffix in STACK_SUFFIXES and is_tiff_stack(path)))


def _folder_entries(folder: Path) -> Iterator[tuple[str, dict]]:
    videos = sorted(p for p in folder.iterdir() if _is_video_file(p))
    if not videos:
        raise QmraError(f"{folder}: no video files ({', '.join(VIDEO_SUFFIXES)}) or multi-page TIFF stacks in the folder")
    for video in videos:
        boxes, masks = video.with_name(f"{video.stem}.boxes.json"), video.with_name(f"{video.stem}.masks")
        mask_files = [masks.with_name(f"{masks.name}{suffix}") for suffix in (".png", ".json")]
        found = [path for path in (boxes, *mask_files, masks) if path.exists()]
        if len(found) != 1:
            kinds = (f"{boxes.name} (the --boxes schema: a JSON list of {{\"id\", \"frame\", \"box\"}}), "
                     f"{mask_files[0].name} (a first-frame mask), {mask_files[1].name} (RLE masks, as --masks reads them) "
                     f"or {masks.name}/ (masks named after frames)")
            if not found:
                raise QmraError(f"{video}: nothing beside it says what to segment: give {kinds}")
            raise QmraError(f"{video}: {' and '.join(path.name for path in found)} are beside it: keep one of {kinds}")
        if found[0] != boxes:
            yield str(found[0]), {"video": video.name, "masks": found[0].name}
            continue
        try:
            document = json.loads(_text(boxes))
        except json.JSONDecodeError as error:
            raise QmraError(f"{boxes}: not valid JSON ({error.msg} at line {error.lineno})") from None
        yield str(boxes), {"video": video.name, "boxes": document}


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise QmraError(f"cannot read {path}: {error}") from None


def _item(entry: dict, where: str, base: Path, box_format: str) -> BatchItem:
    unknown = sorted(set(entry) - set(KEYS))
    if unknown:
        raise QmraError(f"{where}: unknown key {unknown[0]!r} (the keys are {', '.join(KEYS)})")
    if "video" not in entry:
        raise QmraError(f"{where}: missing key 'video'")
    if ("boxes" in entry) == ("masks" in entry):
        raise QmraError(f"{where}: give either \"boxes\" or \"masks\"" + (", not both" if "boxes" in entry else ""))
    video = entry["video"]
    if not isinstance(video, str) or not video:
        raise QmraError(f"{where}: \"video\" must be a path, got {video!r}")
    layout = entry.get("box_format", box_format)
    if layout not in BOX_FORMATS:
        raise QmraError(f"{where}: \"box_format\" must be one of {', '.join(BOX_FORMATS)}, got {layout!r}")
    path = Path(video).expanduser()
    path = path if path.is_absolute() else base / path
    try:
        first, last = parse_frame_range(entry["frames"]) if "frames" in entry else (0, None)
    except ValueError as error:
        raise QmraError(f"{where}: \"frames\": {error}") from None
    masks = _masks(entry["masks"], where, base) if "masks" in entry else None
    prompts = _prompts(entry["boxes"], where, layout, first, base) if masks is None else masks.prompts
    if masks is not None and masks.on_first_frame:
        prompts = [replace(prompt, frame=first) for prompt in prompts]
    try:
        check_boxes_in_range(prompts, first, last, '"frames"')
    except QmraError as error:
        raise QmraError(f"{where}: {error}") from None
    return BatchItem(_id(entry, path, where), path, tuple(prompts), where, first, last)


def _masks(given: object, where: str, base: Path) -> MaskPrompts:
    """``"masks"``: a mask PNG or a folder of them (``qmra segment --masks``), relative to the manifest."""
    if not isinstance(given, str) or not given:
        raise QmraError(f"{where}: \"masks\" must be a path, got {given!r}")
    path = Path(given).expanduser()
    try:
        return prompts_from_masks(path if path.is_absolute() else base / path)
    except QmraError as error:
        raise QmraError(f"{where}: {error}") from None


def _prompts(boxes: object, where: str, box_format: str, first: int = 0, base: Path | None = None) -> list[Prompt]:
    """The ``--boxes`` schema, or plain boxes (four numbers each) for objects 1, 2, ... on frame
    ``first`` (where the video's run begins)."""
    if isinstance(boxes, list) and boxes and all(not isinstance(b, dict) for b in boxes):
        boxes = [{"id": number, "frame": first, "box": box} for number, box in enumerate(boxes, start=1)]
    return prompts_from_list(boxes, f"{where}: boxes", box_format, base)


def _id(entry: dict, video: Path, where: str) -> str:
    given = "id" in entry
    name = entry["id"] if given else (video.stem if video.suffix.lower() in VIDEO_SUFFIXES + STACK_SUFFIXES
                                      else video.name)
    if isinstance(name, int) and not isinstance(name, bool):
        name = str(name)
    if not isinstance(name, str) or not _ID.match(name) or name in RESERVED_IDS or name.endswith((" ", ".")):
        said = f"\"id\" {name!r}" if given else f"the video's name {name!r}"
        advice = "use letters, digits, '.', '-', '_'" + ("" if given else " in an \"id\" for it")
        raise QmraError(f"{where}: {said} cannot name a folder; {advice}")
    return name
