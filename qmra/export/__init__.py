"""Exporting results as datasets: a run's masks with its frames, as COCO instance segmentation."""

from qmra.export.coco import CocoDocument
from qmra.export.dataset import ANNOTATIONS, IMAGE_FORMATS, IMAGES, check_destination, export_videos
from qmra.export.results import find_results, masked_frames

__all__ = ["ANNOTATIONS", "CocoDocument", "IMAGES", "IMAGE_FORMATS", "check_destination", "export_videos",
           "find_results", "masked_frames"]
