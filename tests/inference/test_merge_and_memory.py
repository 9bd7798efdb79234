import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from qmra.inference import ObjectMemory, soft_aggregate
from qmra.inference.memory import stack_memories
from qmra.model import KeyValueMaps, MemoryFrame


def test_soft_aggregation_by_hand():
    p = torch.tensor([[[0.8]], [[0.5]]])  # two objects, one pixel
    background = (1 - 0.8) * (1 - 0.5)
    logits = [math.log(q / (1 - q)) for q in (background, 0.8, 0.5)]
    expected = torch.softmax(torch.tensor(logits), dim=0)
    assert torch.allclose(soft_aggregate(p)[:, 0, 0], expected, atol=1e-6)
    # Certain probabilities are clamped, not infinite.
    sure = soft_aggregate(torch.tensor([[[1.0]], [[0.0]]]))
    assert torch.isfinite(sure).all() and sure[:, 0, 0].argmax() == 1
    assert torch.allclose(soft_aggregate(torch.rand(3, 4, 5)).sum(0), torch.ones(4, 5), atol=1e-6)


def _entry(value: float) -> MemoryFrame:
    maps = KeyValueMaps(torch.full((1, 2, 1, 1), value), torch.full((1, 3, 1, 1), value))
    return MemoryFrame(maps, maps)


def test_schedule_first_every_nth_and_previous():
    memory = ObjectMemory(first_frame=2, entry=_entry(2), mem_every=5, capacity=100)
    for frame in range(3, 20):
        memory.add(frame, _entry(frame))
    assert memory.frame_indices == [2, 7, 12, 17, 19]
    assert [float(e.track.key[0, 0]) for e in memory.entries()] == [2, 7, 12, 17, 19]
    memory.add(22, _entry(22))  # on the schedule: it is both an extra and the previous frame, stored once
    assert memory.frame_indices == [2, 7, 12, 17, 22]


def test_cap_keeps_the_first_frame_and_drops_the_oldest_extras():
    memory = ObjectMemory(first_frame=0, entry=_entry(0), mem_every=2, capacity=4)
    for frame in range(1, 50):
        memory.add(frame, _entry(frame))
        assert memory.num_frames <= 4
    assert memory.frame_indices == [0, 46, 48, 49]
    no_extras = ObjectMemory(0, _entry(0), mem_every=0, capacity=16)
    for frame in range(1, 10):
        no_extras.add(frame, _entry(frame))
    assert no_extras.frame_indices == [0, 9]
    with pytest.raises(ValueError):
        no_extras.add(0, _entry(0))


def test_objects_with_equal_memory_sizes_stack_into_one_batch():
    a, b = ObjectMemory(0, _entry(1), 10, 16), ObjectMemory(0, _entry(2), 10, 16)
    a.add(1, _entry(3))
    b.add(1, _entry(4))
    memory = stack_memories([a, b])
    assert memory.track.key.shape == (2, 2, 2, 1, 1)
    assert memory.track.value[:, :, 0, 0, 0].tolist() == [[1, 3], [2, 4]]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_label_map_is_argmax_with_ties_to_the_earlier_class(objects, seed):
    from qmra.inference.merge import label_map

    generator = torch.Generator().manual_seed(seed)
    maps = torch.randint(0, 4, (objects + 1, 7, 9), generator=generator).float()  # many ties
    ids = [int(i) for i in torch.randperm(255, generator=generator)[:objects] + 1]
    lookup = torch.tensor([0, *ids], dtype=torch.uint8)
    assert torch.equal(label_map(maps, ids), lookup[maps.argmax(dim=0)])
