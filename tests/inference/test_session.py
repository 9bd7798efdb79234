import numpy as np
import pytest
import torch

from qmra.data import Box, box_from_mask
from qmra.errors import BoxError, QmraError
from qmra.inference import InferenceSettings, Segmenter
from qmra.inference.boxed import hold_to_box
from tests.inference.helpers import clip, tiny_segmenter


def _frames(video):
    return [video.image(i) for i in range(video.num_frames)]


def test_propagate_yields_every_frame_with_labels_masks_and_probabilities(segmenter):
    video = clip(frames=6)
    session = segmenter.start(_frames(video))
    for object_id, box in video.first_boxes().items():
        session.add_box(object_id, box)
    results = list(session.propagate())
    assert [i for i, _ in results] == list(range(6))
    _, result = results[3]
    assert result.name == "00003" and result.labels.shape == (48, 64) and result.labels.dtype == np.uint8
    assert sorted(result.masks) == sorted(result.probabilities) == sorted(result.object_probabilities) == [1, 2]
    for object_id, mask in result.masks.items():
        assert np.array_equal(mask, result.labels == object_id)
    total = sum(result.probabilities.values())
    assert np.all(total <= 1 + 1e-5)
    assert results[0][1].boxes[1] == video.first_boxes()[1]


def test_objects_can_start_late_and_be_removed_and_reset(segmenter):
    video = clip(frames=8, objects=3)
    boxes = video.first_boxes()
    session = segmenter.start(_frames(video))
    session.add_box(1, boxes[1])
    late_box = box_from_mask(video.labels(4) == 2)
    session.add_box(2, late_box, frame=4)
    session.add_box(3, boxes[3])
    session.remove_object(3)
    seen = {i: sorted(r.masks) for i, r in session.propagate()}
    assert seen[3] == [1] and seen[4] == [1, 2] and seen[7] == [1, 2]
    assert session.memory_frames(2)[0] == 4
    with pytest.raises(QmraError, match="unknown object id 3"):
        session.remove_object(3)
    session.reset()
    assert session.object_ids == []
    with pytest.raises(QmraError, match="no objects"):
        next(session.propagate())


def test_boxes_added_during_propagation_start_on_their_frame(segmenter):
    video = clip(frames=6)
    session = segmenter.start(_frames(video))
    session.add_box(1, video.first_boxes()[1])
    seen = {}
    for index, result in session.propagate():
        seen[index] = sorted(result.masks)
        if index == 1:
            session.add_box(2, Box(1, 1, 20, 20), frame=3)
            with pytest.raises(QmraError, match="already segmented"):
                session.add_box(5, Box(1, 1, 20, 20), frame=1)
    assert seen[2] == [1] and seen[3] == [1, 2]


def test_memory_frames_are_encoded_once(monkeypatch):
    segmenter = tiny_segmenter(InferenceSettings(mem_every=2))
    model = segmenter.model
    calls = {"memory": [], "query": 0}
    memory_forward, query_forward = model.memory_encoder.forward, model.query_encoder.forward
    shared_forward = model.memory_encoder.forward_shared_image

    def count_memory(x):
        calls["memory"].append(x.shape[0])
        return memory_forward(x)

    def count_shared(image, extra):
        calls["memory"].append(extra.shape[0])
        return shared_forward(image, extra)

    def count_query(x):
        calls["query"] += 1
        return query_forward(x)

    monkeypatch.setattr(model.memory_encoder, "forward", count_memory)
    monkeypatch.setattr(model.memory_encoder, "forward_shared_image", count_shared)
    monkeypatch.setattr(model.query_encoder, "forward", count_query)
    video = clip(frames=10, objects=3)
    session = segmenter.start(_frames(video))
    for object_id, box in video.first_boxes().items():
        session.add_box(object_id, box, predict=False)  # propagation alone is counted
    for _ in session.propagate():
        pass
    # One memory-encoder pass per frame for all three objects together (batch 3), one shared
    # query-encoder pass per frame, and nothing re-encoded when memory is read.
    assert calls["memory"] == [3] * 10
    assert calls["query"] == 10


def test_a_shared_memory_encoder_runs_one_encoder_pass_per_frame(monkeypatch):
    from qmra.inference import random_model
    from qmra.model import ModelConfig
    from tests.tiny import TINY

    model = random_model(ModelConfig(**{**TINY.to_dict(), "memory_encoder": "shared"}))
    segmenter = Segmenter(model, settings=InferenceSettings(mem_every=2))
    calls = []
    forward = segmenter.model.query_encoder.forward
    monkeypatch.setattr(segmenter.model.query_encoder, "forward", lambda x: calls.append(x.shape[0]) or forward(x))
    video = clip(frames=6, objects=2)
    session = segmenter.start(_frames(video))
    for object_id, box in video.first_boxes().items():
        session.add_box(object_id, box, predict=False)
    results = list(session.propagate())
    assert calls == [1] * 6  # stage 2 and the memory entries join the boxes to this one pass
    assert [index for index, _ in results] == list(range(6))
    assert all(set(result.object_probabilities) == {1, 2} for _, result in results)


def test_a_cpu_session_keeps_features_once_for_both_stages_and_segments_as_with_values():
    from qmra.inference import random_model
    from qmra.model import ModelConfig
    from tests.tiny import TINY

    # Values wider than the 256 res4 channels: the matmul read (a CPU's) keeps the features instead.
    model = random_model(ModelConfig(**{**TINY.to_dict(), "memory_encoder": "shared", "value_channels": 320}))
    video = clip(frames=5, objects=2)
    runs = {}
    for attention in ("auto", "sdpa"):
        session = Segmenter(model, settings=InferenceSettings(mem_every=2, attention=attention)).start(_frames(video))
        for object_id, box in video.first_boxes().items():
            session.add_box(object_id, box, predict=False)
        runs[attention] = [result for _, result in session.propagate()]
        bank, _ = session.objects.row(1)
        assert bank.shares_values == (attention == "auto")
        runs[attention + " bytes"] = session.memory_nbytes()
    # Per position: the 256 features and two stages' 16-channel keys, against two stages' keys and values.
    assert runs["auto bytes"] * 2 * (16 + 320) == runs["sdpa bytes"] * (256 + 2 * 16)
    for ours, theirs in zip(runs["auto"], runs["sdpa"]):
        for object_id in (1, 2):
            assert torch.allclose(torch.as_tensor(ours.object_probabilities[object_id]),
                                  torch.as_tensor(theirs.object_probabilities[object_id]), atol=1e-4)


def test_memory_stays_bounded_on_a_long_video():
    segmenter = tiny_segmenter(InferenceSettings(mem_every=3, max_memory_frames=5))
    video = clip(frames=150, objects=1, height=32, width=32)
    session = segmenter.start(video.image(i) for i in range(150))
    session.add_box(1, video.first_boxes()[1])
    sizes = []
    for index, _ in session.propagate():
        assert len(session.memory_frames(1)) <= 5
        sizes.append(session.memory_nbytes())
    assert session.memory_frames(1)[0] == 0
    assert max(sizes[20:]) == min(sizes[20:])


def test_objects_started_on_different_frames_batch_together_and_equal_one_at_a_time():
    # No extra frames: both objects hold first + previous frame from their second frame on, so from
    # frame 3 they run as one batch of two banks (their memories joined), then must still match.
    video = clip(frames=7, objects=2)
    late_box = box_from_mask(video.labels(2) == 2)
    prompts = {1: (video.first_boxes()[1], 0), 2: (late_box, 2)}
    segmenter = tiny_segmenter(InferenceSettings(mem_every=0))
    together = segmenter.start(_frames(video))
    for object_id, (box, frame) in prompts.items():
        together.add_box(object_id, box, frame=frame)
    batched = [r for _, r in together.propagate()]
    assert together.memory_frames(1) == [0, 6] and together.memory_frames(2) == [2, 6]
    for object_id, (box, frame) in prompts.items():
        alone = segmenter.start(_frames(video))
        alone.add_box(object_id, box, frame=frame)
        for index, result in alone.propagate():
            if index >= frame:
                assert np.allclose(result.object_probabilities[object_id],
                                   batched[index].object_probabilities[object_id], atol=1e-4)


def test_the_previous_frame_is_renewed_on_each_objects_own_grid():
    video = clip(frames=8, objects=2)
    late_box = box_from_mask(video.labels(1) == 2)
    session = tiny_segmenter(InferenceSettings(mem_every=0, previous_every=3)).start(_frames(video))
    session.add_box(1, video.first_boxes()[1])
    session.add_box(2, late_box, frame=1)
    held = {1: [], 2: []}
    for index, _ in session.propagate():
        for object_id in held:
            if index >= object_id - 1:
                held[object_id].append(session.memory_frames(object_id))
    assert [frames[-1] for frames in held[1]] == [0, 0, 0, 3, 3, 3, 6, 6]
    assert [frames[-1] for frames in held[2]] == [1, 1, 1, 4, 4, 4, 7]
    assert held[1][-1] == [0, 6] and held[2][-1] == [1, 7]


def test_batched_objects_equal_one_object_at_a_time():
    video = clip(frames=7, objects=3)
    boxes = video.first_boxes()
    segmenter = tiny_segmenter(InferenceSettings(mem_every=3))
    together = segmenter.start(_frames(video))
    for object_id, box in boxes.items():
        together.add_box(object_id, box)
    batched = [r for _, r in together.propagate()]
    for object_id, box in boxes.items():
        alone = segmenter.start(_frames(video))
        alone.add_box(object_id, box)
        for index, result in alone.propagate():
            assert np.allclose(result.object_probabilities[object_id], batched[index].object_probabilities[object_id], atol=1e-4)
            assert result.boxes[object_id] == batched[index].boxes[object_id]


def test_bad_prompts_are_refused(segmenter):
    session = segmenter.start(_frames(clip(frames=4)))
    with pytest.raises(BoxError, match="lies outside the 64x48 image"):
        session.add_box(1, Box(70, 10, 90, 20))
    with pytest.raises(BoxError, match="zero or negative area"):
        session.add_box(1, "10,10,10,20")
    with pytest.raises(BoxError, match="not a finite number"):
        session.add_box(1, [float("nan"), 0, 5, 5])
    with pytest.raises(BoxError, match="four numbers"):
        session.add_box(1, "1,2,3")
    with pytest.raises(QmraError, match="object ids are integers 1..255"):
        session.add_box(0, Box(1, 1, 5, 5))
    with pytest.raises(QmraError, match="past the end of the video"):
        session.add_box(1, Box(1, 1, 5, 5), frame=4)
    with pytest.raises(BoxError, match="first pixel: boxes are in pixels"):
        session.add_box(1, [0.1, 0.2, 0.3, 0.4])
    assert session.add_box(2, Box(0, 0, 1, 1)).boxes[2] == Box(0, 0, 1, 1)  # one pixel, meant as one
    assert session.add_box(1, Box(-10, -10, 30, 30)).boxes[1] == Box(0, 0, 30, 30)
    assert session.prompts(1)[0].box == Box(0, 0, 30, 30)


def test_device_and_inference_mode():
    segmenter = tiny_segmenter()
    assert segmenter.device == torch.device("cpu")
    from qmra.inference import resolve_device

    with pytest.raises(QmraError, match="unknown device"):
        resolve_device("gpu9")
    if not torch.cuda.is_available():
        with pytest.raises(QmraError, match="CUDA is not available"):
            resolve_device("cuda")
    session = segmenter.start(_frames(clip(frames=2)))
    session.add_box(1, Box(2, 2, 30, 30))
    for _, _ in session.propagate():
        assert torch.is_grad_enabled()  # inference mode stays inside the library


def _scheduled_frames(first: int, last: int, mem_every: int, capacity: int) -> list[int]:
    """The paper's schedule written out plainly: first frame, the newest extra frames, the last frame."""
    extras = [f for f in range(first + 1, last + 1) if mem_every and (f - first) % mem_every == 0]
    room = capacity - 1 if last in extras else capacity - 2
    return sorted({first, *(extras[-room:] if room > 0 else []), last})


@pytest.mark.parametrize("variant, top_k, stage2_box", [
    ("full", None, "all"), ("1stage", None, "all"), ("2stage-nosiam", None, "all"), ("2stage-noalign", None, "all"),
    ("full", 5, "all"), ("full", None, "largest-blob")])
def test_session_equals_a_plain_loop_that_stacks_the_scheduled_frames_every_frame(variant, top_k, stage2_box):
    """The reference the memory buffers and the encoding reuse replace: encode every frame with the
    memory encoder and its tracked box, keep all keys and values, and before each frame stack those
    the schedule holds. The session (token buffers, slots reused, stage-2 encodings reused where they
    equal the memory encoding) must agree, for variants where they do and where they do not, and
    with the top-k read (``memory_top_k``) reaching both stages' reads and stage 2's box
    (``stage2_box``) reaching stage 2 and the memory."""
    from qmra.data.boxes import render_box_map
    from qmra.model import Memory, ReadMode

    settings = InferenceSettings(mem_every=2, max_memory_frames=4, memory_top_k=top_k, stage2_box=stage2_box)
    read = ReadMode(top_k=top_k)
    segmenter = tiny_segmenter(settings, variant=variant)
    video = clip(frames=12, objects=1)
    box = video.first_boxes()[1]
    session = segmenter.start(_frames(video))
    session.add_box(1, box)
    got = [result.object_probabilities[1] for _, result in session.propagate()]

    model = segmenter.model
    entries, differs = {}, []
    with torch.inference_mode():
        for t in range(video.num_frames):
            image = torch.from_numpy(video.image(t)).permute(2, 0, 1)[None].float() / 255
            prepared, padding = model.prepare(image)
            if t == 0:
                box_map = torch.from_numpy(render_box_map(box, (48, 64)))[None, None]
                entries[0] = model.memorize(model.encode_memory(prepared, padding.pad(box_map)))
                memory = Memory.stack([entries[0]])
                output = model.predict(prepared, padding, memory, query_prior=box_map if model.config.two_stage else None,
                                       read=read)
            else:
                memory = Memory.stack([entries[f] for f in _scheduled_frames(0, t - 1, 2, 4)])
                output = model.predict(prepared, padding, memory, read=read, stage2_box=stage2_box)
                if stage2_box != "all":
                    paper_box = model.predict(prepared, padding, memory, read=read).query_prior
                    differs.append(not torch.equal(output.query_prior, paper_box))
                if top_k is not None and t == video.num_frames - 1:  # by then the read has 4 frames to choose from
                    paper = model.predict(prepared, padding, memory)
                    assert not torch.allclose(paper.probability(), output.probability(), atol=1e-4)
                entries[t] = model.memorize(model.encode_memory(prepared, padding.pad(model.tracked_box_maps(output))))
            expected = output.probability()[:, 0]
            if t == 0:  # the frame the object was boxed on keeps to its box
                expected = hold_to_box(expected, box_map[:, 0].float())
            assert np.allclose(got[t], expected[0].numpy(), atol=1e-5), f"frame {t}"
    assert session.memory_frames(1) == _scheduled_frames(0, 11, 2, 4) == [0, 8, 10, 11]
    assert stage2_box == "all" or any(differs)  # the largest blob's box was not the paper's on some frame


def test_results_carry_confidence_and_lost_and_the_run_reports_lost_objects(segmenter):
    from qmra.inference.lost import LostObjects
    from qmra.inference.results import FrameResult

    video = clip(frames=4, objects=2)
    session = segmenter.start(_frames(video))
    for object_id, box in video.first_boxes().items():
        session.add_box(object_id, box)
    for _, result in session.propagate():
        for object_id in (1, 2):
            own = result.object_probabilities[object_id]
            expected = float(own[own > 0.5].mean()) if (own > 0.5).any() else 0.0
            assert abs(result.confidence[object_id] - expected) < 0.02  # (at the working size, here the frame's)
            assert result.lost[object_id] == (not result.masks[object_id].any())

    def frame(index, lost):
        return FrameResult(index, f"{index:05d}", np.zeros((2, 2), np.uint8), {1: None, 2: None}, np.zeros((2, 2, 3), np.uint8),
                           lost=lost)

    report = LostObjects()
    assert report.update(frame(0, {1: False, 2: False})) == []
    assert report.update(frame(1, {1: True, 2: False})) == [1]
    assert report.update(frame(2, {1: True, 2: True})) == [2]
    assert report.update(frame(3, {1: False, 2: True})) == []
    assert report.lost_at_end == {2: 2} and report.frames_lost == {1: 2, 2: 2}
    assert report.summary(2) == "lost 1 of 2 objects to the end: 2 from frame 2"


def test_the_segmenter_never_changes_the_callers_model():
    from qmra.inference import random_model
    from tests.tiny import TINY

    model = random_model(TINY).train()
    before = {name: p.clone() for name, p in model.state_dict().items()}
    segmenter = Segmenter(model, settings=InferenceSettings(channels_last=True, adapt_steps=2))
    video = clip(frames=3, objects=1)
    session = segmenter.start(_frames(video))
    session.add_box(1, video.first_boxes()[1])
    list(session.propagate())
    assert model.training and segmenter.model is not model and not segmenter.model.training
    conv = model.query_encoder.conv1.weight
    assert conv.is_contiguous()  # not turned NHWC
    assert all(torch.equal(before[name], p) for name, p in model.state_dict().items())
    # A model that is ready as it is (eval mode, the settings' layout) is used as it is (no copy).
    ready = random_model(TINY).eval()
    assert Segmenter(ready, settings=InferenceSettings(channels_last=False)).model is ready
    assert Segmenter(ready.to(memory_format=torch.channels_last)).model is ready  # NHWC, the default


@pytest.mark.parametrize("reverse", [False, True])
def test_a_run_through_every_third_frame_is_a_run_over_those_frames_alone(segmenter, reverse):
    video = clip(frames=11, objects=2)
    frames = _frames(video)
    late = box_from_mask(video.labels(6) == 2)
    start = 9 if reverse else 0
    session = segmenter.start(frames)
    session.add_box(1, video.first_boxes()[1], frame=start)
    session.add_box(2, late, frame=6)
    every_third = list(session.propagate(start=start, reverse=reverse, step=3))
    kept = list(range(start, -1, -3) if reverse else range(start, 11, 3))
    assert [i for i, _ in every_third] == kept and every_third[0][1].name == f"{start:05d}"
    alone = segmenter.start([frames[i] for i in sorted(kept)])  # the same frames as a video of their own
    alone.add_box(1, video.first_boxes()[1], frame=sorted(kept).index(start))
    alone.add_box(2, late, frame=2)
    by_index = dict(alone.propagate(reverse=reverse))
    for index, result in every_third:
        assert np.array_equal(result.labels, by_index[sorted(kept).index(index)].labels), index
    off_grid = ("object 2 is boxed on frame 6, which a run through one frame in 4 from frame 1 skips: box it on frame 5 "
                "or 9" if reverse else "object 2 is boxed on frame 6, which a run through one frame in 4 from frame 0 "
                "skips: box it on frame 4 or 8")
    with pytest.raises(QmraError, match=off_grid):
        list(session.propagate(start=1 if reverse else 0, step=4))
    with pytest.raises(QmraError, match="step must be an integer of 1 or more"):
        list(session.propagate(step=0))
