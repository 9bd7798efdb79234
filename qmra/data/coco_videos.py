"""Videos from COCO-style video annotation files, as training clips are drawn from DAVIS's:

- CocoVID (``qmra train --data cocovid:DATASET``): COCO instances whose images carry ``video_id``
  and ``frame_id``, and whose annotations carry ``instance_id`` (one per object, the same on every
  frame), as ``qmra export`` writes them and mmtracking and TAO read them: one's own segmented videos;
- YouTube-VIS (``--data youtube-vis:...``): the video instance segmentation challenges' layout
  (YouTube-VIS 2019/2021, OVIS; ``qmra export --format youtube-vis``): each video lists its
  ``file_names``, each annotation follows one object through them (``segmentations``, null where
  it is absent).

A video's frames are the images listed for it, in frame order (an export made with ``--every 10``
lists every tenth frame: consecutive frames of the sequence are then ten frames apart); each listed
image is annotated, objects without a mask on it being absent there.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from qmra.data.image_masks import is_youtube_vis, segmentation_mask
from qmra.data.masks import read_rgb, write_palette_png
from qmra.data.object_ids import MAX_OBJECT_ID
from qmra.errors import DataError

#: What ``qmra export`` writes in a dataset folder: the annotation file and the images' folder.
ANNOTATIONS = "annotations.json"
IMAGES = "images"


def dataset_paths(path: str | Path, images: str | Path | None = None) -> tuple[Path, Path]:
    """The annotation file and image folder of a COCO dataset given as its annotation file and
    ``images`` folder, or as one folder holding ``annotations.json`` and ``images/`` (an export's)."""
    path = Path(path)
    if images is not None:
        return path, Path(images)
    if path.is_dir():
        return path / ANNOTATIONS, path / IMAGES
    raise DataError(f"{path} is not a folder: give a dataset folder (annotations.json and images/, as qmra export "
                    "writes), or ANNOTATIONS.json:IMAGE_FOLDER")


@dataclass(frozen=True)
class _Frame:
    file_name: str
    height: int
    width: int
    objects: tuple[tuple[int, object], ...]  # (object id in its video, COCO segmentation)


class CocoVideo:
    """One video of a CocoVID or YouTube-VIS file (a :class:`qmra.data.sequence.VideoSequence`):
    frames read on demand from ``images_dir``, label maps decoded from the annotations' masks.
    ``name``: a folder name (:func:`folder_names`)."""

    kind = "video"  # how errors name it

    def __init__(self, name: str, images_dir: Path, frames: list[_Frame]) -> None:
        self.name = name
        self.images_dir = images_dir
        self._frames = frames

    @property
    def num_frames(self) -> int:
        return len(self._frames)

    @property
    def frame_names(self) -> list[str]:
        return [Path(frame.file_name).stem for frame in self._frames]

    @cached_property
    def object_ids(self) -> list[int]:
        return sorted({object_id for frame in self._frames for object_id, _ in frame.objects})

    @property
    def annotated_indices(self) -> list[int]:
        return list(range(len(self._frames)))

    def image(self, index: int) -> np.ndarray:
        frame = self._frames[index]
        image = read_rgb(self.images_dir / frame.file_name)
        if image.shape[:2] != (frame.height, frame.width):
            raise DataError(f"{self.kind} {self.name}: image {frame.file_name} is {image.shape[1]}x{image.shape[0]}, "
                            f"the annotations say {frame.width}x{frame.height}")
        return image

    def write_davis(self, root: str | Path, resolution: str = "480p") -> Path:
        """Write the video in DAVIS's layout (``root/JPEGImages/<res>/<name>/`` with the images as they
        are, palette ``Annotations``), as ``qmra eval`` and validation read it; returns the frame folder."""
        frames = Path(root) / "JPEGImages" / resolution / self.name
        masks = Path(root) / "Annotations" / resolution / self.name
        frames.mkdir(parents=True, exist_ok=True)
        masks.mkdir(parents=True, exist_ok=True)
        for index, (frame, name) in enumerate(zip(self._frames, self.frame_names)):
            shutil.copyfile(self.images_dir / frame.file_name, frames / f"{name}{Path(frame.file_name).suffix}")
            write_palette_png(masks / f"{name}.png", self.labels(index))
        return frames

    def labels(self, index: int) -> np.ndarray:
        """H×W uint8 object ids (later annotations over earlier ones where masks overlap)."""
        frame = self._frames[index]
        labels = np.zeros((frame.height, frame.width), np.uint8)
        for object_id, segmentation in frame.objects:
            mask = segmentation_mask(segmentation, frame.height, frame.width)
            if mask.shape != labels.shape:
                raise DataError(f"{self.kind} {self.name}: a mask of {frame.file_name} is {mask.shape[1]}x{mask.shape[0]}, "
                                f"the image {frame.width}x{frame.height}")
            labels[mask] = object_id
        return labels


def folder_names(names: list[str]) -> list[str]:
    """Video names as folder names, each its own: characters other than letters, digits, ``.``, ``-``
    and ``_`` become ``_`` (TAO's names hold slashes), a repeat gets its position appended."""
    folders: list[str] = []
    for position, name in enumerate(names, start=1):
        folder = re.sub(r"[^\w.-]+", "_", name).strip("._") or "video"
        folders.append(folder if folder not in folders else f"{folder}-{position}")
    return folders


def _existing(annotations: str | Path, images: str | Path, layout: str) -> tuple[Path, Path]:
    """The annotation file and the image folder, or a clear error naming the one that is missing."""
    annotations_path, images_dir = Path(annotations), Path(images)
    if not annotations_path.is_file():
        raise DataError(f"{layout} annotation file not found: {annotations_path}")
    if not images_dir.is_dir():
        raise DataError(f"{layout} image folder not found: {images_dir}")
    return annotations_path, images_dir


def coco_videos(annotations: str | Path, images: str | Path) -> list[CocoVideo]:
    """The videos of a CocoVID annotation file, their images under ``images`` (each video's objects
    numbered 1, 2, ... by ``instance_id``); refused with a clear error where the file has no videos."""
    annotations_path, images_dir = _existing(annotations, images, "COCO")
    try:
        document = json.loads(annotations_path.read_text())
        if is_youtube_vis(document):
            raise DataError(f"{annotations_path} is a YouTube-VIS file (its videos list their file_names): "
                            "read it as youtube-vis:")
        names = {int(v["id"]): str(v.get("name") or f"video-{v['id']}") for v in document.get("videos", [])}
        listed = document["images"]
        if not listed or any("video_id" not in i or "frame_id" not in i for i in listed):
            raise DataError(f"{annotations_path}: not a video dataset (its images lack video_id and frame_id, as qmra "
                            "export writes them); coco: draws still-image clips from it")
        by_image: dict[int, list[tuple[int, object]]] = defaultdict(list)
        for annotation in document["annotations"]:
            if not annotation.get("iscrowd", 0):
                by_image[int(annotation["image_id"])].append((int(annotation["instance_id"]), annotation["segmentation"]))
        by_video: dict[int, list[tuple[int, dict]]] = defaultdict(list)
        for image in listed:
            by_video[int(image["video_id"])].append((int(image["frame_id"]), image))
    except (json.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as error:
        raise DataError(f"cannot read COCO video annotations {annotations_path}: {error!r}") from None
    ordered = sorted(by_video.items())
    folders = folder_names([names.get(video_id, f"video-{video_id}") for video_id, _ in ordered])
    videos = [_video(folder, images_dir, sorted(frames, key=lambda item: item[0]), by_image)
              for folder, (_, frames) in zip(folders, ordered)]
    if not any(video.object_ids for video in videos):
        raise DataError(f"no usable instance annotations in {annotations_path}")
    return videos


def _video(name: str, images_dir: Path, frames: list[tuple[int, dict]],
           by_image: dict[int, list[tuple[int, object]]]) -> CocoVideo:
    """A :class:`CocoVideo` from its images (in frame order) and the annotations by image id, its
    instances numbered 1, 2, ... in order of their ``instance_id``."""
    instances = sorted({instance for _, image in frames for instance, _ in by_image.get(int(image["id"]), [])})
    if len(instances) > MAX_OBJECT_ID:
        raise DataError(f"video {name}: {len(instances)} objects, more than the {MAX_OBJECT_ID} a label map holds")
    number = {instance: index for index, instance in enumerate(instances, start=1)}
    return CocoVideo(name, images_dir, [
        _Frame(str(image["file_name"]), int(image["height"]), int(image["width"]),
               tuple((number[instance], segmentation) for instance, segmentation in by_image.get(int(image["id"]), [])))
        for _, image in frames])


def youtube_vis_videos(annotations: str | Path, images: str | Path) -> list[CocoVideo]:
    """The videos of a YouTube-VIS annotation file, their ``file_names`` under ``images`` (each
    video's objects numbered 1, 2, ... in the order of their annotations)."""
    annotations_path, images_dir = _existing(annotations, images, "YouTube-VIS")
    try:
        document = json.loads(annotations_path.read_text())
        if not is_youtube_vis(document) and isinstance(document, dict) and "images" in document:
            raise DataError(f"{annotations_path} is a COCO file (images and their annotations), not YouTube-VIS: "
                            "read it as cocovid: (video clips) or coco: (still-image clips)")
        tracks: dict[int, list[list]] = defaultdict(list)
        for annotation in document["annotations"]:
            if not annotation.get("iscrowd", 0):
                tracks[int(annotation["video_id"])].append(list(annotation["segmentations"]))
        listed = document["videos"]
        folders = folder_names([str(v.get("name") or Path(str(v["file_names"][0])).parent.name or f"video-{v['id']}")
                                for v in listed])
        videos = [_vis_video(folder, video, tracks.get(int(video["id"]), []), images_dir)
                  for folder, video in zip(folders, listed)]
    except (json.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as error:
        raise DataError(f"cannot read YouTube-VIS annotations {annotations_path}: {error!r}") from None
    if not any(video.object_ids for video in videos):
        raise DataError(f"no usable instance annotations in {annotations_path}")
    return videos


def _vis_video(name: str, video: dict, tracks: list[list], images_dir: Path) -> CocoVideo:
    """A :class:`CocoVideo` named ``name`` from a YouTube-VIS ``video`` entry and its objects' per-frame masks."""
    file_names = [str(name) for name in video["file_names"]]
    if len(tracks) > MAX_OBJECT_ID:
        raise DataError(f"video {video['id']}: {len(tracks)} objects, more than the {MAX_OBJECT_ID} a label map holds")
    if any(len(track) != len(file_names) for track in tracks):
        raise DataError(f"video {video['id']}: an annotation's segmentations do not match its {len(file_names)} frames")
    height, width = int(video["height"]), int(video["width"])
    return CocoVideo(name, images_dir, [
        _Frame(file_name, height, width,
               tuple((number, track[index]) for number, track in enumerate(tracks, start=1) if track[index] is not None))
        for index, file_name in enumerate(file_names)])
