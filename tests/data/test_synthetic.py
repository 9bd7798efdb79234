import numpy as np

from qmra.data import DavisDataset, SyntheticConfig, SyntheticVideo, box_from_mask, open_frames


def test_same_seed_same_video_and_frames_in_any_order():
    config = SyntheticConfig(height=60, width=80, num_frames=12, num_objects=3, seed=11)
    a, b = SyntheticVideo(config), SyntheticVideo(config)
    assert np.array_equal(a.image(7), b.image(7)) and np.array_equal(a.labels(7), b.labels(7))
    late = a.render(9)
    a.render(2)
    assert np.array_equal(a.render(9)[0], late[0])
    other = SyntheticVideo(SyntheticConfig(height=60, width=80, num_frames=12, num_objects=3, seed=12))
    assert not np.array_equal(other.image(0), a.image(0))


def _background_written_out(background, index):
    """The background's formula evaluated at every pixel, term by term (what its separable render must equal)."""
    ys, xs = np.mgrid[0:background.height, 0:background.width].astype(np.float64)
    xs, ys = xs + background.pan[0] * index, ys + background.pan[1] * index
    image = np.broadcast_to(background.base, (background.height, background.width, 3)).copy()
    for angle, frequency, phase, colour in background.gratings:
        image += np.sin(2 * np.pi * frequency * (np.cos(angle) * xs + np.sin(angle) * ys) + phase)[..., None] * colour
    gy, gx = background.noise.shape[:2]
    fy, fx = (ys / background.height * (gy - 1)) % (gy - 1), (xs / background.width * (gx - 1)) % (gx - 1)
    y0, x0 = np.floor(fy).astype(int), np.floor(fx).astype(int)
    wy, wx = (fy - y0)[..., None], (fx - x0)[..., None]
    n = background.noise
    return image + (n[y0, x0] * (1 - wy) * (1 - wx) + n[y0 + 1, x0] * wy * (1 - wx) + n[y0, x0 + 1] * (1 - wy) * wx
                    + n[y0 + 1, x0 + 1] * wy * wx)


def test_the_background_is_its_formula_at_every_pixel():
    for seed in range(3):
        background = SyntheticVideo(SyntheticConfig(height=50, width=70, num_frames=20, seed=seed))._background
        for index in (0, 7, 19):
            assert np.abs(background.render(index) - _background_written_out(background, index)).max() < 1e-9


def test_a_clip_renders_each_of_its_frames_once():
    video = SyntheticVideo(SyntheticConfig(height=48, width=64, num_frames=12, seed=3))
    rendered = []
    render = video._background.render
    video._background.render = lambda index: rendered.append(index) or render(index)
    frames = [2, 5, 9]
    labels = [video.labels(i) for i in frames]  # as a training clip reads them: labels first, then images
    images = [video.image(i) for i in frames]
    assert rendered == frames
    fresh = SyntheticVideo(SyntheticConfig(height=48, width=64, num_frames=12, seed=3))
    assert all(np.array_equal(a, fresh.labels(i)) and np.array_equal(b, fresh.image(i)) for i, a, b in zip(frames, labels, images))


def test_every_object_is_visible_and_boxed_on_the_first_frame():
    for seed in range(6):
        video = SyntheticVideo(SyntheticConfig(height=96, width=128, num_frames=5, num_objects=4, num_distractors=2, seed=seed))
        labels = video.labels(0)
        assert set(np.unique(labels).tolist()) == {0, 1, 2, 3, 4}
        boxes = video.first_boxes()
        assert sorted(boxes) == [1, 2, 3, 4]
        assert boxes[2] == box_from_mask(labels == 2)


def test_look_alike_distractors_share_shape_and_texture_but_no_label():
    video = SyntheticVideo(SyntheticConfig(num_objects=2, num_distractors=2, seed=4))
    distractors = [a for a in video._actors if a.object_id == 0]
    objects = {a.object_id: a for a in video._actors if a.object_id}
    assert len(distractors) == 2
    for distractor, original in zip(distractors, objects.values()):
        assert distractor.shape == original.shape and distractor.texture.pattern == original.texture.pattern
        assert np.abs(distractor.texture.colours - original.texture.colours).max() <= 15


def test_objects_leave_and_come_back_and_occlude_each_other():
    reentries = occlusions = 0
    for seed in range(8):
        video = SyntheticVideo(SyntheticConfig(height=48, width=64, num_frames=80, num_objects=3, num_distractors=1, seed=seed))
        areas = np.array([[int((video.labels(t) == k).sum()) for k in video.object_ids] for t in range(80)])
        for column in areas.T:
            gone = np.flatnonzero(column == 0)
            if gone.size and gone[-1] < 79 and column[gone[0]:].max() > 0 and column[: gone[0]].max() > 0:
                reentries += 1
        # Occlusion: an object's visible area drops sharply for a frame while its neighbours stay large.
        occlusions += int((areas[1:] < 0.5 * areas[:-1]).sum())
    assert reentries >= 2 and occlusions >= 2


def test_written_as_davis_folder_and_mp4(tmp_path):
    video = SyntheticVideo(SyntheticConfig(height=48, width=64, num_frames=8, num_objects=2, seed=1), name="toy")
    video.write_davis(tmp_path / "davis")
    sequence = DavisDataset(tmp_path / "davis").sequence("toy")
    assert sequence.num_frames == 8 and sequence.object_ids == [1, 2]
    assert np.array_equal(sequence.labels(3), video.labels(3))
    path = video.write_mp4(tmp_path / "toy.mp4", fps=10, annotations=tmp_path / "masks")
    source = open_frames(path)
    assert (source.info.num_frames, source.info.height, source.info.width) == (8, 48, 64)
    assert len(list((tmp_path / "masks").glob("*.png"))) == 8
