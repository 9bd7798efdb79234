"""Boxes as users give them (``--box`` texts, a ``--boxes`` JSON file, a batch manifest's list; masks
among them) →
:class:`Prompt` objects, with errors that name where a bad box came from; and the range of frames
they are given for (``--frames``, a manifest's ``"frames"``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from qmra.data.boxes import Box, box_from_mask
from qmra.data.object_ids import check_object_id
from qmra.errors import BoxError, QmraError
from qmra.inference.mask_prompts import mask_labels
from qmra.inference.prompts import Prompt, check_on_grid


def parse_prompts(boxes: list[str] | None, boxes_file: str | None, box_format: str = "xyxy") -> list[Prompt]:
    """``--box`` texts (objects 1, 2, ... on frame 0) or a ``--boxes`` JSON file → prompts; four
    numbers per box in ``box_format`` (xyxy or xywh)."""
    if boxes:
        return [_prompt(index, 0, text, box_format, f"--box {text}") for index, text in enumerate(boxes, start=1)]
    path = Path(boxes_file or "")
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise QmraError(f"boxes file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as error:
        raise QmraError(f"cannot read boxes file {path}: {error}") from None
    return prompts_from_list(document, str(path), box_format, path.parent)


def prompts_from_list(document: object, where: str, box_format: str = "xyxy", base: Path | None = None) -> list[Prompt]:
    """The ``--boxes`` schema (a JSON list of ``{"id", "frame", "box"}``, frame 0 when absent; or
    ``"mask": PATH`` instead of ``"box"``: a mask PNG, relative to ``base``, :func:`_mask_prompt`) →
    prompts; errors name ``where`` the list came from and the entry. An object may have boxes on
    several frames: from each one on, it restarts from that box (a correction)."""
    if not isinstance(document, list) or not document:
        raise QmraError(f"{where}: expected a non-empty JSON list of {{\"id\", \"frame\", \"box\"}} objects")
    prompts: list[Prompt] = []
    for number, entry in enumerate(document, start=1):
        place = f"{where} entry {number}"
        if not isinstance(entry, dict) or "id" not in entry or ("box" in entry) == ("mask" in entry):
            raise QmraError(f"{place}: expected an object with \"id\", a \"box\" or a \"mask\" (not both), and "
                            "optionally \"frame\"")
        if "mask" in entry:
            prompt = _mask_prompt(entry["id"], entry.get("frame", 0), entry["mask"], base, place)
        else:
            prompt = _prompt(entry["id"], entry.get("frame", 0), entry["box"], box_format, place)
        if any(p.object_id == prompt.object_id and p.frame == prompt.frame for p in prompts):
            raise QmraError(f"{place}: object id {prompt.object_id} is given twice on frame {prompt.frame} "
                            "(one box per object and frame; a box on a later frame corrects it there)")
        prompts.append(prompt)
    return prompts


class CornersOutOfOrder(BoxError):
    """A box whose corners are out of order (x1 <= x0 or y1 <= y0): often x,y,w,h given as corners."""

    def __init__(self, message: str, values: tuple[float, ...]) -> None:
        super().__init__(message)
        self.values = values

    def hint(self, width: int, height: int) -> str:
        """The advice, where the four numbers read as x, y, width, height fit a ``width`` × ``height`` frame."""
        x, y, w, h = self.values
        if w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= width and y + h <= height:
            return "; if these are x,y,width,height, add --box-format xywh"
        return ""


def parse_frame_range(text: str) -> tuple[int, int | None]:
    """A range of frames, 'FIRST-LAST', 'FIRST-' (to the end) or '-LAST' (from frame 0) → (first,
    last or None): 0-based, both included. A :class:`ValueError` says what is wrong."""
    first_text, dash, last_text = str(text).strip().partition("-")
    try:
        first = int(first_text) if first_text.strip() else 0
        last = int(last_text) if last_text.strip() else None
    except ValueError:
        raise ValueError(f"expected FIRST-LAST frame numbers (e.g. 100-250, or 100- to the end), got {text!r}") from None
    if not dash or first < 0 or (last is not None and last < first):
        raise ValueError(f"expected FIRST-LAST with 0 <= FIRST <= LAST (e.g. 100-250, or 100- to the end), got {text!r}")
    return first, last


def check_boxes_in_range(prompts: list[Prompt], first: int, last: int | None, option: str) -> None:
    """Every box on a frame up to ``last`` (a box before ``first`` is followed from its frame); else a
    :class:`QmraError` naming the ``option`` that gave the range."""
    beyond = [p for p in prompts if last is not None and p.frame > last]
    if beyond:
        raise QmraError(f"object {beyond[0].object_id} is boxed on frame {beyond[0].frame}, after {option} {first}-{last}: "
                        "box each object on a frame of the range (or before it)")


def check_boxes_on_every(prompts: list[Prompt], first: int, every: int) -> None:
    """Every box on a frame that ``--every`` ``every`` from frame ``first`` segments."""
    check_on_grid(prompts, first, every, f"--every {every} from frame {first}")


def _prompt(object_id: object, frame: object, box: object, box_format: str, where: str) -> Prompt:
    """One prompt, its errors prefixed with where it came from."""
    try:
        parsed = Box.parse(box, box_format) if isinstance(box, str) else Box.from_values(box, box_format)
        return Prompt(object_id, frame, parsed)  # type: ignore[arg-type]
    except QmraError as error:
        values = _four_numbers(box)
        if box_format == "xyxy" and values is not None and (values[2] <= values[0] or values[3] <= values[1]):
            raise CornersOutOfOrder(f"{where}: {error}", values) from None
        raise QmraError(f"{where}: {error}") from None


def _mask_prompt(object_id: object, frame: object, given: object, base: Path | None, where: str) -> Prompt:
    """One prompt from a mask PNG (read as ``--masks`` reads one): the pixels of ``object_id`` in it,
    or all its object pixels where it holds one object only (a binary mask); its tight box."""
    if not isinstance(given, str) or not given:
        raise QmraError(f"{where}: \"mask\" must be the path of a mask PNG, got {given!r}")
    path = Path(given).expanduser()
    path = path if path.is_absolute() or base is None else base / path
    try:
        labels = mask_labels(path)
        number = check_object_id(object_id)
        ids = [int(i) for i in np.unique(labels) if i]
        if number not in ids and len(ids) != 1:
            held = f"objects {', '.join(map(str, ids))}" if ids else "no object (every pixel is 0)"
            raise QmraError(f"{path.name} holds {held}, not object {number}")
        mask = labels == number if number in ids else labels > 0
        return Prompt(number, frame, box_from_mask(mask), mask)  # type: ignore[arg-type]
    except QmraError as error:
        raise QmraError(f"{where}: {error}") from None


def _four_numbers(box: object) -> tuple[float, ...] | None:
    parts = box.split(",") if isinstance(box, str) else box
    try:
        values = tuple(float(v) for v in parts)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    return values if len(values) == 4 else None
