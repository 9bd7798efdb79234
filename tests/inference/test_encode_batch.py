"""Query encodings of several sessions' frames made as one batch (qmra.inference.encode_batch)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from qmra.inference import InferenceSettings
from qmra.inference.encode_batch import QueryBatcher
from qmra.model import BackboneFeatures
from tests.inference.helpers import clip, tiny_segmenter


class _Doubling:
    """A stand-in network whose 'features' say which input they came from; it records its batches."""

    compile = "off"

    def __init__(self, fail: bool = False) -> None:
        self.model = self
        self.batches: list[int] = []
        self.channels_last: list[bool] = []
        self.fail = fail

    def encode_query(self, prepared: torch.Tensor) -> BackboneFeatures:
        self.batches.append(prepared.shape[0])
        self.channels_last.append(prepared.is_contiguous(memory_format=torch.channels_last))
        if self.fail:
            raise RuntimeError("out of memory")
        return BackboneFeatures(prepared * 2, prepared + 1, prepared[:, :1])


def _in_threads(batcher: QueryBatcher, calls: list[tuple[object, torch.Tensor]]) -> list[object]:
    """Each (runtime, input) encoded in a thread of its own, all joined to ``batcher``; their results."""
    results: list[object] = [None] * len(calls)
    ready = threading.Barrier(len(calls))

    def run(position: int) -> None:
        runtime, prepared = calls[position]
        with batcher.joined():
            ready.wait()
            try:
                results[position] = batcher.encode(runtime, prepared)
            except RuntimeError as error:
                results[position] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_frames_of_running_sessions_are_encoded_as_one_batch_and_each_gets_its_own():
    runtime, batcher = _Doubling(), QueryBatcher(window=5.0)  # a long window: the batch fills, it does not time out
    inputs = [torch.full((1, 3, 16, 16), float(i)) for i in range(3)]
    results = _in_threads(batcher, [(runtime, x) for x in inputs])
    assert runtime.batches == [3] and batcher.batch_sizes == {3: 1}
    for x, features in zip(inputs, results):
        assert isinstance(features, BackboneFeatures) and features.r4.shape == (1, 3, 16, 16)
        assert torch.equal(features.r4, x * 2) and torch.equal(features.r3, x + 1) and torch.equal(features.r2, x[:, :1])


def test_frames_of_other_sizes_or_networks_are_not_mixed():
    one, other, batcher = _Doubling(), _Doubling(), QueryBatcher(window=0.2)
    small, large = torch.zeros(1, 3, 16, 16), torch.ones(1, 3, 32, 16)
    results = _in_threads(batcher, [(one, small), (one, large), (other, small), (one, small + 5)])
    assert sorted(one.batches) == [1, 2] and other.batches == [1]
    assert torch.equal(results[1].r4, large * 2) and torch.equal(results[3].r4, (small + 5) * 2)


def test_a_batch_of_channels_last_frames_reaches_the_network_channels_last():
    runtime, batcher = _Doubling(), QueryBatcher(window=5.0)
    inputs = [torch.rand(1, 3, 16, 24).contiguous(memory_format=torch.channels_last) for _ in range(2)]
    results = _in_threads(batcher, [(runtime, x) for x in inputs])
    assert runtime.batches == [2] and runtime.channels_last == [True]
    assert all(torch.equal(r.r4, x * 2) for r, x in zip(results, inputs))


def test_a_padded_batch_holds_a_power_of_two_and_each_frame_still_gets_its_own():
    runtime, batcher = _Doubling(), QueryBatcher(window=5.0, pad=True)
    inputs = [torch.full((1, 3, 16, 16), float(i)).contiguous(memory_format=torch.channels_last) for i in range(3)]
    results = _in_threads(batcher, [(runtime, x) for x in inputs])
    assert runtime.batches == [4] and runtime.channels_last == [True]  # one shape for 3 and 4 frames on a GPU
    assert batcher.batch_sizes == {3: 1}  # frames, not padding
    assert [float(r.r4.mean()) for r in results] == [0.0, 2.0, 4.0]


def test_batches_are_padded_only_on_cuda_unless_asked():
    assert QueryBatcher().pad is None  # decided per batch from its device
    runtime, batcher = _Doubling(), QueryBatcher(window=5.0)
    _in_threads(batcher, [(runtime, torch.zeros(1, 3, 8, 8)) for _ in range(3)])
    assert runtime.batches == [3]  # on the CPU padding would be work for nothing


def test_a_session_alone_is_not_kept_waiting():
    runtime, batcher = _Doubling(), QueryBatcher(window=60.0)
    with batcher.joined():
        features = batcher.encode(runtime, torch.zeros(1, 3, 16, 16))  # no other session runs: at once
    assert runtime.batches == [1] and features.r4.shape == (1, 3, 16, 16)


def test_an_error_in_the_encoder_reaches_every_session_of_the_batch():
    runtime, batcher = _Doubling(fail=True), QueryBatcher(window=5.0)
    results = _in_threads(batcher, [(runtime, torch.zeros(1, 3, 16, 16)) for _ in range(2)])
    assert runtime.batches == [2] and all(isinstance(r, RuntimeError) and "out of memory" in str(r) for r in results)


def _propagated(segmenter, video, batcher=None) -> list[np.ndarray]:
    frames = np.stack([video.image(i) for i in range(video.num_frames)])
    session = segmenter.start(frames, prompts=video.first_boxes(), batcher=batcher)
    return [result.labels for _, result in session.propagate()]


def test_sessions_in_threads_sharing_the_encoder_give_the_masks_they_give_alone():
    segmenter = tiny_segmenter(InferenceSettings(adapt_steps=0, threads=1))
    videos = [clip(frames=5, seed=seed) for seed in range(3)]
    alone = [_propagated(segmenter, video) for video in videos]
    batcher = QueryBatcher(window=5.0)
    together: list[list[np.ndarray]] = [[] for _ in videos]
    ready = threading.Barrier(len(videos))

    def run(position: int) -> None:
        with batcher.joined():
            ready.wait()
            together[position] = _propagated(segmenter, videos[position], batcher)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(videos))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert max(batcher.batch_sizes) >= 2, batcher.batch_sizes  # frames really went through together
    for mine, reference in zip(together, alone):
        assert len(mine) == len(reference) == 5
        agree = np.mean([np.mean(a == b) for a, b in zip(mine, reference)])
        assert agree >= 0.999, agree  # equal up to the rounding of a larger batch


@pytest.mark.parametrize("window", [0.0, 0.05])
def test_a_batcher_that_times_out_still_answers_everyone(window):
    runtime, batcher = _Doubling(), QueryBatcher(window=window)
    results = _in_threads(batcher, [(runtime, torch.full((1, 3, 16, 16), float(i))) for i in range(4)])
    assert sum(runtime.batches) == 4
    assert [float(r.r4.mean()) for r in results] == [0.0, 2.0, 4.0, 6.0]
