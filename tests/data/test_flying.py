import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from qmra.data.boxes import box_from_mask
from qmra.data.clips import ClipSettings
from qmra.data.flying import CutoutFolder, FlyingObjectsClipDataset, FlyingSettings, PhotoFolder, _motion_blur, open_pack
from qmra.errors import DataError

RED, BLUE = (255, 0, 0), (0, 0, 255)
STILL = dict(occluder=0.0, distractor=0.0, clutter=0, leave=0.0, motion_blur=0.0, brightness=0.0, tps=0.0)


def _disk(path, colour, size=60, radius=25):
    yy, xx = np.mgrid[:size, :size]
    alpha = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < radius**2).astype(np.uint8) * 255
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[..., :3] = colour
    rgba[..., 3] = alpha
    Image.fromarray(rgba, "RGBA").save(path)


@pytest.fixture()
def pack(tmp_path):
    (tmp_path / "objects").mkdir()
    (tmp_path / "backgrounds").mkdir()
    _disk(tmp_path / "objects" / "red.png", RED)
    rng = np.random.default_rng(0)
    grey = rng.integers(90, 160, (120, 160, 1)).repeat(3, axis=2).astype(np.uint8)  # no red, no blue
    Image.fromarray(grey).save(tmp_path / "backgrounds" / "grey.png")
    return tmp_path


def _dataset(pack, size=(64, 64), **flying):
    objects, backgrounds = open_pack(pack)
    settings = ClipSettings(size=size, colour_jitter=0.0, min_object_pixels=20)
    return FlyingObjectsClipDataset(objects, backgrounds, 50, settings, seed=3, flying=FlyingSettings(**{**STILL, **flying}))


def test_masks_cover_the_target_and_box_maps_are_their_tight_boxes(pack):
    dataset = _dataset(pack)
    for index in range(10):
        clip = dataset[index]
        assert clip["images"].shape == (3, 3, 64, 64) and clip["masks"].shape == clip["box_maps"].shape == (3, 1, 64, 64)
        for image, mask, box_map in zip(clip["images"], clip["masks"], clip["box_maps"]):
            inside = mask[0] > 0.5
            redness = image[0] - image[1]
            assert redness[inside].mean() > 0.8  # the target (red) is exactly where the mask is
            assert redness[~inside].mean() < 0.05
            box = box_from_mask(inside.numpy())
            expected = torch.zeros(64, 64)
            expected[int(box.y0):int(box.y1), int(box.x0):int(box.x1)] = 1
            assert torch.equal(box_map[0], expected)


def test_target_boxes_cover_the_asked_fraction_of_the_frame(pack):
    dataset = _dataset(pack, size=(96, 96), box_area=(0.1, 0.2), scale_change=1.0, travel=0.0)
    areas = []
    for index in range(20):
        mask = dataset[index]["masks"][0, 0].numpy() > 0.5
        box = box_from_mask(mask)
        if box.x0 > 0 and box.y0 > 0 and box.x1 < 96 and box.y1 < 96:  # not cut by the frame edge
            areas.append(box.area / 96**2)
    assert len(areas) >= 5 and 0.07 < min(areas) and max(areas) < 0.25


def test_items_are_a_pure_function_of_the_index(pack):
    a, b = _dataset(pack, occluder=0.5, distractor=0.5, clutter=2), _dataset(pack, occluder=0.5, distractor=0.5, clutter=2)
    for index in (0, 7):
        assert all(torch.equal(a[index][k], b[index][k]) for k in ("images", "masks", "box_maps"))
    assert not torch.equal(a[0]["images"], a[1]["images"])


def test_an_occluder_removes_what_it_covers_from_the_mask(pack):
    _disk(pack / "objects" / "zz-blue.png", BLUE)
    dataset = _dataset(pack, occluder=1.0)
    covered = 0
    for index in range(30):
        clip = dataset[index]
        first = clip["images"][0][:, clip["masks"][0, 0] > 0.5]
        target_is_red = bool(first[0].mean() > first[2].mean())
        for image, mask in zip(clip["images"], clip["masks"]):
            other = ((image[2] - image[0]) if target_is_red else (image[0] - image[2])) > 0.5
            assert not (other & (mask[0] > 0.5)).any()  # a pixel of the object in front is never the target's
            covered += int(other.sum())
    assert covered > 0  # some other object did fly in front


def test_a_target_that_leaves_is_absent_in_a_middle_frame_only(pack):
    dataset = _dataset(pack, leave=1.0, box_area=(0.05, 0.1))
    left = 0
    for index in range(10):
        clip = dataset[index]
        pixels = clip["masks"].sum(dim=(1, 2, 3))
        assert pixels[0] >= 20 and pixels[-1] >= 20  # the user's frame and the query show it
        left += int(pixels[1] < pixels[0] / 2)
        if pixels[1] == 0:
            assert clip["box_maps"][1].sum() == 0
    assert left >= 8


def test_cutouts_also_serve_as_image_mask_pairs(pack):
    image, mask = CutoutFolder(pack / "objects").pair(0)
    assert image.shape == (60, 60, 3) and mask.shape == (60, 60) and 1800 < mask.sum() < 2100  # π·25² ≈ 1963


def test_missing_or_empty_folders_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="appearance pack not found"):
        open_pack(tmp_path / "nothing")
    (tmp_path / "objects").mkdir()
    with pytest.raises(DataError, match="no RGBA cut-outs"):
        CutoutFolder(tmp_path / "objects")
    with pytest.raises(DataError, match="background folder not found"):
        PhotoFolder(tmp_path / "backgrounds")


def test_motion_blur_is_the_convolution_with_its_line():
    frame = torch.rand(3, 23, 31)
    for length, angle in ((3, 0.0), (5, 0.7), (8, 1.9), (9, math.pi / 2)):
        kernel = torch.zeros(length, length)
        centre = (length - 1) / 2
        for step in np.linspace(-centre, centre, 2 * length):  # the line, drawn pixel by pixel
            kernel[int(round(centre + step * math.sin(angle))), int(round(centre + step * math.cos(angle)))] = 1.0
        kernel = (kernel / kernel.sum()).expand(3, 1, length, length)
        padded = F.pad(frame[None], (length // 2, (length - 1) // 2, length // 2, (length - 1) // 2), mode="replicate")
        expected = F.conv2d(padded, kernel, groups=3)[0]
        assert torch.allclose(_motion_blur(frame, length, angle), expected, atol=1e-6), (length, angle)
