"""Boxes, dataset readers, training clips, synthetic videos, and video/mask I/O."""

from qmra.data.boxes import Box, box_from_mask, render_box_map
from qmra.data.clips import ClipSettings, CompositeClipDataset, SequenceFrames, StaticClipDataset, VideoClipDataset
from qmra.data.davis import DavisDataset, DavisSequence
from qmra.data.frames import ArrayFrames, FrameFolder, FrameInfo, FrameSource, VideoFile, natural_key, open_frames
from qmra.data.image_masks import CocoInstances, ImageMaskFolder, ImageMaskSet
from qmra.data.masks import read_labels, write_binary_png, write_object_pngs, write_palette_png
from qmra.data.palette import DAVIS_PALETTE
from qmra.data.rle import RleVideoWriter, decode_rle, encode_rle
from qmra.data.sequence import VideoSequence
from qmra.data.synthetic import SyntheticConfig, SyntheticVideo
from qmra.data.video_writer import Mp4Writer, draw_overlay
from qmra.data.youtube_vos import YouTubeVOSDataset, YouTubeVOSVideo

__all__ = [
    "ArrayFrames", "Box", "ClipSettings", "CocoInstances", "CompositeClipDataset", "DAVIS_PALETTE", "DavisDataset",
    "DavisSequence", "FrameFolder", "FrameInfo", "FrameSource", "ImageMaskFolder", "ImageMaskSet", "Mp4Writer",
    "RleVideoWriter", "SequenceFrames", "StaticClipDataset", "SyntheticConfig", "SyntheticVideo", "VideoClipDataset",
    "VideoFile", "VideoSequence", "YouTubeVOSDataset", "YouTubeVOSVideo", "box_from_mask", "decode_rle", "draw_overlay",
    "encode_rle", "natural_key", "open_frames", "read_labels", "render_box_map", "write_binary_png", "write_object_pngs",
    "write_palette_png",
]
