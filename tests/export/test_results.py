"""Finding what a run segmented: batch folders through their index, segment folders through --video,
and masks matched to their frames by name."""


import numpy as np
import pytest
from PIL import Image

from qmra.batch.index import DONE, INTERRUPTED, VideoRecord
from qmra.data import SyntheticConfig, SyntheticVideo, open_frames, write_palette_png
from qmra.errors import QmraError
from qmra.export import find_results, masked_frames


def _frame_folder(folder, names):
    folder.mkdir(parents=True)
    for name in names:
        Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(folder / f"{name}.png")
    return folder


def _masks(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        write_palette_png(folder / f"{name}.png", np.zeros((8, 10), np.uint8))
    return folder


def test_masks_of_a_frame_folder_are_matched_by_file_name_in_frame_order(tmp_path):
    frames = _frame_folder(tmp_path / "frames", ["shot_2", "shot_10", "shot_1"])  # read as 1, 2, 10
    masks = _masks(tmp_path / "masks", ["shot_10", "shot_1"])
    found = masked_frames(masks, open_frames(frames))
    assert [(index, path.name) for index, path in found] == [(0, "shot_1.png"), (2, "shot_10.png")]


def test_masks_of_a_video_are_matched_by_frame_number(tmp_path):
    video = SyntheticVideo(SyntheticConfig(height=16, width=16, num_frames=6, num_objects=1, seed=0))
    source = open_frames(video.write_mp4(tmp_path / "clip.mp4", fps=5))
    masks = _masks(tmp_path / "masks", ["00004", "00000", "00002"])
    assert [index for index, _ in masked_frames(masks, source)] == [0, 2, 4]
    for name in ("00006", "4", "frame"):  # past the end; not how qmra names a video's frame; no number
        _masks(tmp_path / name, [name])
        with pytest.raises(QmraError, match=f"no frame of .* is named '{name}'"):
            masked_frames(tmp_path / name, source)


def test_a_folder_without_masks_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(QmraError, match="no mask PNGs"):
        masked_frames(tmp_path / "empty", open_frames(_frame_folder(tmp_path / "f", ["0"])))


def _index(out, records):
    out.mkdir(parents=True, exist_ok=True)
    (out / "index.jsonl").write_text("".join(record.line() + "\n" for record in records))


def test_a_batch_folder_gives_its_done_videos_by_their_last_state_and_says_which_it_left_out(tmp_path):
    a, b, c = (_frame_folder(tmp_path / name, ["0"]) for name in "abc")
    _index(tmp_path / "out", [VideoRecord("a", str(a), INTERRUPTED), VideoRecord("b", str(b), DONE),
                              VideoRecord("a", str(a), DONE, attempt=2), VideoRecord("c", str(c), INTERRUPTED)])
    found = find_results(tmp_path / "out", None)
    assert [(v.id, v.source, v.masks) for v in found.videos] == [("a", a, tmp_path / "out" / "a"),
                                                                  ("b", b, tmp_path / "out" / "b")]
    assert len(found.skipped) == 1 and found.skipped[0] == ("video c is left out: it is interrupted; run qmra batch again "
                                                      "to finish it, then export again")


def test_a_batch_folder_refuses_video_and_a_gone_source_is_named(tmp_path):
    _index(tmp_path / "out", [VideoRecord("a", str(tmp_path / "gone.mp4"), DONE)])
    with pytest.raises(QmraError, match="leave out --video"):
        find_results(tmp_path / "out", tmp_path)
    with pytest.raises(QmraError, match=r"video a was segmented from .*gone\.mp4, which is gone"):
        find_results(tmp_path / "out", None)
    _index(tmp_path / "none", [VideoRecord("a", str(tmp_path), INTERRUPTED)])
    with pytest.raises(QmraError, match=r"no video is done \(1 failed or unfinished\)"):
        find_results(tmp_path / "none", None)


def test_a_segment_folder_needs_its_video_and_is_named_after_it(tmp_path):
    masks = _masks(tmp_path / "masks", ["0"])
    with pytest.raises(QmraError, match="name the video or frame folder they were segmented from with --video"):
        find_results(masks, None)
    with pytest.raises(QmraError, match="--video .*nothing.mp4: not found"):
        find_results(masks, tmp_path / "nothing.mp4")
    frames = _frame_folder(tmp_path / "street", ["0"])
    assert [(v.id, v.source, v.masks) for v in find_results(masks, frames).videos] == [("street", frames, masks)]
    with pytest.raises(QmraError, match="results folder not found"):
        find_results(tmp_path / "missing", frames)
