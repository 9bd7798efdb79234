import numpy as np
import pytest
import torch

from qmra.data import render_box_map
from qmra.errors import ConfigError
from qmra.inference import InferenceSettings, random_model
from qmra.inference.ensemble import EnsembleRuntime, join_entries, split_memory
from qmra.inference.runtime import ModelRuntime
from qmra.model import Memory, ModelConfig
from qmra.model.prior import rectangle_prior
from tests.inference.helpers import clip, tiny_segmenter
from tests.tiny import TINY


def _members(count: int = 2, variant: str = "full") -> tuple[ModelRuntime, ...]:
    settings = InferenceSettings(memory_top_k=8)
    config = ModelConfig(**{**TINY.to_dict(), "variant": variant})
    return tuple(ModelRuntime.create(random_model(config, seed=s).eval(), torch.device("cpu"), settings) for s in range(count))


def _inputs(members, video):
    frame = video.image(0)
    prepared, padding, _ = members[0].network_input(frame, frame.shape[:2])
    boxes = video.first_boxes()
    box_maps = torch.from_numpy(np.stack([render_box_map(boxes[i], frame.shape[:2]) for i in sorted(boxes)]))[:, None]
    return prepared, padding, box_maps


def test_memory_joined_side_by_side_splits_back_into_each_networks_own():
    members = _members(3)
    video = clip(frames=1, objects=2)
    prepared, padding, box_maps = _inputs(members, video)
    with torch.inference_mode():
        entries = [m.start(prepared, padding, box_maps, None)[0] for m in members]
        joined = Memory.stack([join_entries(entries), join_entries(entries)])
        for own, entry in zip(split_memory(joined, 3), entries):
            expected = Memory.stack([entry, entry])
            assert torch.equal(own.track.key, expected.track.key) and torch.equal(own.track.value, expected.track.value)
            assert torch.equal(own.segment.value, expected.segment.value)


@pytest.mark.parametrize("variant", ["full", "1stage"])
def test_each_network_follows_on_its_own_and_the_masks_are_averaged(variant):
    """Each network reads its own memory with its own stage-1 box and stores the frame in its own
    memory; the prediction is the mean of their masks: computed here network by network."""
    members = _members(2, variant)
    ensemble = EnsembleRuntime(members)
    video = clip(frames=2, objects=2)
    prepared, padding, box_maps = _inputs(members, video)
    frame = video.image(1)
    query, _, _ = members[0].network_input(frame, frame.shape[:2])
    with torch.inference_mode():
        entry, first = ensemble.start(prepared, padding, box_maps, None)
        singles = [m.start(prepared, padding, box_maps, None) for m in members]
        assert torch.allclose(first.probability(), torch.stack([o.probability() for _, o in singles]).mean(0), atol=1e-5)
        output, stored, boxes = ensemble.track(query, padding, Memory.stack([entry]), ensemble.encode_query(query))
        alone = [m.track(query, padding, Memory.stack([e]), m.encode_query(query)) for m, (e, _) in zip(members, singles)]
        expected = torch.stack([o.probability() for o, _, _ in alone]).mean(0)
        assert torch.allclose(output.probability(), expected, atol=1e-5)
        assert torch.equal(boxes, rectangle_prior(output.probability()))
        for part, (_, own, _) in zip(split_memory(Memory.stack([stored]), 2), alone):
            assert torch.allclose(part.track.value, Memory.stack([own]).track.value, atol=1e-5)
    # The networks differ, so the mean is not any one of them.
    assert not torch.allclose(output.probability(), alone[0][0].probability(), atol=1e-3)


@pytest.mark.slow
def test_a_session_adapts_one_copy_per_member_with_its_own_seed():
    """--ensemble 2 with --adapt-seed 1: copies adapted with seeds 2 and 3, exactly those that a single
    network adapted with seed 2 or 3 would be; the memory holds both, twice the bytes."""
    video = clip(frames=2, objects=2)
    frames = [video.image(i) for i in range(video.num_frames)]
    base = InferenceSettings(adapt_steps=2, adapt_lr=1e-3, adapt_seed=1)

    def run(**changes):
        from dataclasses import replace

        session = tiny_segmenter(replace(base, **changes)).start(frames)
        for object_id, box in video.first_boxes().items():
            session.add_box(object_id, box, predict=False)
        results = [r for _, r in session.propagate()]
        return session, results

    ensemble, results = run(ensemble=2)
    assert len(ensemble.models) == 2 and ensemble.model is ensemble.models[0]
    assert ensemble.adaptation.steps == 2 and ensemble.adaptation.copies == 2
    singles = [run(adapt_seed=seed)[0] for seed in (2, 3)]
    for copy, single in zip(ensemble.models, singles):
        assert all(torch.equal(a, b) for a, b in zip(copy.state_dict().values(), single.model.state_dict().values()))
    assert ensemble.memory_nbytes() == 2 * singles[0].memory_nbytes()
    assert all(r.labels.shape == frames[0].shape[:2] for r in results)


def test_without_adaptation_an_ensemble_is_one_network():
    video = clip(frames=3, objects=1)
    frames = [video.image(i) for i in range(video.num_frames)]
    outputs = []
    for settings in (InferenceSettings(), InferenceSettings(ensemble=3)):
        assert settings.copies == 1
        session = tiny_segmenter(settings).start(frames)
        session.add_box(1, video.first_boxes()[1], predict=False)
        outputs.append([r.object_probabilities[1] for _, r in session.propagate()])
        assert len(session.models) == 1
    assert all(np.array_equal(a, b) for a, b in zip(*outputs))


@pytest.mark.parametrize("changes", [{"ensemble": 0}, {"ensemble": 1.5}, {"ensemble": True},
                                     {"ensemble": 2, "adapt_steps": 5, "compile": "default"}])
def test_bad_ensemble_settings(changes):
    with pytest.raises(ConfigError):
        InferenceSettings(**changes)


def test_copies_that_keep_features_share_them_between_stages_side_by_side():
    """Each copy keeps its encoder's features once for both stages (a CPU's matmul read): the joined
    entry does so too, so the bank holds one buffer of them, and each copy reads back its own."""
    from qmra.inference.memory import MemoryBank, shares_values

    config = ModelConfig(**{**TINY.to_dict(), "memory_encoder": "shared", "value_channels": 320})
    settings = InferenceSettings(attention="matmul")
    members = tuple(ModelRuntime.create(random_model(config, seed=s).eval(), torch.device("cpu"), settings)
                    for s in range(2))
    video = clip(frames=1, objects=2)
    prepared, padding, box_maps = _inputs(members, video)
    with torch.inference_mode():
        entries = [m.start(prepared, padding, box_maps, None)[0] for m in members]
        assert all(shares_values(e) for e in entries)
        joined = join_entries(entries)
        assert shares_values(joined)
        bank = MemoryBank([1, 2], 0, joined, mem_every=2, capacity=4)
        assert bank.shares_values
        for own, entry in zip(split_memory(bank.memory(), 2), entries):
            expected = Memory.stack([entry])
            assert torch.equal(own.segment.value, expected.segment.value)
            assert torch.equal(own.segment.key, expected.segment.key)
