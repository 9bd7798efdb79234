"""COCO run-length encoding (column-major, compressed string counts) and a per-video RLE JSON writer."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qmra.data.boxes import box_from_mask
from qmra.data.growing_file import GrowingFile


def run_lengths(mask: np.ndarray) -> list[int]:
    """H×W mask → COCO counts: alternating runs of 0s and 1s in column-major order, starting with 0s."""
    flat = (np.asarray(mask) != 0).ravel(order="F").astype(np.int8)
    if flat.size == 0:
        return []
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts.insert(0, 0)
    return counts


def counts_to_string(counts: list[int]) -> str:
    """COCO's compressed counts: deltas against the count two back, 5 bits per character."""
    chars = []
    for i, count in enumerate(counts):
        x = count - counts[i - 2] if i > 2 else count
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            chars.append(chr(c + 48))
    return "".join(chars)


def string_to_counts(text: str) -> list[int]:
    counts: list[int] = []
    position = 0
    while position < len(text):
        x = 0
        k = 0
        more = True
        while more:
            if position >= len(text):
                raise ValueError("truncated RLE string")
            c = ord(text[position]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            position += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """H×W mask → ``{"size": [H, W], "counts": "<compressed>"}`` as pycocotools writes it."""
    height, width = np.asarray(mask).shape
    return {"size": [int(height), int(width)], "counts": counts_to_string(run_lengths(mask))}


def mask_entry(mask: np.ndarray) -> dict[str, Any]:
    """H×W bool mask → its COCO fields: ``size`` and ``counts`` (:func:`encode_rle`), ``area`` in pixels,
    and ``bbox`` x y w h in pixels (rounded to 0.01; absent for an empty mask)."""
    entry: dict[str, Any] = {**encode_rle(mask), "area": int(mask.sum())}
    box = box_from_mask(mask)
    if box is not None:
        entry["bbox"] = [round(float(v), 2) for v in box.to_xywh()]
    return entry


def decode_rle(rle: dict[str, Any]) -> np.ndarray:
    """``{"size": [H, W], "counts": str | list}`` → H×W uint8 mask of 0/1."""
    height, width = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, (bytes, bytearray)):
        counts = counts.decode("ascii")
    counts = string_to_counts(counts) if isinstance(counts, str) else [int(c) for c in counts]
    if sum(counts) != height * width:
        raise ValueError(f"RLE counts cover {sum(counts)} pixels, the size {height}x{width} has {height * width}")
    values = np.zeros(len(counts), dtype=np.uint8)
    values[1::2] = 1
    flat = np.repeat(values, counts)
    return flat.reshape((width, height)).T.copy()


@dataclass
class RleVideoWriter(GrowingFile):
    """Collects each frame's object masks and writes one JSON file per video, atomically, as it
    grows (:class:`GrowingFile`).

    Layout: ``{"video": name, "height": H, "width": W, "frames": [{"index": i, "name": "00000",
    "objects": {"<id>": {"size": [H, W], "counts": "...", "bbox": [x, y, w, h], "area": n}}}]}``
    (``bbox`` in pixels, x y w h as COCO; absent for an empty mask).
    """

    video: str
    height: int
    width: int
    frames: list[dict[str, Any]] = field(default_factory=list)

    def add(self, index: int, name: str, labels: np.ndarray, object_ids: list[int]) -> None:
        objects = {}
        for object_id in object_ids:
            objects[str(object_id)] = mask_entry(labels == object_id)
        self.frames.append({"index": index, "name": name, "objects": objects})

    def count(self) -> int:
        return len(self.frames)

    def text(self) -> str:
        return json.dumps({"video": self.video, "height": self.height, "width": self.width, "frames": self.frames},
                          separators=(",", ":"))
