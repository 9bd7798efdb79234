import numpy as np
import pytest
import torch

from qmra.data import Box, box_from_mask, render_box_map
from qmra.errors import ConfigError
from qmra.inference import InferenceSettings
from qmra.inference.adapt import adapt, adapted_copy
from tests.inference.helpers import clip, tiny_segmenter


def _first_frame(video):
    image = torch.from_numpy(video.image(0)).permute(2, 0, 1).float() / 255
    boxes = video.first_boxes()
    box_maps = torch.from_numpy(np.stack([render_box_map(boxes[i], image.shape[-2:]) for i in sorted(boxes)]))[:, None]
    return image, box_maps


@pytest.mark.slow
def test_adaptation_learns_the_boxes_of_the_frame_on_a_copy():
    segmenter = tiny_segmenter()
    original = {k: v.clone() for k, v in segmenter.model.state_dict().items()}
    image, box_maps = _first_frame(clip(frames=1, objects=2, height=64, width=80))
    model = adapted_copy(segmenter.model)
    report = adapt(model, image, box_maps, masks=None, steps=40, lr=1e-3, crop=64)
    assert report.steps == 40 and report.seconds > 0
    assert report.last_loss < 0.7 * report.first_loss  # stage 1 fits this frame's boxes
    assert all(torch.equal(v, segmenter.model.state_dict()[k]) for k, v in original.items())  # the caller's model is untouched
    changed = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.equal(v, original[k])]
    assert any("track_decoder" in k for k in changed)
    # BatchNorm statistics are not re-estimated from a few views of one frame.
    assert all(torch.equal(v, original[k]) for k, v in model.state_dict().items() if "running_" in k)


@pytest.mark.slow
def test_a_session_adapts_once_per_propagation_and_changes_the_masks():
    video = clip(frames=4, objects=2)
    frames = [video.image(i) for i in range(video.num_frames)]
    plain = tiny_segmenter()
    adapting = tiny_segmenter(InferenceSettings(adapt_steps=5, adapt_lr=1e-3))
    results = {}
    for name, segmenter in (("plain", plain), ("adapting", adapting)):
        session = segmenter.start(frames)
        for object_id, box in video.first_boxes().items():
            session.add_box(object_id, box)
        results[name] = [r.object_probabilities[1] for _, r in session.propagate()]
        if name == "plain":
            assert session.adaptation is None and session.model is segmenter.model
        else:
            assert session.adaptation is not None and session.adaptation.steps == 5
            assert session.model is not segmenter.model  # an adapted copy; the segmenter's own stays as it was
    assert not np.allclose(results["plain"][2], results["adapting"][2])
    assert torch.equal(plain.model.track_decoder.predict.weight, adapting.model.track_decoder.predict.weight)


@pytest.mark.parametrize("changes", [{"adapt_steps": -1}, {"adapt_lr": 0.0}, {"adapt_seed": -1}, {"adapt_seed": 1.5},
                                     {"adapt_average": 0}, {"adapt_average": 2.0},
                                     {"adapt_mask_weight": -0.5}, {"adapt_mask_weight": float("nan")}])
def test_bad_adaptation_settings(changes):
    with pytest.raises(ConfigError):
        InferenceSettings(**changes)


def test_objects_that_start_later_run_on_a_network_adapted_to_their_own_frame():
    """Object 2 starts on frame 2, after object 1 was adapted to on frame 0. It must not use object
    1's adapted network (the old behaviour): it gets a copy of the segmenter's network adapted to
    frame 2, so its masks equal those of a run where it is the only object; object 1 is unaffected."""
    video = clip(frames=5, objects=2)
    frames = [video.image(i) for i in range(video.num_frames)]
    boxes = video.first_boxes()
    from qmra.data.boxes import box_from_mask

    late_box = box_from_mask(video.labels(2) == 2)
    segmenter = tiny_segmenter(InferenceSettings(adapt_steps=3, adapt_lr=1e-3))

    def run(prompts):
        session = segmenter.start(frames)
        for object_id, box, frame in prompts:
            session.add_box(object_id, box, frame=frame, predict=False)
        probabilities = {i: [] for i, _, _ in prompts}
        for _, result in session.propagate():
            for object_id in result.object_probabilities:
                probabilities[object_id].append(result.object_probabilities[object_id])
        return session, probabilities

    both, together = run([(1, boxes[1], 0), (2, late_box, 2)])
    _, first_alone = run([(1, boxes[1], 0)])
    _, late_alone = run([(2, late_box, 2)])
    assert sorted(both.adaptations) == [0, 2] and both.adaptation is both.adaptations[0]
    assert len(together[2]) == 3 and all(np.allclose(a, b, atol=1e-5) for a, b in zip(together[2], late_alone[2]))
    assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(together[1], first_alone[1]))


def test_a_box_added_on_the_frame_just_done_adapts_to_that_frame():
    """Driving the loop with step(): object 2 boxed on the frame just done (the redo path) gets a
    network adapted to that frame, the same as when it is the only object starting there."""
    from qmra.data.boxes import box_from_mask

    video = clip(frames=3, objects=2)
    frames = [video.image(i) for i in range(video.num_frames)]
    box = box_from_mask(video.labels(1) == 2)
    segmenter = tiny_segmenter(InferenceSettings(adapt_steps=3, adapt_lr=1e-3))
    session = segmenter.start(frames)
    session.add_box(1, video.first_boxes()[1], predict=False)
    session.step(frames[0])
    session.step(frames[1])
    redone = session.add_box(2, box, frame=1)
    assert sorted(session.adaptations) == [0, 1]
    alone = segmenter.start(frames)
    alone.add_box(2, box, frame=1, predict=False)
    only = dict(alone.propagate())[1]
    assert np.allclose(redone.object_probabilities[2], only.object_probabilities[2], atol=1e-5)


def test_the_views_show_the_object_across_a_wide_range_of_scales():
    """Objects grow and shrink as they move (parkour's runner triples in area): the views the network
    adapts on must show the boxed object at scales at least 2.5x apart, not only near its first size
    (a 60-100 % window, the old range, gives at most 1.67x and lost the runner as he came closer)."""
    from qmra.inference.adapt import _clip

    image = torch.rand(3, 180, 320)
    box_map = torch.from_numpy(render_box_map(Box(150, 80, 170, 110), (180, 320)))
    rng = np.random.default_rng(0)
    widths = []
    for _ in range(40):
        _, boxes, _, _ = _clip(image, box_map, None, 64, rng)
        widths += [int(b[0].any(dim=0).sum()) for b in boxes]
    assert min(widths) > 0 and max(widths) / min(widths) >= 2.5


@pytest.mark.parametrize("height, width", [(192, 256), (320, 427), (480, 854)])
def test_the_views_zoom_the_same_on_small_and_large_frames(height, width):
    """The views show the object at 0.8-2.3x its size in the frame whatever the frame's size (as on
    320-pixel validation frames with 256-pixel views). A fixed 256-pixel view enlarged the objects of
    192-pixel frames up to 3.8x (the demo lost its rectangle); frames past 480 pixels are capped so
    adaptation's cost stays bounded."""
    from qmra.inference.adapt import CROP_LIMITS, _clip, view_side

    image = torch.rand(3, height, width)
    box = Box(width * 0.45, height * 0.4, width * 0.55, height * 0.55)
    box_map = torch.from_numpy(render_box_map(box, (height, width)))
    crop = view_side(height, width)
    assert CROP_LIMITS[0] <= crop <= CROP_LIMITS[1] and (height != 320 or crop == 256)
    rng = np.random.default_rng(0)
    zooms = []
    for _ in range(60):
        _, boxes, _, _ = _clip(image, box_map, None, crop, rng)
        zooms += [int(b[0].any(dim=0).sum()) / box.width for b in boxes]
    assert min(zooms) >= 0.75 * min(1, CROP_LIMITS[1] / (0.8 * height)) and max(zooms) <= 2.4
    assert max(zooms) / min(zooms) >= 2.2


def test_the_adaptation_seed_reaches_the_views_and_one_seed_repeats():
    video = clip(frames=3, objects=1)
    frames = [video.image(i) for i in range(video.num_frames)]

    def last_probabilities(seed: int) -> np.ndarray:
        session = tiny_segmenter(InferenceSettings(adapt_steps=2, adapt_lr=1e-3, adapt_seed=seed)).start(frames)
        session.add_box(1, video.first_boxes()[1], predict=False)
        return [r for _, r in session.propagate()][-1].object_probabilities[1]

    first = last_probabilities(0)
    assert np.array_equal(first, last_probabilities(0))
    assert not np.allclose(first, last_probabilities(1))


def test_the_mask_weight_decides_whether_the_pseudo_label_teaches():
    """With weight 0 the first-frame mask target changes nothing (stage 1 learns from the box alone);
    with weight 1 another target gives other weights."""
    segmenter = tiny_segmenter()
    image, box_maps = _first_frame(clip(frames=1, objects=1, height=64, width=80))
    full, empty = box_maps.clone(), torch.zeros_like(box_maps)

    def adapted(masks, weight):
        model = adapted_copy(segmenter.model)
        adapt(model, image, box_maps, masks=masks, steps=2, lr=1e-3, crop=64, mask_weight=weight, seed=0)
        return model.state_dict()

    for weight, same in ((0.0, True), (1.0, False)):
        a, b = adapted(full, weight), adapted(empty, weight)
        assert all(torch.equal(a[k], b[k]) for k in a) is same


def test_the_session_passes_its_mask_weight_to_adaptation(monkeypatch):
    import qmra.inference.adapt as adapt_module

    seen = []
    real = adapt_module.adapt
    monkeypatch.setattr(adapt_module, "adapt", lambda *a, **k: seen.append(k["mask_weight"]) or real(*a, **k))
    video = clip(frames=2, objects=1)
    session = tiny_segmenter(InferenceSettings(adapt_steps=1, adapt_mask_weight=0.0)).start([video.image(i) for i in range(2)])
    session.add_box(1, video.first_boxes()[1], predict=False)
    list(session.propagate())
    assert seen == [0.0]


def test_given_masks_are_the_stage_2_targets_and_a_box_alone_keeps_the_pseudo_label(monkeypatch):
    import qmra.inference.adapt as adapt_module

    seen = []
    real = adapt_module.adapt

    def spy(model, image, box_maps, masks, *args, **kwargs):
        seen.append((masks.clone(), kwargs["mask_weight"]))
        return real(model, image, box_maps, masks, *args, **kwargs)

    monkeypatch.setattr(adapt_module, "adapt", spy)
    video = clip(frames=2, objects=2)
    mask = video.labels(0) == 1
    mask[: mask.shape[0] // 2] = False  # its lower half: a shape the network would not guess
    segmenter = tiny_segmenter(InferenceSettings(adapt_steps=1, adapt_mask_weight=0.5, resolution=None))
    boxed = segmenter.start([video.image(i) for i in range(2)])
    boxed.add_box(1, box_from_mask(mask), predict=False)
    boxed.add_box(2, video.first_boxes()[2], predict=False)
    list(boxed.propagate())
    given = segmenter.start([video.image(i) for i in range(2)])
    given.add_mask(1, mask, predict=False)
    given.add_box(2, video.first_boxes()[2], predict=False)
    list(given.propagate())
    (pseudo, weight), (targets, given_weight) = seen
    assert weight == given_weight == 0.5  # the settings' weight either way
    assert torch.equal(targets[0, 0].bool(), torch.from_numpy(mask)) and not torch.equal(pseudo[0, 0], targets[0, 0])
    assert torch.equal(targets[1], pseudo[1])  # object 2, boxed alone: the network's own mask in its box


def test_stage_1_answers_the_box_around_its_own_mask_with_mask_box_and_the_given_box_else(monkeypatch):
    """A loose box taught adaptation that the background inside it is the object (validation with
    boxes 10 % loose a side: 66.0 adapted against 70.0 not): with ``adapt_target="mask-box"``, stage 1
    learns to answer the box around the network's own first-frame mask, while the memory views keep
    the box the user gave (what inference gives them)."""
    import qmra.inference.adapt as adapt_module
    from qmra.inference.adapt import _clip, boxes_around

    masks = torch.zeros(2, 1, 40, 60)
    masks[0, 0, 10:20, 30:45] = 1
    given = torch.zeros(2, 1, 40, 60)
    given[:, 0, 5:30, 20:55] = 1
    around = boxes_around(masks, given)
    assert torch.equal(around[0, 0].nonzero().min(0).values, torch.tensor([10, 30]))
    assert torch.equal(around[0, 0].nonzero().max(0).values, torch.tensor([19, 44]))
    assert around[0].sum() == 10 * 15 and torch.equal(around[1], given[1])  # empty mask: the given box
    # Each view's stage-1 answer is the inner box seen through the same window as the given box.
    rng = np.random.default_rng(0)
    _, boxes, _, answers = _clip(torch.rand(3, 40, 60), given[0, 0], None, 32, rng, around[0, 0])
    assert all(0 < a.sum() < b.sum() for a, b in zip(answers, boxes))
    assert all(torch.equal(a, a * b) for a, b in zip(answers, boxes))  # inside the given box's view
    # A session hands the boxes around its pseudo-labels to adaptation only with "mask-box".
    seen = []
    real = adapt_module.adapt
    monkeypatch.setattr(adapt_module, "adapt", lambda *a, **k: seen.append((a[2], a[3], k["track_boxes"])) or real(*a, **k))
    video = clip(frames=2, objects=1)
    for target in ("box", "mask-box"):
        session = tiny_segmenter(InferenceSettings(adapt_steps=1, adapt_target=target)).start([video.image(i) for i in range(2)])
        session.add_box(1, video.first_boxes()[1], predict=False)
        list(session.propagate())
    (_, _, none), (box_maps, pseudo, track_boxes) = seen
    assert none is None and torch.equal(track_boxes, boxes_around(pseudo, box_maps))


def test_a_network_without_stage_1_cannot_adapt_stage_1_alone():
    with pytest.raises(ConfigError, match="1stage"):
        tiny_segmenter(InferenceSettings(adapt_steps=2, adapt_mask_weight=0.0), variant="1stage")
    segmenter = tiny_segmenter(variant="1stage")
    image, box_maps = _first_frame(clip(frames=1, objects=1, height=64, width=80))
    with pytest.raises(ConfigError, match="1stage"):
        adapt(adapted_copy(segmenter.model), image, box_maps, masks=box_maps, steps=1, lr=1e-3, crop=64, mask_weight=0.0)
    # With a mask weight it adapts its one prediction to the pseudo-label.
    report = adapt(adapted_copy(segmenter.model), image, box_maps, masks=box_maps, steps=1, lr=1e-3, crop=64, mask_weight=1.0)
    assert report.steps == 1


@pytest.mark.parametrize("variant", ["full", "2stage-noalign"])
def test_stage_1_alone_skips_stage_2_and_learns_exactly_what_the_full_forward_would(monkeypatch, variant):
    import qmra.inference.adapt as adapt_module
    from qmra.model import QMRALoss

    segmenter = tiny_segmenter(variant=variant)
    image, box_maps = _first_frame(clip(frames=1, objects=2, height=64, width=80))
    masks = box_maps.clone()
    masks[..., :4] = 0  # a target other than the box, so that noalign's mask target matters

    def adapted() -> dict:
        model = adapted_copy(segmenter.model)
        adapt(model, image, box_maps, masks=masks, steps=3, lr=1e-3, crop=64, mask_weight=0.0, seed=0)
        return model.state_dict()

    calls = []
    stage1 = adapt_module._stage1_loss
    monkeypatch.setattr(adapt_module, "_stage1_loss", lambda *a: calls.append(1) or stage1(*a))
    fast = adapted()
    assert len(calls) == 3

    def full_forward(model, images, boxes, targets, answers, dice_weight):
        output = model(images[:, :-1], boxes[:, :-1], images[:, -1])
        return QMRALoss(dice_weight)(output, targets[:, -1], answers[:, -1]).track

    monkeypatch.setattr(adapt_module, "_stage1_loss", full_forward)
    reference = adapted()
    assert all(torch.allclose(fast[k], reference[k], atol=1e-6) for k in fast)
    assert any(not torch.equal(fast[k], segmenter.model.state_dict()[k]) for k in fast if "track_decoder" in k)


def test_averaged_weights_are_the_mean_of_the_copies_and_counters_stay():
    from qmra.inference import random_model
    from qmra.inference.adapt import average_weights
    from tests.tiny import TINY
    from qmra.model import ModelConfig

    models = [random_model(ModelConfig(**TINY.to_dict()), seed=s) for s in range(3)]
    expected = {k: torch.stack([m.state_dict()[k].float() for m in models]).mean(0) for k in models[0].state_dict()}
    counters = {k: v.clone() for k, v in models[0].state_dict().items() if not v.is_floating_point()}
    soup = average_weights(models)
    assert soup is models[0]
    for name, value in soup.state_dict().items():
        if value.is_floating_point():
            assert torch.allclose(value, expected[name], atol=1e-6), name
        else:
            assert torch.equal(value, counters[name])


def test_a_session_averages_the_adaptations_with_their_seeds_into_one_network():
    """--adapt-average 2 with --adapt-seed 1: one network, the weight average of the adaptations a
    single network would make with seeds 2 and 3; one network's memory."""
    video = clip(frames=2, objects=1)
    frames = [video.image(i) for i in range(video.num_frames)]

    def session(**changes):
        s = tiny_segmenter(InferenceSettings(adapt_steps=2, adapt_lr=1e-3, **changes)).start(frames)
        s.add_box(1, video.first_boxes()[1], predict=False)
        list(s.propagate())
        return s

    soup = session(adapt_seed=1, adapt_average=2)
    singles = [session(adapt_seed=seed) for seed in (2, 3)]
    assert len(soup.models) == 1 and soup.adaptation.copies == 2
    for name, value in soup.model.state_dict().items():
        if value.is_floating_point():
            mean = (singles[0].model.state_dict()[name] + singles[1].model.state_dict()[name]) / 2
            assert torch.allclose(value, mean, atol=1e-6), name
    assert soup.memory_nbytes() == singles[0].memory_nbytes()
    assert not torch.equal(singles[0].model.track_decoder.predict.weight, singles[1].model.track_decoder.predict.weight)


def test_a_session_adapts_once_per_frame_and_boxes_and_runs_again_to_the_same_masks(monkeypatch):
    import qmra.inference.adapt as adapt_module

    calls = []
    real = adapt_module.adapt
    monkeypatch.setattr(adapt_module, "adapt", lambda *a, **k: calls.append(1) or real(*a, **k))
    video = clip(frames=3, objects=1)
    box = video.first_boxes()[1]
    session = tiny_segmenter(InferenceSettings(adapt_steps=2, adapt_lr=1e-3)).start(
        [video.image(i) for i in range(3)], prompts={1: box})
    first = [r.labels for _, r in session.propagate()]
    again = [r.labels for _, r in session.propagate()]
    assert len(calls) == 1 and session.adaptation is not None
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    session.reset()
    session.add_box(1, box, predict=False)
    list(session.propagate())
    assert len(calls) == 1  # the same box on the same frame: the kept network
    session.reset()
    session.add_box(1, (box.x0 + 2, box.y0, box.x1, box.y1), predict=False)  # another box: adapted anew
    list(session.propagate())
    assert len(calls) == 2
