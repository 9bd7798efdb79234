"""Exporting results as datasets: a run's masks with its frames, as COCO instance segmentation,
YouTube-VIS or DAVIS."""

from qmra.data.coco_videos import ANNOTATIONS, IMAGES
from qmra.export.coco import CocoDocument
from qmra.export.davis import DavisDocument
from qmra.export.dataset import FORMATS, IMAGE_FORMATS, check_destination, export_videos
from qmra.export.results import find_results, masked_frames
from qmra.export.youtube_vis import YouTubeVisDocument

__all__ = ["ANNOTATIONS", "CocoDocument", "DavisDocument", "FORMATS", "IMAGES", "IMAGE_FORMATS", "YouTubeVisDocument",
           "check_destination", "export_videos", "find_results", "masked_frames"]
