import numpy as np
import pytest

from qmra.errors import QmraError
from qmra.training.specs import DataSpec


def test_parse_specs_with_weights_and_selections():
    assert DataSpec.parse("synthetic") == DataSpec("synthetic", None, None, 1.0, "synthetic")
    spec = DataSpec.parse("davis:/data/davis2016:cows,dog@2.5")
    assert (spec.kind, spec.path, spec.selection, spec.weight) == ("davis", "/data/davis2016", "cows,dog", 2.5)
    assert DataSpec.parse("coco:ann.json:images@0.5").selection == "images"
    assert DataSpec.parse("synthetic:12").selection == "12"


@pytest.mark.parametrize("text,message", [
    ("kinetics:/x", "unknown kind 'kinetics'"),
    ("davis", "davis needs a path"),
    ("coco:ann.json", "coco needs coco:ANNOTATIONS.json:IMAGE_FOLDER, or coco:FOLDER"),
    ("cocovid:ann.json", "cocovid needs cocovid:ANNOTATIONS.json:IMAGE_FOLDER, or cocovid:FOLDER"),
    ("youtube-vis:train.json", "youtube-vis needs youtube-vis:ANNOTATIONS.json:IMAGE_FOLDER"),
    ("synthetic@x", "must be a number"),
    ("synthetic@0", "must be positive"),
    ("synthetic:many", "number of videos"),
])
def test_bad_specs(text, message):
    with pytest.raises(QmraError, match=message):
        DataSpec.parse(text)


def test_davis_selection_and_hold_out(davis_root):
    assert DataSpec.parse(f"davis:{davis_root}:cows,dog").davis().names == ["cows", "dog"]
    kept = DataSpec.parse(f"davis:{davis_root}:-cows,dog,goat,parkour").davis().names
    assert len(kept) == 11 and "cows" not in kept and "breakdance" in kept
    with pytest.raises(QmraError, match="unknown sequence"):
        DataSpec.parse(f"davis:{davis_root}:-nope").davis()


def test_flying_spec_builds_clips_from_a_pack(tmp_path):
    from PIL import Image

    from qmra.data import ClipSettings

    (tmp_path / "objects").mkdir()
    (tmp_path / "backgrounds").mkdir()
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[5:35, 10:30] = (200, 50, 50, 255)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "objects" / "a.png")
    Image.fromarray(np.full((50, 70, 3), 120, np.uint8)).save(tmp_path / "backgrounds" / "b.jpg")
    spec = DataSpec.parse(f"flying:{tmp_path}@3")
    assert (spec.kind, spec.path, spec.weight) == ("flying", str(tmp_path), 3.0)
    clip = spec.build(ClipSettings(size=(48, 48), min_object_pixels=10), seed=0)[0]
    assert clip["images"].shape == (3, 3, 48, 48) and clip["masks"][0].sum() >= 10
    assert spec.videos(0) == []


def test_flying_spec_takes_the_target_box_area(tmp_path):
    assert DataSpec.parse(f"flying:{tmp_path}").flying_settings().box_area == (0.05, 0.8)
    spec = DataSpec.parse(f"flying:{tmp_path}:0.003-0.05@2")
    assert (spec.path, spec.weight, spec.flying_settings().box_area) == (str(tmp_path), 2.0, (0.003, 0.05))
    for bad in ("0.1", "0.5-0.1", "small-0.2", "0-0.2", "0.1-1.5"):
        with pytest.raises(QmraError, match="box area is LOW-HIGH fractions of the frame"):
            DataSpec.parse(f"flying:{tmp_path}:{bad}")


def test_an_exported_dataset_gives_video_clips_of_its_objects_and_still_clips_as_coco(tmp_path):
    from qmra.data import ClipSettings, SyntheticConfig, SyntheticVideo, VideoClipDataset
    from tests.tiny import exported_video

    video = SyntheticVideo(SyntheticConfig(height=120, width=160, num_frames=6, num_objects=1, num_distractors=0, seed=2))
    dataset = exported_video(tmp_path, video, indices=list(range(6)))
    settings = ClipSettings(size=(48, 48), min_object_pixels=10, hflip=False, colour_jitter=0.0)
    spec = DataSpec.parse(f"cocovid:{dataset}@2")
    assert (spec.path, spec.selection, spec.weight) == (str(dataset), None, 2.0)
    assert [v.name for v in spec.videos(0)] == ["shot"] and spec.videos(0)[0].num_frames == 6
    clips = spec.build(settings, seed=0)
    assert isinstance(clips, VideoClipDataset)  # the video's frames in order, not still views of one
    clip = clips[0]
    assert clip["images"].shape == (3, 3, 48, 48) and all(m.sum() >= 10 for m in clip["masks"])
    same_files = DataSpec.parse(f"cocovid:{dataset / 'annotations.json'}:{dataset / 'images'}")
    assert [v.frame_names for v in same_files.videos(0)] == [v.frame_names for v in spec.videos(0)]
    still = DataSpec.parse(f"coco:{dataset}").build(settings, seed=0)[0]
    assert still["images"].shape == (3, 3, 48, 48) and all(m.sum() >= 10 for m in still["masks"])


def test_a_youtube_vis_dataset_gives_video_clips(tmp_path):
    from qmra.data import ClipSettings, SyntheticConfig, SyntheticVideo, VideoClipDataset
    from tests.tiny import exported_video

    video = SyntheticVideo(SyntheticConfig(height=120, width=160, num_frames=6, num_objects=2, num_distractors=0, seed=2))
    spec = DataSpec.parse(f"youtube-vis:{exported_video(tmp_path, video, list(range(6)), annotations='youtube-vis')}")
    assert [(v.name, v.num_frames, v.object_ids) for v in spec.videos(0)] == [("shot", 6, [1, 2])]
    clips = spec.build(ClipSettings(size=(48, 48), min_object_pixels=10), seed=0)
    assert isinstance(clips, VideoClipDataset) and clips[0]["images"].shape == (3, 3, 48, 48)
