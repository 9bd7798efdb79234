"""A plain PNG of the training curves, drawn with Pillow (no plotting library needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw

from qmra.data.atomic import atomic_path

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]


def plot_curves(path: str | Path, panels: Sequence[tuple[str, dict[str, list[tuple[float, float]]]]],
                width: int = 900, panel_height: int = 300) -> Path:
    """One panel per (title, {series name: [(x, y), ...]}), stacked vertically; written atomically."""
    image = Image.new("RGB", (width, panel_height * len(panels)), "white")
    draw = ImageDraw.Draw(image)
    for row, (title, series) in enumerate(panels):
        top = row * panel_height
        left, right, upper, lower = 70, width - 20, top + 30, top + panel_height - 30
        draw.rectangle([left, upper, right, lower], outline=(0, 0, 0))
        draw.text((left, top + 8), title, fill=(0, 0, 0))
        points = [p for values in series.values() for p in values]
        if not points:
            continue
        x_min, x_max = min(p[0] for p in points), max(p[0] for p in points)
        y_min, y_max = min(p[1] for p in points), max(p[1] for p in points)
        x_span, y_span = (x_max - x_min) or 1.0, (y_max - y_min) or 1.0
        draw.text((4, upper - 4), f"{y_max:.3g}", fill=(0, 0, 0))
        draw.text((4, lower - 8), f"{y_min:.3g}", fill=(0, 0, 0))
        draw.text((left, lower + 6), f"{x_min:g}", fill=(0, 0, 0))
        draw.text((right - 40, lower + 6), f"{x_max:g}", fill=(0, 0, 0))
        for index, (name, values) in enumerate(series.items()):
            colour = COLOURS[index % len(COLOURS)]
            xy = [(left + (x - x_min) / x_span * (right - left), lower - (y - y_min) / y_span * (lower - upper)) for x, y in values]
            if len(xy) > 1:
                draw.line(xy, fill=colour, width=2)
            for x, y in xy if len(xy) <= 30 else []:
                draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
            draw.text((right - 150, upper + 6 + 14 * index), name, fill=colour)
    with atomic_path(path) as temporary:
        image.save(temporary, format="PNG")
    return Path(path)
