import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from qmra.inference import MemoryBank, soft_aggregate
from qmra.inference.memory import frames_to_full_memory
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


def _entry(*values: float) -> MemoryFrame:
    """A batched entry: object b's keys and values are all ``values[b]`` (1×1 frames)."""
    column = torch.tensor(values, dtype=torch.float32)[:, None, None, None]
    maps = KeyValueMaps(column.expand(-1, 2, 1, 1).clone(), column.expand(-1, 3, 1, 1).clone())
    return MemoryFrame(maps, KeyValueMaps(maps.key.clone(), maps.value.clone()))


def _features_entry(*values: float) -> MemoryFrame:
    """Like :func:`_entry`, with both stages' values one tensor (features kept in place of values)
    and each stage's keys its own (the segment stage's negated)."""
    track = _entry(*values).track
    return MemoryFrame(track, KeyValueMaps(-track.key, track.value))


def _bank(first_frame: int, mem_every: int, capacity: int, *values: float) -> MemoryBank:
    return MemoryBank(list(range(1, len(values) + 1)), first_frame, _entry(*values), mem_every, capacity)


def _held_values(bank: MemoryBank, row: int = 0) -> list[float]:
    """The values the bank's memory holds for one object, in time order (each frame's entry = its index)."""
    return sorted(bank.memory().track.value[row, :, 0].tolist())


def test_schedule_first_every_nth_and_previous():
    bank = _bank(2, 5, 100, 2)
    for frame in range(3, 20):
        bank.add(frame, _entry(frame))
    assert bank.frame_indices == [2, 7, 12, 17, 19]
    assert _held_values(bank) == [2, 7, 12, 17, 19]
    bank.add(22, _entry(22))  # on the schedule: it is both an extra and the previous frame, stored once
    assert bank.frame_indices == [2, 7, 12, 17, 22]
    assert _held_values(bank) == [2, 7, 12, 17, 22]


def test_the_previous_frame_renewed_every_third_frame_and_extras_on_their_own_schedule():
    bank = MemoryBank([1], 2, _entry(2), 5, 100, previous_every=3)
    held = []
    for frame in range(3, 15):
        bank.add(frame, _entry(frame))
        held.append(bank.frame_indices[-1])
    # Frames 5, 8, 11, 14 (every 3rd since frame 2) renew the previous frame; 7 and 12 (every 5th) join as
    # extras, and are the previous frame until the next that joins; the others leave the memory as it was.
    assert held == [2, 2, 5, 5, 7, 8, 8, 8, 11, 12, 12, 14]
    assert bank.frame_indices == [2, 7, 12, 14] and _held_values(bank) == [2, 7, 12, 14]
    every = MemoryBank([1], 2, _entry(2), 5, 100)  # previous_every 1: the paper, every frame
    for frame in range(3, 15):
        every.add(frame, _entry(frame))
    assert every.frame_indices == [2, 7, 12, 14]
    with pytest.raises(ValueError, match="previous_every"):
        MemoryBank([1], 0, _entry(0), 5, 100, previous_every=0)


def test_cap_keeps_the_first_frame_and_drops_the_oldest_extras():
    bank = _bank(0, 2, 4, 0)
    for frame in range(1, 50):
        bank.add(frame, _entry(frame))
        assert bank.num_frames <= 4
        assert _held_values(bank) == bank.frame_indices  # every held frame's slot holds its own entry
    assert bank.frame_indices == [0, 46, 48, 49]
    no_extras = _bank(0, 0, 16, 0)
    for frame in range(1, 10):
        no_extras.add(frame, _entry(frame))
    assert no_extras.frame_indices == [0, 9] and _held_values(no_extras) == [0, 9]
    with pytest.raises(ValueError):
        no_extras.add(0, _entry(0))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 7), st.integers(2, 9), st.integers(1, 80))
def test_slots_hold_exactly_the_scheduled_frames(mem_every, capacity, frames):
    """Against the schedule written out plainly: first frame, the last `capacity - 2`... extras, previous."""
    bank = _bank(3, mem_every, capacity, 3)
    for frame in range(4, 4 + frames):
        bank.add(frame, _entry(frame))
    last = 3 + frames
    extras = [f for f in range(4, last + 1) if mem_every and (f - 3) % mem_every == 0]
    kept_extras = extras[-(capacity - 1):] if last in extras else extras[-(capacity - 2):] if capacity > 2 else []
    expected = sorted({3, *kept_extras, last})
    assert bank.frame_indices == expected
    assert _held_values(bank) == expected
    assert bank.memory().num_frames == len(expected) <= capacity
    assert bank.nbytes() <= capacity * (2 + 3) * 2 * 4  # never more than the cap's slots


@pytest.mark.parametrize("mem_every, capacity", [(10, 16), (1, 4), (3, 2), (0, 16), (5, 3)])
def test_frames_to_full_memory_is_when_the_bank_stops_growing(mem_every, capacity):
    needed = frames_to_full_memory(mem_every, capacity)
    bank = _bank(0, mem_every, capacity, 0)
    held = [bank.num_frames]
    for frame in range(1, needed + 3 * max(mem_every, 1)):
        bank.add(frame, _entry(frame))
        held.append(bank.num_frames)
    assert held[needed - 1] == max(held) and held[needed - 2] < max(held)


def test_buffers_grow_to_the_cap_and_no_further():
    bank = _bank(0, 1, 16, 0)
    sizes = []
    for frame in range(1, 60):
        bank.add(frame, _entry(frame))
        sizes.append(bank.nbytes())
    per_slot = (2 + 3) * 2 * 4  # keys + values, two stages, fp32, 1×1 frame
    assert sizes[0] == 4 * per_slot and max(sizes) == sizes[-1] == 16 * per_slot
    assert sorted(set(sizes)) == [4 * per_slot, 8 * per_slot, 16 * per_slot]


def test_values_both_stages_share_are_held_once_and_read_by_both():
    from qmra.inference.memory import object_rows, shares_values

    assert shares_values(_features_entry(1, 2)) and not shares_values(_entry(1, 2))
    assert shares_values(object_rows(_features_entry(1, 2, 3), slice(1, 3)))  # some objects' rows of it
    own, one = _bank(0, 1, 4, 1, 2), MemoryBank([1, 2], 0, _features_entry(1, 2), 1, 4)
    assert one.shares_values and not own.shares_values
    for frame in range(1, 6):
        own.add(frame, _entry(frame, -frame))
        one.add(frame, _features_entry(frame, -frame))
    assert one.nbytes() == own.nbytes() * (2 * 2 + 3) // ((2 + 3) * 2)
    memory, expected = one.memory(), own.memory()
    for stage in ("track", "segment"):
        assert torch.equal(getattr(memory, stage).value, getattr(expected, stage).value)
    assert torch.equal(memory.segment.key, -expected.segment.key)
    assert memory.segment.value.data_ptr() == memory.track.value.data_ptr()
    held = one.frame_indices
    with pytest.raises(ValueError, match="segment.value"):
        one.add(6, _entry(6, -6))  # an entry of another layout cannot join the bank
    assert one.frame_indices == held  # and the schedule did not take its frame
    one.remove(1)
    own.remove(1)
    memory, expected = one.memory(), own.memory()
    assert memory.segment.value.data_ptr() == memory.track.value.data_ptr()
    assert torch.equal(memory.segment.value, expected.segment.value) and memory.batch_size == 1


def test_memory_read_is_a_view_of_the_buffers():
    bank = _bank(0, 10, 16, 1, 2)
    bank.add(1, _entry(3, 4))
    memory = bank.memory()
    assert memory.track.key.shape == (2, 2, 2) and memory.num_frames == 2 and memory.batch_size == 2
    assert memory.track.value[:, :, 0].tolist() == [[1, 3], [2, 4]]
    assert memory.track.value.untyped_storage().data_ptr() == bank.memory().track.value.untyped_storage().data_ptr()


def _read(memory, query: torch.Tensor) -> torch.Tensor:
    from qmra.model import memory_read

    return memory_read(query, memory.track.key, memory.track.value, "matmul", memory.track.empty)


def test_a_static_bank_keeps_its_shape_and_address_and_reads_like_the_growing_one():
    growing = _bank(0, 3, 6, 1, 2)
    static = MemoryBank([1, 2], 0, _entry(1, 2), 3, 6, static=True)
    shapes, addresses = set(), set()
    for frame in range(1, 25):
        entry = _entry(frame, -frame)
        growing.add(frame, entry)
        static.add(frame, entry)
        memory = static.memory()
        shapes.add(tuple(memory.track.value.shape))
        addresses.add(memory.track.value.data_ptr())
        assert memory.track.empty.shape == (1, 1, 6)
        # Empty slots: -inf (no weight in the read) until the schedule fills them.
        assert int((memory.track.empty == 0).sum()) == growing.num_frames
        query = torch.randn(1, 2, 1, 1)
        assert torch.allclose(_read(static.memory(), query), _read(growing.memory(), query), atol=1e-6)
    assert shapes == {(2, 6, 3)} and len(addresses) == 1
    static.remove(1)
    assert static.memory().track.value.shape == (1, 6, 3)
    assert sorted(v for v in static.memory().track.value[0, :, 0].tolist() if v != 0) == sorted(
        v for v in growing.memory().track.value[1, :, 0].tolist())


def test_static_banks_run_as_one_batch_whatever_they_hold():
    from qmra.inference.objects import ObjectTable

    for static in (False, True):
        table = ObjectTable()
        early = MemoryBank([1], 0, _entry(1), 1, 6, static=static)
        for frame in range(1, 4):
            early.add(frame, _entry(frame))
        table.add(early)
        table.add(MemoryBank([2], 3, _entry(9), 1, 6, static=static))  # started later: fewer frames held
        assert early.num_frames != table.bank_of(2).num_frames
        # Growing banks of different lengths cannot share a read; static ones have one shape, so they do.
        assert [len(batch) for batch in table.batches()] == ([2] if static else [1, 1])


def test_removing_an_object_keeps_the_others():
    bank = _bank(0, 10, 16, 1, 2, 3)
    bank.add(1, _entry(4, 5, 6))
    bank.remove(2)
    assert bank.object_ids == [1, 3]
    assert bank.memory().track.value[:, :, 0].tolist() == [[1, 4], [3, 6]]
    bank.add(2, _entry(7, 8))
    assert bank.memory().track.value[:, :, 0].tolist() == [[1, 7], [3, 8]]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_label_map_is_argmax_with_ties_to_the_earlier_class(objects, seed):
    from qmra.inference.merge import label_map

    generator = torch.Generator().manual_seed(seed)
    maps = torch.randint(0, 4, (objects + 1, 7, 9), generator=generator).float()  # many ties
    ids = [int(i) for i in torch.randperm(255, generator=generator)[:objects] + 1]
    lookup = torch.tensor([0, *ids], dtype=torch.uint8)
    assert torch.equal(label_map(maps, ids), lookup[maps.argmax(dim=0)])
