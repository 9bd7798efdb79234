"""Finding a lost object again by its look (qmra.inference.redetect)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from qmra.commands.demo import demo_clip
from qmra.inference import InferenceSettings, Segmenter
from qmra.inference.redetect import Redetector, appearance, cell_cover, find
from qmra.model.preprocess import Padding
from tests.inference.helpers import clip, tiny_segmenter

STRIDE = 16
GRID = (8, 10)
PADDING = Padding(height=GRID[0] * STRIDE, width=GRID[1] * STRIDE, top=0, bottom=0, left=0, right=0)


def _frame(object_cells: tuple[slice, slice] | None, seed: int, look: torch.Tensor | None = None) -> torch.Tensor:
    """1×C×8×10 features: background cells drawn from 6 textures, with noise; ``object_cells`` hold
    ``look`` (the object's own texture), with noise."""
    generator = torch.Generator().manual_seed(seed)
    textures = torch.randn(6, 32, generator=torch.Generator().manual_seed(99))
    choice = torch.randint(0, 6, GRID, generator=generator)
    features = textures[choice].permute(2, 0, 1) + 0.2 * torch.randn(32, *GRID, generator=generator)
    if object_cells is not None:
        assert look is not None
        rows, cols = object_cells
        features[:, rows, cols] = look[:, None, None] + 0.2 * torch.randn(32, 1, 1, generator=generator)
    return features[None]


def _object_mask(rows: slice, cols: slice) -> torch.Tensor:
    """1×h×w, the object's mask at the working size over those cells."""
    mask = torch.zeros(1, PADDING.height, PADDING.width)
    mask[0, rows.start * STRIDE:rows.stop * STRIDE, cols.start * STRIDE:cols.stop * STRIDE] = 1
    return mask


LOOK = torch.randn(32, generator=torch.Generator().manual_seed(7)) * 1.5
BOXED = (slice(1, 3), slice(1, 4))


def _remembered() -> tuple[Redetector, torch.Tensor]:
    redetector = Redetector()
    redetector.remember([5], _frame(BOXED, 0, LOOK), _object_mask(*BOXED), PADDING)
    return redetector, _frame(BOXED, 0, LOOK)


def _box_of(box_map: torch.Tensor) -> tuple[int, int, int, int]:
    rows = torch.nonzero(box_map[0].any(-1))[:, 0]
    cols = torch.nonzero(box_map[0].any(-2))[:, 0]
    return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1


def test_an_object_back_elsewhere_is_found_at_its_cells() -> None:
    look = appearance(_frame(BOXED, 0, LOOK), cell_cover(_object_mask(*BOXED), PADDING, GRID)[0])
    assert look.object_cells.shape[0] == 6 and float(look.area) == 6
    assert look.background_cells.shape[0] == 80 - 4 * 5  # all but its 2×3 cells' box grown by one cell
    box = find(look, _frame((slice(5, 7), slice(6, 9)), 1, LOOK), PADDING)
    assert box is not None and box.shape == (1, 1, PADDING.height, PADDING.width)
    assert _box_of(box[0]) == (6 * STRIDE, 5 * STRIDE, 9 * STRIDE, 7 * STRIDE)


def test_nothing_is_proposed_while_the_object_is_hidden() -> None:
    look = appearance(_frame(BOXED, 0, LOOK), cell_cover(_object_mask(*BOXED), PADDING, GRID)[0])
    assert find(look, _frame(None, 2), PADDING) is None


def test_a_blob_far_larger_than_the_object_was_is_not_it() -> None:
    look = appearance(_frame(BOXED, 0, LOOK), cell_cover(_object_mask(*BOXED), PADDING, GRID)[0])
    assert find(look, _frame((slice(0, 8), slice(2, 8)), 3, LOOK), PADDING) is None  # 48 cells against 6


def test_an_object_smaller_than_a_cell_keeps_its_best_covered_cell() -> None:
    mask = torch.zeros(1, PADDING.height, PADDING.width)
    mask[0, 20:26, 20:26] = 1  # under a quarter of cell (1, 1)
    look = appearance(_frame(BOXED, 0, LOOK), cell_cover(mask, PADDING, GRID)[0])
    assert look.object_cells.shape[0] == 1


def test_an_object_without_a_pixel_is_never_proposed() -> None:
    look = appearance(_frame(BOXED, 0, LOOK), torch.zeros(GRID))
    assert look.object_cells.shape[0] == 0
    assert find(look, _frame((slice(5, 7), slice(6, 9)), 1, LOOK), PADDING) is None


def test_only_lost_objects_get_a_new_box() -> None:
    redetector, _ = _remembered()
    redetector.remember([6], _frame(BOXED, 0, LOOK), _object_mask(*BOXED), PADDING)
    query = _frame((slice(5, 7), slice(6, 9)), 1, LOOK)
    stage1 = torch.zeros(2, 1, PADDING.height, PADDING.width)
    stage1[1, 0, :16, :16] = 1
    probabilities = torch.zeros(2, PADDING.height, PADDING.width)
    probabilities[1, 5, 5] = 0.9  # object 6 has a mask: it is left alone
    found = redetector.priors([5, 6], probabilities, stage1, query, PADDING)
    assert found is not None
    priors, slots = found
    assert slots == [0]
    assert _box_of(priors[0]) == (6 * STRIDE, 5 * STRIDE, 9 * STRIDE, 7 * STRIDE)
    assert torch.equal(priors[1], stage1[1])
    redetector.forget(5)
    assert redetector.priors([5, 6], probabilities, stage1, query, PADDING) is None  # nothing known of object 5
    assert redetector.priors([5, 6], probabilities + 1, stage1, query, PADDING) is None  # none lost


@pytest.mark.slow  # two runs of the demo with the shipped weights (about a minute on 2 cores)
def test_the_demo_object_hidden_and_back_is_found_again() -> None:
    """``make demo``'s third object passes behind a look-alike at frames 5-6 and comes back away from
    where it went: the shipped network alone never finds it again; looking for it does, and proposes
    nothing while it is hidden."""
    video = demo_clip()
    frames = np.stack([video.image(i) for i in range(video.num_frames)])
    shipped = Segmenter()
    hidden_pixels, found_back, said = {}, {}, {}
    for redetect in (False, True):
        settings = dataclasses.replace(shipped.settings, redetect=redetect)
        session = Segmenter(shipped.model, settings=settings, card=shipped.card).start(frames, prompts=video.first_boxes())
        results = dict(session.propagate())
        assert not (video.labels(5) == 3).any() and not (video.labels(6) == 3).any()
        hidden_pixels[redetect] = sum(int((results[i].labels == 3).sum()) for i in (5, 6))
        found_back[redetect] = max(_overlap(video.labels(i) == 3, results[i].labels == 3) for i in range(7, 16))
        said[redetect] = [i for i, result in results.items() if "found" in result.doubts.get(3, ())]
    assert found_back[False] == 0 and hidden_pixels[False] == 0
    assert found_back[True] > 0.2 and hidden_pixels[True] == 0
    # the frames where it was found by its look are flagged, so that a user checks them
    assert said[False] == [] and said[True] and all(i >= 7 for i in said[True])


def _overlap(truth: np.ndarray, predicted: np.ndarray) -> float:
    return float((truth & predicted).sum() / (truth | predicted).sum())


def test_a_session_keeps_the_looks_of_its_objects_only() -> None:
    video = clip(frames=3, objects=2)
    session = tiny_segmenter(InferenceSettings(redetect=True)).start(
        np.stack([video.image(i) for i in range(3)]), prompts=video.first_boxes())
    list(session.propagate())
    looks = session.predictor.redetector
    assert looks is not None and 1 in looks and 2 in looks
    session.remove_object(2)
    assert 1 in looks and 2 not in looks
    session.reset()
    assert 1 not in looks
    assert tiny_segmenter().start(np.stack([video.image(0)]), prompts=video.first_boxes()).predictor.redetector is None


def test_a_given_mask_is_the_look_where_there_is_one() -> None:
    from qmra.data.boxes import Box
    from qmra.inference.predict import first_masks
    from qmra.inference.prompts import Prompt

    network = torch.zeros(2, 8, 10)
    network[:, 2:4, 2:5] = 0.9
    given = np.zeros((16, 20), bool)
    given[0:4, 10:20] = True  # at twice the working size
    tiny = np.zeros((16, 20), bool)
    tiny[0, 0] = True  # a quarter of a working pixel: the network's mask stays
    masks = first_masks([Prompt(1, 0, Box(10, 0, 20, 4), given), Prompt(2, 0, Box(0, 0, 1, 1), tiny)], network)
    assert torch.equal(masks[0].nonzero().unique(dim=0), torch.tensor([[r, c] for r in range(2) for c in range(5, 10)]))
    assert torch.equal(masks[1], (network[1] > 0.5).float())
