"""Reading and writing label maps: DAVIS 2016 greyscale, DAVIS 2017 / YouTube-VOS palette PNGs, per-object PNGs."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Iterable, Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from qmra.data.atomic import write_bytes_atomic
from qmra.data.orientation import upright_image
from qmra.data.palette import DAVIS_PALETTE
from qmra.errors import DataError

#: ``binary``: greyscale 0/255, one object (DAVIS 2016); ``palette``: ids 0..254 (DAVIS 2017,
#: YouTube-VOS); ``auto``: by the PNG's mode.
MaskLayout = Literal["binary", "palette", "auto"]


def open_image(path: Path) -> Image.Image:
    """Open an image fully (so corrupt data fails here), with a :class:`DataError` naming the file."""
    try:
        image = Image.open(path)
        image.load()
        return image
    except FileNotFoundError:
        raise DataError(f"file not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(f"cannot read image {path}: {error}") from None


def read_rgb(path: Path, upright: bool = False, grey_range: tuple[float, float] | None = None) -> np.ndarray:
    """H×W×3 uint8 (a writable array). ``upright``: turned by the file's EXIF orientation, as it is
    shown (video frames); without, as stored (a training image, whose mask is stored the same way).
    ``grey_range``: the 16-bit greyscale values mapped to 0..255 (default: all 16 bits)."""
    image = open_image(path)
    if upright:
        image = upright_image(image)
    return image_to_rgb(image, grey_range)


def percentile_range(image: Image.Image) -> tuple[float, float]:
    """The 0.1st and 99.9th percentiles of an image's values, at least 1 apart: the 16-bit values a
    video's 8 bits span when nothing says otherwise (a 12-bit camera fills only 0..4095)."""
    low, high = (float(v) for v in np.percentile(np.asarray(image), (0.1, 99.9)))
    return low, max(high, low + 1)


def is_wide_grey(image: Image.Image) -> bool:
    """Whether an opened image is 16-bit greyscale (``I;16``, ``I;16B``, or ``I`` as older Pillows open it)."""
    return image.mode.startswith("I;16") or image.mode == "I"


def image_to_rgb(image: Image.Image, grey_range: tuple[float, float] | None = None) -> np.ndarray:
    """An opened image as H×W×3 uint8. 16-bit greyscale (:func:`is_wide_grey`) is scaled to 8 bits,
    ``grey_range`` (low, high) to 0..255 (None: the whole 16 bits): Pillow's own conversion clips
    it, so most such frames came out white. 48-bit RGB Pillow already reads as 8-bit. 32-bit floats
    are refused (a :class:`DataError`)."""
    if image.mode == "F":
        # Floats have no agreed range (0-1, 0-255, counts): scaling them one way would be a guess.
        raise DataError(f"{getattr(image, 'filename', '') or 'an image'} holds 32-bit floating-point pixels: save it "
                        "with 8- or 16-bit integers (in Fiji: Image > Type > 16-bit)")
    if is_wide_grey(image):
        low, high = grey_range or (0.0, 65535.0)
        scaled = (np.asarray(image).astype(np.float64) - low) * (255.0 / max(high - low, 1e-9))
        grey = np.rint(scaled.clip(0, 255)).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.array(image.convert("RGB"))


def read_labels(path: Path, layout: MaskLayout = "auto") -> np.ndarray:
    """Annotation PNG → H×W uint8 object ids (0 = background).

    ``binary`` accepts only 0 and 255 (255 → id 1); ``palette`` accepts ids 0..254 from a palette
    or greyscale PNG; anything else is a :class:`DataError` naming the file and the labels found.
    """
    image = open_image(path)
    if layout == "auto":
        layout = "palette" if image.mode == "P" else "binary"
    if image.mode not in ("P", "L", "1", "I", "I;16"):
        raise DataError(f"{path}: a mask must be a greyscale or palette PNG, not mode {image.mode}")
    values = np.asarray(image)
    if values.dtype == bool:
        values = values.astype(np.uint8) * 255
    if layout == "binary":
        foreground = values == 255
        if np.any(~foreground & (values != 0)):
            found = np.unique(values)
            raise DataError(f"{path}: a DAVIS 2016 mask holds only 0 and 255, found {_few(found[(found != 0) & (found != 255)])}")
        return foreground.astype(np.uint8)
    found = np.unique(values)
    if found.max(initial=0) > 254:
        raise DataError(f"{path}: object ids must lie in 0..254, found {_few(found[found > 254])}")
    return values.astype(np.uint8)


def _few(values: np.ndarray) -> str:
    shown = ", ".join(str(int(v)) for v in values[:5])
    return shown + (f" and {values.size - 5} more" if values.size > 5 else "")


def encode_palette_png(labels: np.ndarray) -> bytes:
    """H×W ids 0..255 → PNG bytes with the DAVIS palette."""
    labels = _check_labels(labels)
    image = Image.fromarray(labels, mode="P")
    image.putpalette(DAVIS_PALETTE.tobytes())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_palette_png(path: str | Path, labels: np.ndarray) -> None:
    """Write an H×W label map as a DAVIS palette PNG, atomically."""
    write_bytes_atomic(path, encode_palette_png(labels))


def write_binary_png(path: str | Path, mask: np.ndarray) -> None:
    """Write an H×W mask (nonzero = object) as a greyscale 0/255 PNG, atomically."""
    buffer = io.BytesIO()
    Image.fromarray((np.asarray(mask) != 0).astype(np.uint8) * 255, mode="L").save(buffer, format="PNG")
    write_bytes_atomic(path, buffer.getvalue())


def write_object_pngs(folder: str | Path, frame_name: str, labels: np.ndarray, object_ids: Iterable[int]) -> None:
    """One binary PNG per object: ``folder/<id>/<frame_name>.png``."""
    labels = _check_labels(labels)
    for object_id in object_ids:
        write_binary_png(Path(folder) / str(object_id) / f"{frame_name}.png", labels == object_id)


def _check_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"expected an H×W label map, got shape {labels.shape}")
    if labels.dtype != np.uint8:
        if labels.size and (labels.min() < 0 or labels.max() > 255):
            raise ValueError("label ids must lie in 0..255")
        labels = labels.astype(np.uint8)
    return labels
