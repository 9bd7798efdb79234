"""One video of a batch: what its record keeps."""

import json

from qmra.batch.index import DONE, VideoRecord
from qmra.batch.job import BatchOutputs, Job, segment_job
from qmra.batch.manifest import BatchItem
from qmra.data import SyntheticConfig, SyntheticVideo
from qmra.data.redaction import Redaction
from qmra.inference import Segmenter
from qmra.inference.prompts import Prompt
from tests.tiny import no_masks_on


def test_the_frames_a_redacted_video_leaves_unhidden_are_in_the_record(tmp_path, weights, monkeypatch):
    from qmra.data import redaction

    video = SyntheticVideo(SyntheticConfig(height=48, width=64, num_frames=6, num_objects=1, seed=0))
    source = video.write_mp4(tmp_path / "clip.mp4", fps=10)
    no_masks_on(monkeypatch, range(2, 6))  # the object is not found from frame 2 on
    monkeypatch.setattr(redaction, "HOLD_SECONDS", 0.1)  # hidden where last seen for 1 frame at 10 fps
    item = BatchItem("clip", source, tuple(Prompt(i, 0, b) for i, b in sorted(video.first_boxes().items())), "test")
    outputs = BatchOutputs(tmp_path / "out", redact=Redaction("black"))
    record = segment_job(Segmenter.from_checkpoint(weights), Job(item), outputs)
    assert record.status == DONE and record.unhidden == {"1": "3-5"}
    assert "redacted.mp4: object 1: hidden where last seen on frame 2; not hidden on frames 3-5 (not found there)" \
        in record.warnings
    assert json.loads(record.line())["unhidden"] == {"1": "3-5"}
    assert "unhidden" not in json.loads(VideoRecord("a", "a.mp4", DONE).line())
