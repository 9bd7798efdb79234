import numpy as np
import pytest
from scipy import ndimage

from qmra.data.redaction import (HOLD_SECONDS, RedactWriter, Redaction, RedactionReport, Redactor, frame_ranges)
from qmra.data.video_writer import Mp4Writer


def _scene(height: int = 120, width: int = 160, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A noisy frame and labels with object 1 (a disc) and object 2 (a bar)."""
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    labels = np.zeros((height, width), np.uint8)
    yy, xx = np.mgrid[:height, :width]
    labels[(yy - 40) ** 2 + (xx - 45) ** 2 < 20 ** 2] = 1
    labels[80:100, 90:150] = 2
    return frame, labels


def _near(mask: np.ndarray, margin: int) -> np.ndarray:
    return ndimage.maximum_filter(mask, size=2 * margin + 1)


def test_black_hides_each_mask_and_its_margin_and_nothing_farther():
    frame, labels = _scene()
    original = frame.copy()
    redactor = Redactor(160, 120, Redaction("black", "mask"))
    assert redactor.margin == 2  # 1 % of 120 rounds to 1: at least 2 pixels
    out = redactor.hide(frame, labels, [1, 2], 0)
    covered = _near(labels > 0, redactor.margin)
    assert (out[covered] == 0).all()
    far = ~_near(labels > 0, redactor.margin + 1)
    assert np.array_equal(out[far], frame[far])
    assert np.array_equal(frame, original)  # the input is left as it was


def test_box_shape_hides_the_box_around_each_mask():
    frame, labels = _scene()
    out = Redactor(160, 120, Redaction("black", "box")).hide(frame, labels, [1], 0)
    rows, columns = ndimage.find_objects(labels)[0]
    assert (out[rows.start - 2:rows.stop + 2, columns.start - 2:columns.stop + 2] == 0).all()
    assert np.array_equal(out[labels == 2], frame[labels == 2])  # object 2 was not asked for


def test_pixelate_leaves_few_colours_and_blur_smooths_inside_only():
    frame, labels = _scene()
    disc = labels == 1
    pixelated = Redactor(160, 120, Redaction("pixelate", "mask")).hide(frame, labels, [1], 0)
    # The disc's box is 39 pixels: cells of 5 pixels, so far fewer colours than its ~1,250 noisy pixels.
    assert len(np.unique(pixelated[disc].reshape(-1, 3), axis=0)) < 120
    blurred = Redaction("blur", "mask")
    out = Redactor(160, 120, blurred).hide(frame, labels, [1], 0)
    assert out[disc].astype(float).std() < 0.3 * frame[disc].astype(float).std()
    far = ~_near(disc, 3)
    assert np.array_equal(out[far], frame[far])


def test_the_effect_grows_with_the_object():
    """A large object is blurred more strongly than a small one: the same noise, a 4x larger disc."""
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (400, 400, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:400, :400]
    small = ((yy - 100) ** 2 + (xx - 100) ** 2 < 20 ** 2).astype(np.uint8)
    large = ((yy - 200) ** 2 + (xx - 200) ** 2 < 80 ** 2).astype(np.uint8)
    redactor = Redactor(400, 400, Redaction("pixelate", "mask"))
    colours = [len(np.unique(redactor.hide(frame, labels, [1], 0)[labels == 1].reshape(-1, 3), axis=0))
               for labels in (small, large)]
    assert colours[1] < 4 * colours[0]  # 16x the pixels, about as many cells


def test_an_object_with_an_empty_mask_stays_hidden_where_last_seen_then_is_reported():
    frame, labels = _scene()
    empty = np.where(labels == 1, 0, labels).astype(np.uint8)  # object 1 not found
    redactor = Redactor(160, 120, Redaction("black"), hold=2, step=5)
    redactor.hide(frame, labels, [1, 2], 0)
    rows, columns = ndimage.find_objects(labels)[0]
    last_place = (slice(rows.start - 2, rows.stop + 2), slice(columns.start - 2, columns.stop + 2))
    for index in (5, 10):
        assert (redactor.hide(frame, empty, [1, 2], index)[last_place] == 0).all()
    for index in (15, 20):
        assert np.array_equal(redactor.hide(frame, empty, [1, 2], index)[last_place], frame[last_place])
    redactor.hide(frame, labels, [1, 2], 25)  # found again: hidden by its mask, and held again when lost
    assert (redactor.hide(frame, empty, [1, 2], 30)[last_place] == 0).all()
    assert redactor.report.held == {1: [5, 10, 30]} and redactor.report.shown == {1: [15, 20]}
    assert redactor.report.lines() == ["object 1: hidden where last seen on frames 5-10, 30; not hidden on frames "
                                       "15-20 (not found there)"]


def test_an_object_not_seen_yet_is_not_hidden_anywhere():
    frame, labels = _scene()
    redactor = Redactor(160, 120, Redaction("black", "mask"))
    out = redactor.hide(frame, np.where(labels == 2, 0, labels).astype(np.uint8), [1, 2], 0)
    assert np.array_equal(out[labels == 2], frame[labels == 2]) and redactor.report.lines() == []


def test_frame_ranges():
    assert frame_ranges([3, 4, 5, 9]) == "3-5, 9"
    assert frame_ranges([3, 9]) == "3, 9"
    assert frame_ranges([0, 5, 10, 20], step=5) == "0-10, 20"
    assert RedactionReport().lines() == []


def test_bad_style_or_shape_and_the_default():
    assert Redaction() == Redaction("blur", "box")
    with pytest.raises(ValueError, match="style must be one of blur, pixelate, black"):
        Redaction("smudge")
    with pytest.raises(ValueError, match="shape must be one of mask, box"):
        Redaction(shape="ellipse")


def test_the_writer_writes_the_hidden_frames_and_holds_for_a_second(tmp_path):
    from qmra.data import open_frames

    frame, labels = _scene(seed=2)
    frame[:] = 200
    with RedactWriter(tmp_path / "r.mp4", 160, 120, fps=4.0, redaction=Redaction("black", "mask")) as writer:
        assert writer.redactor.hold == round(4 * HOLD_SECONDS)
        writer.write_redacted(frame, labels, [1, 2], 0)
        for index in range(1, 7):
            writer.write_redacted(frame, np.zeros_like(labels), [1, 2], index)
    video = open_frames(tmp_path / "r.mp4")
    assert video.info.num_frames == 7
    first = video.read(0)
    assert first[labels > 0].mean() < 20 and first[~_near(labels > 0, 4)].mean() > 180
    assert writer.report.held == {1: [1, 2, 3, 4], 2: [1, 2, 3, 4]} and writer.report.shown == {1: [5, 6], 2: [5, 6]}
    assert isinstance(writer, Mp4Writer)
