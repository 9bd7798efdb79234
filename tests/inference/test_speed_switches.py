"""The speed switches give the reference path's masks (J >= 0.99 against it), at any working size."""

from __future__ import annotations

import numpy as np
import pytest

from qmra.data import Box
from qmra.errors import ConfigError
from qmra.inference import InferenceSettings, Segmenter
from qmra.inference.card import DEFAULT_WEIGHTS
from qmra.model.checkpoint import load_model
from tests.inference.helpers import clip, tiny_segmenter


def _labels(segmenter: Segmenter, video) -> list[np.ndarray]:
    session = segmenter.start([video.image(i) for i in range(video.num_frames)])
    for object_id, box in video.first_boxes().items():
        session.add_box(object_id, box)
    return [result.labels for _, result in session.propagate()]


def _mean_j(reference: list[np.ndarray], other: list[np.ndarray]) -> float:
    assert sum(int((labels > 0).sum()) for labels in reference) > 0  # something to agree on
    scores = []
    for a, b in zip(reference, other):
        for object_id in np.union1d(a[a > 0], b[b > 0]):
            union = np.logical_or(a == object_id, b == object_id).sum()
            scores.append(np.logical_and(a == object_id, b == object_id).sum() / union)
    return float(np.mean(scores))


class _RealClip:
    """The first frames of a real DAVIS sequence, scaled down: trained weights segment real video
    (they are not trained on the procedural clips), so agreement is measured on real masks."""

    def __init__(self, root, name: str = "parkour", frames: int = 6, size: tuple[int, int] = (180, 320)) -> None:
        from PIL import Image

        from qmra.data import DavisDataset, box_from_mask

        sequence = next(s for s in DavisDataset(root) if s.name == name)
        self.frames = [np.array(Image.fromarray(sequence.image(i)).resize(size[::-1], Image.BILINEAR)) for i in range(frames)]
        masks = [Image.fromarray((sequence.labels(i) > 0).astype(np.uint8)) for i in range(frames)]
        self.truth = [np.array(mask.resize(size[::-1], Image.NEAREST)) > 0 for mask in masks]
        self.box = box_from_mask(self.truth[0])
        self.num_frames = frames

    def image(self, index: int) -> np.ndarray:
        return self.frames[index]

    def first_boxes(self) -> dict[int, Box]:
        return {1: self.box}

    def mean_j(self, labels: list[np.ndarray]) -> float:
        """The mean J of the masks ``labels`` > 0 against the true masks, frame by frame."""
        pairs = [(a > 0, b) for a, b in zip(labels, self.truth)]
        return float(np.mean([np.logical_and(a, b).sum() / np.logical_or(a, b).sum() for a, b in pairs]))


def _trained_pair(settings: InferenceSettings, reference: InferenceSettings | None = None) -> tuple[Segmenter, Segmenter]:
    """Two segmenters on the shipped weights, the first with ``reference`` (default: the defaults), the
    second with ``settings``: trained weights give decisive masks, so J measures real agreement (a
    random network's masks would not)."""
    if not DEFAULT_WEIGHTS.is_file():
        pytest.skip(f"the shipped weights ({DEFAULT_WEIGHTS.name}) are not there: agreement is measured on trained masks")
    model, _ = load_model(DEFAULT_WEIGHTS)
    other, _ = load_model(DEFAULT_WEIGHTS)
    return Segmenter(model.float(), settings=reference or InferenceSettings()), Segmenter(other.float(), settings=settings)


def test_reading_ahead_changes_nothing():
    video = clip(frames=6)
    reference = _labels(tiny_segmenter(InferenceSettings(pipeline=False)), video)
    piped = _labels(tiny_segmenter(InferenceSettings(pipeline=True)), video)
    assert all(np.array_equal(a, b) for a, b in zip(reference, piped))


def _lookahead_session(segmenter: Segmenter, video, lookahead: bool):
    """Objects 1 and 3 from frame 0, object 2 from frame 3; ``lookahead`` forced (on CUDA it is the default)."""
    from qmra.data import box_from_mask

    session = segmenter.start([video.image(i) for i in range(video.num_frames)])
    session.lookahead = lookahead
    boxes = video.first_boxes()
    session.add_box(1, boxes[1], predict=False)
    session.add_box(3, boxes[3], predict=False)
    session.add_box(2, box_from_mask(video.labels(3) == 2), frame=3, predict=False)
    return session


def test_encoding_the_next_frame_ahead_changes_nothing_and_is_not_repeated(monkeypatch):
    video = clip(frames=8, objects=3)
    segmenter = tiny_segmenter(InferenceSettings(mem_every=2))
    reference = list(_lookahead_session(segmenter, video, lookahead=False).propagate())
    encoded = []
    query_forward = segmenter.model.query_encoder.forward
    monkeypatch.setattr(segmenter.model.query_encoder, "forward", lambda x: encoded.append(x) or query_forward(x))
    encoded_when_yielded, ahead = [], []
    for index, result in _lookahead_session(segmenter, video, lookahead=True).propagate():
        encoded_when_yielded.append(len(encoded))
        ahead.append((index, result))
    assert len(encoded) == 8  # one encoding per frame: every one made ahead was used
    # The next frame is encoded before a frame is handed back, except before frame 3 (an object
    # starts there) and after the last frame.
    assert encoded_when_yielded == [2, 3, 3, 5, 6, 7, 8, 8]
    for (index, a), (_, b) in zip(reference, ahead):
        assert np.array_equal(a.labels, b.labels) and a.boxes == b.boxes
        for object_id in a.object_probabilities:
            assert np.allclose(a.object_probabilities[object_id], b.object_probabilities[object_id], atol=1e-6)


def test_a_box_on_the_last_frame_after_stopping_with_the_next_frame_encoded():
    """A run stopped early has the next frame's encoding queued; a box added on the frame it
    stopped at still redoes that frame, as without the lookahead, and stepping goes on from it."""
    video = clip(frames=8, objects=3)
    segmenter = tiny_segmenter(InferenceSettings(mem_every=2))
    results = {}
    for lookahead in (False, True):
        session = _lookahead_session(segmenter, video, lookahead)
        for index, _ in session.propagate():
            if index == 4:
                break
        redone = session.add_box(1, Box(2, 2, 30, 30), frame=4)
        after = session.step(video.image(5))
        results[lookahead] = (redone, after)
    for a, b in zip(results[False], results[True]):
        assert np.array_equal(a.labels, b.labels) and a.boxes == b.boxes and sorted(a.masks) == [1, 2, 3]


def test_lost_objects_are_counted_without_torch_bincount(monkeypatch):
    """On CUDA, torch.bincount reads its largest value back to the host: a wait in the middle of
    every frame. The areas that flag lost objects are counted on the device without it."""
    import torch

    def refuse(*args, **kwargs):
        raise AssertionError("torch.bincount in the frame loop")

    monkeypatch.setattr(torch, "bincount", refuse)
    video = clip(frames=4, objects=2)
    session = tiny_segmenter().start([video.image(i) for i in range(4)])
    # Two objects with the same box have the same probabilities: every tie goes to object 1, so
    # object 2 has no pixel and is lost on every frame.
    session.add_box(1, video.first_boxes()[1], predict=False)
    session.add_box(2, video.first_boxes()[1], predict=False)
    for _, result in session.propagate():
        assert result.masks[1].any() and not result.masks[2].any()
        assert result.lost == {1: False, 2: True}


@pytest.mark.slow
def test_channels_last_gives_the_reference_masks(davis_root):
    video = _RealClip(davis_root, frames=6)
    reference, fast = _trained_pair(InferenceSettings(channels_last=True), InferenceSettings(channels_last=False))
    assert _mean_j(_labels(reference, video), _labels(fast, video)) >= 0.99


@pytest.mark.slow
def test_bf16_autocast_gives_the_reference_masks(davis_root):
    """On a clip the weights follow well, bf16's masks are fp32's. Each frame's mask feeds the next
    frame's box and memory, so where fp32 itself loses the object (parkour's runner at 180×320 with
    these weights) any rounding takes another path: there even ±1 grey level of noise on the frames
    moved the masks to J 0.89 of the unperturbed ones, and bf16 to 0.93; agreement then says nothing
    about bf16. So the clip is one fp32 segments well, and that is checked first."""
    video = _RealClip(davis_root, name="breakdance", frames=8)
    reference, fast = _trained_pair(InferenceSettings(precision="bf16"))
    expected = _labels(reference, video)
    assert video.mean_j(expected) >= 0.7  # fp32 follows the dancer (0.80 with the shipped weights)
    # 0.99 is the GPU target (checked by benchmarks/agreement.py); CPU bf16 kernels round
    # differently by instruction set: 0.9885 on an AMD EPYC with AVX512-BF16, above 0.99 elsewhere.
    assert _mean_j(expected, _labels(fast, video)) >= 0.98


@pytest.mark.slow
def test_memory_read_kernels_give_the_same_masks(davis_root):
    # Memory every other frame: the read covers up to 6 frames by the end.
    video = _RealClip(davis_root, frames=10)
    matmul, sdpa = _trained_pair(InferenceSettings(mem_every=2, attention="sdpa"))
    matmul = Segmenter(matmul.model, settings=InferenceSettings(mem_every=2, attention="matmul"))
    expected = _labels(matmul, video)
    assert sum(int((labels > 0).sum()) for labels in expected) > 0  # something to agree on
    assert _mean_j(expected, _labels(sdpa, video)) >= 0.99


def _probabilities(segmenter: Segmenter, video) -> list[np.ndarray]:
    session = segmenter.start([video.image(i) for i in range(video.num_frames)])
    for object_id, box in video.first_boxes().items():
        session.add_box(object_id, box)
    return [np.stack([r.object_probabilities[i] for i in sorted(r.object_probabilities)]) for _, r in session.propagate()]


def test_compiled_frames_keep_one_graph_per_object_count(monkeypatch):
    """--compile: the memory keeps its shape as it fills, so a video compiles each per-frame call
    once (a backend that records graphs stands in for inductor here: the shapes are what matter)."""
    import torch

    graphs: list[str] = []
    compile_for_real = torch.compile

    backends = {}  # one per function, kept: a new backend object would itself force a recompile

    def recording_backend(name):
        def backend(graph_module, example_inputs):
            graphs.append(name)
            return graph_module.forward

        return backend

    def recording_compile(function, mode=None, dynamic=None):
        assert mode == "default" and dynamic is False
        backend = backends.setdefault(function.__name__, recording_backend(function.__name__))
        return compile_for_real(function, backend=backend, dynamic=dynamic)

    monkeypatch.setattr("qmra.inference.runtime.torch.compile", recording_compile)
    torch._dynamo.reset()
    video = clip(frames=9, objects=2, height=64, width=96, seed=3)
    settings = InferenceSettings(mem_every=2, max_memory_frames=4)  # the memory fills, then frames rotate out
    reference = _probabilities(tiny_segmenter(settings), video)
    compiled = tiny_segmenter(InferenceSettings(mem_every=2, max_memory_frames=4, compile="default"))
    assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(reference, _probabilities(compiled, video)))
    assert sorted(graphs) == ["_track", "encode_query"]  # 8 tracked frames, memory of 1 to 4 frames: one graph each
    one_object = clip(frames=4, objects=1, height=64, width=96, seed=3)
    _probabilities(compiled, one_object)
    assert sorted(graphs) == ["_track", "_track", "encode_query"]  # a new object count: compiled again
    torch._dynamo.reset()


@pytest.mark.parametrize("attention", ["auto", "sdpa-heads"])
def test_compiled_objects_that_start_on_different_frames_match_the_reference(monkeypatch, attention):
    """Static banks of different lengths run as one batch, each object's empty slots masked; with
    ``sdpa-heads`` the Memory Read goes through SDPA with the values split into key-wide heads, as on
    CUDA (forced here on the CPU), traced by Dynamo."""
    import torch

    if attention == "sdpa-heads":
        monkeypatch.setattr("qmra.model.qma.sdpa_heads", lambda device, ck, cv: cv // ck)
    compiled_attention = "sdpa" if attention == "sdpa-heads" else "auto"
    compile_for_real = torch.compile
    monkeypatch.setattr("qmra.inference.runtime.torch.compile",
                        lambda function, mode=None, dynamic=None: compile_for_real(function, backend="eager", dynamic=dynamic))
    torch._dynamo.reset()
    video = clip(frames=7, objects=2, height=64, width=96, seed=5)
    boxes = video.first_boxes()

    def probabilities(settings: InferenceSettings) -> list[np.ndarray]:
        session = tiny_segmenter(settings).start([video.image(i) for i in range(video.num_frames)])
        session.add_box(1, boxes[1], predict=False)
        session.add_box(2, boxes[2], frame=3, predict=False)  # three frames later: a shorter memory
        return [np.stack([r.object_probabilities[i] for i in sorted(r.object_probabilities)]) for _, r in session.propagate()]

    reference = probabilities(InferenceSettings(mem_every=1, max_memory_frames=5))
    compiled = probabilities(InferenceSettings(mem_every=1, max_memory_frames=5, compile="default",
                                               attention=compiled_attention))
    assert [p.shape[0] for p in compiled] == [1, 1, 1, 2, 2, 2, 2]
    assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(reference, compiled))
    torch._dynamo.reset()


@pytest.mark.slow
def test_compiled_network_gives_the_reference_masks(davis_root):
    video = _RealClip(davis_root, frames=6)
    reference, compiled = _trained_pair(InferenceSettings(compile="default"))
    assert _mean_j(_labels(reference, video), _labels(compiled, video)) >= 0.99


def test_auto_attention_is_matmul_on_cpu_and_sdpa_on_gpus():
    import torch

    from qmra.model.qma import resolve_kernel

    assert resolve_kernel("auto", torch.device("cpu")) == "matmul"
    assert resolve_kernel("auto", torch.device("cuda", 0)) == "sdpa"
    assert resolve_kernel("sdpa", torch.device("cpu")) == "sdpa"


@pytest.mark.slow
def test_unfolded_crm_gives_the_same_masks(davis_root):
    video = _RealClip(davis_root, frames=8)
    reference, unfolded = _trained_pair(InferenceSettings(fold_crm=False))
    assert reference.settings.fold_crm  # the default folds
    expected = _labels(reference, video)
    assert sum(int((labels > 0).sum()) for labels in expected) > 0
    assert _mean_j(expected, _labels(unfolded, video)) >= 0.99


def test_working_resolution_returns_frame_sized_masks_and_boxes():
    video = clip(frames=5, objects=2, height=96, width=160)
    segmenter = tiny_segmenter(InferenceSettings(resolution=48))
    session = segmenter.start([video.image(i) for i in range(video.num_frames)])
    boxes = video.first_boxes()
    for object_id, box in boxes.items():
        session.add_box(object_id, box)
    results = [result for _, result in session.propagate()]
    assert all(r.labels.shape == (96, 160) for r in results)
    assert all(p.shape == (96, 160) for r in results for p in r.object_probabilities.values())
    assert results[0].boxes == boxes  # the given boxes, in frame pixels
    for result in results[1:]:
        for box in result.boxes.values():
            assert box is None or (isinstance(box, Box) and box.x1 <= 160 + 1e-6 and box.y1 <= 96 + 1e-6)


def test_the_frames_own_short_side_changes_nothing():
    video = clip(frames=4)
    reference = _labels(tiny_segmenter(), video)
    same = _labels(tiny_segmenter(InferenceSettings(resolution=48)), video)  # the clip's short side
    assert all(np.array_equal(a, b) for a, b in zip(reference, same))


def test_working_size_keeps_the_aspect_ratio_down_and_up():
    settings = InferenceSettings(resolution=240)
    assert settings.working_size(480, 854) == (240, 427)
    assert settings.working_size(854, 480) == (427, 240)
    assert settings.working_size(160, 240) == (240, 360)  # small frames are scaled up to the working size
    assert settings.working_size(64, 96) == (240, 360)
    assert InferenceSettings().working_size(480, 854) == (480, 854)
    assert InferenceSettings().working_size(64, 96) == (64, 96)


def test_a_small_frame_runs_scaled_up_and_returns_frame_sized_masks(monkeypatch):
    """The network sees the frame at the working size, up as well as down; results keep the frame's size."""
    video = clip(frames=3, objects=2, height=48, width=64)
    segmenter = tiny_segmenter(InferenceSettings(resolution=96))
    seen = []
    encode = segmenter.model.query_encoder.forward
    monkeypatch.setattr(segmenter.model.query_encoder, "forward", lambda x: seen.append(tuple(x.shape[-2:])) or encode(x))
    session = segmenter.start([video.image(i) for i in range(3)])
    for object_id, box in video.first_boxes().items():
        session.add_box(object_id, box)
    results = [result for _, result in session.propagate()]
    assert seen and all(size[0] >= 96 and size[1] >= 128 for size in seen)  # 96×128, padded to the stride
    assert all(r.labels.shape == (48, 64) for r in results)
    assert results[0].boxes == video.first_boxes()


@pytest.mark.parametrize("bad", [{"resolution": 8}, {"resolution": 240.0}, {"precision": "fp16"}, {"attention": "flash"},
                                 {"stage2_box": "biggest"}])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ConfigError):
        InferenceSettings(**bad)




@pytest.mark.parametrize("top_k", [None, 2])
def test_bf16_keeps_the_memory_bank_in_bf16(top_k):
    """The memory is written once and read every frame: in bf16 it is half the bytes and no cast per read
    (a bf16 session runs through with the paper's read and with the top-k read)."""
    import torch

    video = clip(frames=3, objects=2, height=48, width=64)
    settings = InferenceSettings(precision="bf16", memory_top_k=top_k)
    session = tiny_segmenter(settings).start([video.image(i) for i in range(3)])
    for object_id, box in video.first_boxes().items():
        session.add_box(object_id, box)
    list(session.propagate())
    banks = [bank for batch in session.objects.batches() for bank in batch]
    memories = [bank.memory() for bank in banks]
    tokens = [t for m in memories for stage in (m.track, m.segment) for t in (stage.key, stage.value)]
    assert banks and all(t.dtype == torch.bfloat16 for t in tokens)


@pytest.mark.parametrize("lookahead", [False, True])
def test_a_frame_that_cannot_be_read_stops_the_run_after_every_frame_before_it(lookahead):
    """Reading ahead must not lose the frame before an unreadable one (a truncated video)."""
    from qmra.data.frames import ArrayFrames
    from qmra.errors import DataError

    video = clip(frames=6, objects=1)

    def frames():
        for index in range(6):
            if index == 4:
                raise DataError("frame 4 cannot be decoded")
            yield video.image(index)

    session = tiny_segmenter().start(ArrayFrames(frames()))
    session.lookahead = lookahead
    session.add_box(1, video.first_boxes()[1], predict=False)
    done = []
    with pytest.raises(DataError, match="frame 4"):
        for index, _ in session.propagate():
            done.append(index)
    assert done == [0, 1, 2, 3]
