"""Image–mask pairs for the paper's static pretraining: saliency folders (DUTS, HKU-IS, MSRA, ECSSD)
and COCO instance annotations. Images are read on demand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
from PIL import Image, ImageDraw

from qmra.data.frames import IMAGE_SUFFIXES, list_files
from qmra.data.masks import open_image, read_rgb
from qmra.data.rle import decode_rle
from qmra.errors import DataError


class ImageMaskSet(Protocol):
    """Indexable pairs: ``pair(i)`` → (H×W×3 uint8 image, H×W bool object mask)."""

    def __len__(self) -> int: ...

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]: ...


#: (image folder, mask folder) names tried under a root, as the common saliency sets ship them.
FOLDER_PAIRS = (("images", "masks"), ("Imgs", "GT"), ("imgs", "gt"), ("image", "mask"), ("img", "gt"), ("Image", "Mask"),
                ("JPEGImages", "SegmentationObject"))


def find_image_mask_folders(root: Path) -> tuple[Path, Path]:
    """Locate the image and mask folders of a saliency set (also ``DUTS-TR-Image``/``DUTS-TR-Mask``)."""
    for images, masks in FOLDER_PAIRS:
        if (root / images).is_dir() and (root / masks).is_dir():
            return root / images, root / masks
    children = [p for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
    image_dirs = [p for p in children if p.name.lower().endswith("image")]
    for image_dir in image_dirs:
        mask_dir = root / (image_dir.name[: -len("image")] + ("Mask" if image_dir.name.endswith("Image") else "mask"))
        if mask_dir.is_dir():
            return image_dir, mask_dir
    raise DataError(f"no image and mask folders in {root} (looked for {', '.join('/'.join(p) for p in FOLDER_PAIRS)}, "
                    "and XXX-Image/XXX-Mask)")


class ImageMaskFolder:
    """Images and masks matched by file stem. Masks are binarised at half their maximum value
    (saliency ground truth is often anti-aliased greyscale)."""

    def __init__(self, root: str | Path | None = None, images: str | Path | None = None, masks: str | Path | None = None) -> None:
        if images is None or masks is None:
            if root is None:
                raise DataError("give a root folder, or both an image folder and a mask folder")
            images_dir, masks_dir = find_image_mask_folders(Path(root))
        else:
            images_dir, masks_dir = Path(images), Path(masks)
        for folder in (images_dir, masks_dir):
            if not folder.is_dir():
                raise DataError(f"folder not found: {folder}")
        image_paths = list_files(images_dir, IMAGE_SUFFIXES)
        mask_paths = {p.stem: p for p in list_files(masks_dir, IMAGE_SUFFIXES)}
        missing = [p.name for p in image_paths if p.stem not in mask_paths]
        if missing:
            raise DataError(f"{len(missing)} image(s) in {images_dir} have no mask in {masks_dir}: {', '.join(missing[:5])}")
        if not image_paths:
            raise DataError(f"no images in {images_dir}")
        self.pairs = [(p, mask_paths[p.stem]) for p in image_paths]

    def __len__(self) -> int:
        return len(self.pairs)

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image_path, mask_path = self.pairs[index]
        image = read_rgb(image_path)
        mask = np.asarray(open_image(mask_path).convert("L"))
        if mask.shape != image.shape[:2]:
            raise DataError(f"mask {mask_path.name} is {mask.shape[1]}x{mask.shape[0]}, its image is {image.shape[1]}x{image.shape[0]}")
        return image, mask > max(int(mask.max()) // 2, 0)


class CocoInstances:
    """One pair per (non-crowd) COCO instance annotation of at least ``min_area`` pixels.

    Polygons are rasterised, RLE (compressed or not) decoded; the annotation file is read once,
    images on demand.
    """

    def __init__(self, annotations: str | Path, images: str | Path, min_area: float = 400.0,
                 categories: Sequence[int] | None = None) -> None:
        annotations_path, self.images_dir = Path(annotations), Path(images)
        if not annotations_path.is_file():
            raise DataError(f"COCO annotation file not found: {annotations_path}")
        if not self.images_dir.is_dir():
            raise DataError(f"COCO image folder not found: {self.images_dir}")
        try:
            document = json.loads(annotations_path.read_text())
            if is_youtube_vis(document):
                raise DataError(f"{annotations_path} is a YouTube-VIS file (its videos list their file_names): read "
                                "it as youtube-vis:")
            images = {int(i["id"]): (i["file_name"], int(i["height"]), int(i["width"])) for i in document["images"]}
            wanted = None if categories is None else set(categories)
            self.annotations = [
                (a["segmentation"], images[int(a["image_id"])])
                for a in document["annotations"]
                if not a.get("iscrowd", 0) and a.get("area", 0) >= min_area and (wanted is None or a.get("category_id") in wanted)
            ]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise DataError(f"cannot read COCO annotations {annotations_path}: {error!r}") from None
        if not self.annotations:
            raise DataError(f"no usable instance annotations in {annotations_path}")

    def __len__(self) -> int:
        return len(self.annotations)

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        segmentation, (file_name, height, width) = self.annotations[index]
        image = read_rgb(self.images_dir / file_name)
        if image.shape[:2] != (height, width):
            raise DataError(f"COCO image {file_name} is {image.shape[1]}x{image.shape[0]}, the annotations say {width}x{height}")
        return image, segmentation_mask(segmentation, height, width)


def is_youtube_vis(document: object) -> bool:
    """Whether an annotation document is in YouTube-VIS's layout (videos that list their frames)."""
    videos = document.get("videos") if isinstance(document, dict) else None
    return bool(videos) and isinstance(videos[0], dict) and "file_names" in videos[0] and "images" not in document


def segmentation_mask(segmentation: object, height: int, width: int) -> np.ndarray:
    """A COCO ``segmentation`` (polygon list, or RLE dict) → H×W bool mask."""
    if isinstance(segmentation, dict):
        return decode_rle(segmentation).astype(bool)
    if not isinstance(segmentation, list):
        raise DataError(f"unknown COCO segmentation of type {type(segmentation).__name__}")
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for polygon in segmentation:
        if len(polygon) >= 6:
            draw.polygon([(float(polygon[i]), float(polygon[i + 1])) for i in range(0, len(polygon) - 1, 2)], fill=1)
    return np.asarray(canvas, dtype=bool)
