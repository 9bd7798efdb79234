import math

import numpy as np
import torch

from qmra.data.transforms import View, colour_jitter, random_tps, sampling_grid, thin_plate_spline, warp_image, warp_mask


def test_tps_passes_through_its_control_points_and_is_identity_without_displacement():
    rng = np.random.default_rng(0)
    control = rng.uniform(-1, 1, (9, 2))
    targets = control + rng.uniform(-0.2, 0.2, (9, 2))
    assert np.allclose(thin_plate_spline(control, control, targets), targets, atol=1e-8)
    points = rng.uniform(-1, 1, (50, 2))
    assert np.allclose(thin_plate_spline(points, control, control), points, atol=1e-8)
    assert np.array_equal(random_tps(points, 0.0, rng), points)


def test_identity_view_reproduces_the_image():
    image = np.random.default_rng(1).integers(0, 256, (24, 32, 3)).astype(np.uint8)
    grid = sampling_grid(View(centre=(16, 12), extent=(32, 24)), (24, 32), (24, 32))
    out = warp_image(image, grid)
    assert torch.allclose(out, torch.from_numpy(image).permute(2, 0, 1).float() / 255, atol=1e-5)
    flipped = warp_image(image, sampling_grid(View((16, 12), (32, 24), flip=True), (24, 32), (24, 32)))
    assert torch.allclose(flipped, torch.from_numpy(image[:, ::-1].copy()).permute(2, 0, 1).float() / 255, atol=1e-5)


def test_warps_keep_image_and_mask_aligned():
    # A pattern whose colour says whether a pixel is object: after any warp, the warped mask and
    # the warped image must agree away from the object's edges.
    rng = np.random.default_rng(3)
    mask = np.zeros((120, 160), bool)
    yy, xx = np.mgrid[0:120, 0:160]
    mask |= (xx - 60) ** 2 + (yy - 50) ** 2 < 30**2
    mask[80:110, 100:150] = True
    image = np.where(mask[..., None], np.array([255, 0, 0], np.uint8), np.array([0, 0, 255], np.uint8))
    for trial in range(5):
        view = View((80 + rng.uniform(-10, 10), 60), (150, 150 * 96 / 128), math.radians(rng.uniform(-25, 25)),
                    bool(trial % 2), tps=0.1)
        grid = sampling_grid(view, (96, 128), (120, 160), rng)
        warped_mask = warp_mask(mask, grid)[0] > 0.5
        warped_image = warp_image(image, grid)
        red = warped_image[0] > 0.5
        blue = warped_image[2] > 0.5
        inside_frame = red | blue
        agree = (red == warped_mask) & inside_frame
        assert agree.sum() / inside_frame.sum() > 0.98
        assert warped_mask.sum() > 500


def test_colour_jitter_is_bounded_and_optional():
    images = torch.rand(3, 3, 8, 8)
    assert colour_jitter(images, 0.0, np.random.default_rng(0)) is images
    jittered = colour_jitter(images, 0.3, np.random.default_rng(0))
    assert jittered.shape == images.shape and jittered.min() >= 0 and jittered.max() <= 1
    assert not torch.allclose(jittered, images)


def test_colour_jitter_is_brightness_then_contrast_then_saturation():
    images = torch.rand(3, 3, 20, 30)
    rng = np.random.default_rng(5)
    shared = rng.uniform(0.6, 1.4, 3)
    expected = []
    for frame in images:  # each step as the docstring says it, one after the other
        brightness, contrast, saturation = shared * rng.uniform(0.9, 1.1, 3)
        frame = frame * brightness
        frame = (frame - frame.mean()) * contrast + frame.mean()
        grey = frame.mean(dim=0, keepdim=True)
        expected.append(((frame - grey) * saturation + grey).clamp(0, 1))
    jittered = colour_jitter(images, 0.4, np.random.default_rng(5))
    assert torch.allclose(jittered, torch.stack(expected), atol=1e-6)
