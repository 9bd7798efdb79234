import pytest

from benchmarks.ship_default_weights import candidate_seeds, candidate_settings, choose, draws_per_seed
from qmra.inference.settings import InferenceSettings


def test_candidates_of_any_ensemble_size_see_the_same_adaptation_draws():
    """A 3-network ensemble with seeds 0, 1, 2 adapts with draws 0..8 (copies 3s..3s+2); a single
    network is compared on those same 9 draws, not on 3 luckier or unluckier ones."""
    seeds = [0, 1, 2]
    assert candidate_seeds(seeds, 3, 3) == [0, 1, 2]
    assert candidate_seeds(seeds, 1, 3) == list(range(9))
    assert candidate_seeds(seeds, 2, 4) == list(range(6))  # each 2-copy seed s draws 2s, 2s+1: 0..11, as the 4s
    assert candidate_seeds([0, 1], 1, 1) == [0, 1]
    draws = lambda s, n: {n * seed + i for seed in s for i in range(n)}
    assert draws(candidate_seeds(seeds, 2, 4), 2) == draws(seeds, 4)
    with pytest.raises(SystemExit):
        candidate_seeds(seeds, 2, 3)


def test_a_candidate_names_every_setting_the_weights_recommend():
    label, settings = candidate_settings("320:20:1e-5:30:0:3")
    assert label == "320:20:1e-5:30:0:3"
    assert (settings.resolution, settings.adapt_steps, settings.adapt_lr, settings.memory_top_k,
            settings.adapt_mask_weight, settings.ensemble) == (320, 20, 1e-5, 30, 0.0, 3)
    assert candidate_settings("native:0")[1].resolution is None and candidate_settings("native:0")[1].ensemble == 1
    _, last = candidate_settings("384:0:1e-5:all:0:1:1:largest-blob:5:bf16")
    assert (last.stage2_box, last.mem_every, last.precision) == ("largest-blob", 5, "bf16")
    assert candidate_settings("384:0")[1].precision == "fp32"
    _, renewed = candidate_settings("384:0:1e-5:all:0:1:1:largest-blob:5:fp32:3")
    assert (renewed.mem_every, renewed.previous_every) == (5, 3) and candidate_settings("384:0")[1].previous_every == 1
    _, cleaned = candidate_settings("384:0:1e-5:all:0:1:1:largest-blob:5:fp32:2:0.1")
    assert (cleaned.previous_every, cleaned.min_piece) == (2, 0.1) and candidate_settings("384:0")[1].min_piece == 0.0
    _, targeted = candidate_settings("384:10:1e-5:all:0:1:1:largest-blob:5:fp32:2:0.1:plain:mask-box")
    assert (targeted.redetect, targeted.adapt_target) == (False, "mask-box")
    assert candidate_settings("384:10")[1].adapt_target == "box"


def test_an_averaged_adaptation_counts_its_draws_like_an_ensemble():
    _, soup = candidate_settings("320:20:1e-5:30:0:1:3")
    _, both = candidate_settings("320:20:1e-5:30:0:2:3")
    assert soup.adapt_average == 3 and soup.ensemble == 1 and draws_per_seed(soup) == 3
    assert draws_per_seed(both) == 6 and draws_per_seed(candidate_settings("320:20")[1]) == 1


def test_a_candidate_names_stage2s_box():
    assert candidate_settings("320:20:1e-5:30:0:1:1:largest-blob")[1].stage2_box == "largest-blob"
    assert candidate_settings("320:20:1e-5:30:0:3")[1].stage2_box == "all"


def test_fewer_networks_win_within_the_tolerance_and_only_there():
    single, ensemble, soup = (f"320:20:1e-5:30:0:{networks}:{average}:largest-blob"
                              for networks, average in [(1, 1), (3, 1), (1, 3)])
    trials = {"a.safetensors": {single: {"J&F-Mean": 0.560}, ensemble: {"J&F-Mean": 0.575}, soup: {"J&F-Mean": 0.568}}}
    assert choose(trials, 0.0) == ("a.safetensors", ensemble)  # no tolerance: the best score
    assert choose(trials, 1.0) == ("a.safetensors", soup)  # one network per frame, 0.7 behind: the better of the two
    assert choose(trials, 2.0) == ("a.safetensors", soup)
    trials["a.safetensors"][soup]["J&F-Mean"] = 0.555
    assert choose(trials, 1.0) == ("a.safetensors", ensemble)  # both single networks trail by more than a point
    assert choose(trials, 2.0) == ("a.safetensors", single)


def test_the_memory_schedule_is_a_candidate_field_and_recommended():
    from benchmarks.ship_default_weights import CHOSEN
    from qmra.inference import InferenceSettings

    assert candidate_settings("384:20:1e-5:30:0:1:3:largest-blob:5")[1].mem_every == 5
    assert candidate_settings("384:20:1e-5:30:0:1:3:largest-blob")[1].mem_every == InferenceSettings().mem_every
    assert "mem_every" in CHOSEN


def test_a_smaller_working_size_wins_within_the_tolerance():
    small, large, native = "320:20:1e-5:30:0:1:3", "384:20:1e-5:30:0:1:3", "native:20:1e-5:30:0:1:3"
    trials = {"a.safetensors": {small: {"J&F-Mean": 0.560}, large: {"J&F-Mean": 0.566}, native: {"J&F-Mean": 0.568}}}
    assert choose(trials, 0.0) == ("a.safetensors", native)
    assert choose(trials, 0.5) == ("a.safetensors", large)  # native's extra pixels buy 0.2 points: not enough
    assert choose(trials, 1.0) == ("a.safetensors", small)
    trials["a.safetensors"][large]["J&F-Mean"] = 0.590  # 3 points: the larger size wins outright
    assert choose(trials, 1.0) == ("a.safetensors", large)


def test_a_setting_beyond_the_first_candidate_must_pay_by_the_margin():
    from benchmarks.ship_default_weights import choose_with_margin

    trials = {"a.safetensors": {"base": {"J&F-Mean": 0.600}, "blob": {"J&F-Mean": 0.609}, "topk": {"J&F-Mean": 0.605}},
              "b.safetensors": {"base": {"J&F-Mean": 0.590}, "blob": {"J&F-Mean": 0.620}}}
    # b's blob beats b's base by 3 points and is the best of all; a's blob (+0.9) does not pay by 1 point.
    assert choose_with_margin(trials, "base", 1.0) == ("b.safetensors", "blob")
    del trials["b.safetensors"]
    assert choose_with_margin(trials, "base", 1.0) == ("a.safetensors", "base")
    assert choose_with_margin(trials, "base", 0.5) == ("a.safetensors", "blob")


def test_validation_sets_weigh_equally_whatever_their_size(monkeypatch):
    import benchmarks.ship_default_weights as ship

    scores = {"davis": 0.40, "flying": 0.80}
    monkeypatch.setattr(ship, "score_over_seeds", lambda model, davis, settings, seeds, noise: {
        "J&F-Mean": scores[davis], "J&F-range": [scores[davis]] * 2, "per_object": {davis + "_1": scores[davis]},
        "lost": [], "seconds": 1.0})
    combined = ship.score_sets(None, {"davis": ["davis"], "flying": ["flying"]}, None, [0])
    assert combined["J&F-Mean"] == 0.60
    assert set(combined["by_set"]) == {"davis", "flying"} and set(combined["per_object"]) == {"davis_1", "flying_1"}


def test_a_set_with_reencoded_copies_scores_the_mean_over_them_and_weighs_as_one(monkeypatch):
    import benchmarks.ship_default_weights as ship

    scores = {"davis": 0.60, "davis-q95": 0.30, "flying": 0.50}
    lost = {"davis": [], "davis-q95": ["goat_1"], "flying": []}
    monkeypatch.setattr(ship, "score_over_seeds", lambda model, davis, settings, seeds, noise: {
        "J&F-Mean": scores[davis], "J&F-range": [scores[davis]] * 2, "lost": lost[davis], "seconds": 1.0,
        "per_object": {"goat_1" if "davis" in davis else "f_1": scores[davis]}})
    combined = ship.score_sets(None, {"davis": ["davis", "davis-q95"], "flying": ["flying"]}, None, [0])
    assert combined["by_set"]["davis"]["J&F-Mean"] == 0.45 and combined["by_set"]["davis"]["per_object"] == {"goat_1": 0.45}
    assert combined["J&F-Mean"] == 0.475  # (0.45 + 0.50) / 2: the copies do not make the real set weigh more
    assert combined["lost"] == ["goat_1"]  # lost in one copy counts
    assert combined["by_set"]["davis"]["J&F-range"] == [0.30, 0.60]


def test_a_reencoded_copy_changes_the_frames_a_little_and_keeps_the_masks(tmp_path):
    import numpy as np
    from PIL import Image

    from benchmarks.reencode import reencoded_copy
    from qmra.data import DavisDataset

    rng = np.random.default_rng(0)
    frames, masks = tmp_path / "src/JPEGImages/480p/clip", tmp_path / "src/Annotations/480p/clip"
    frames.mkdir(parents=True)
    masks.mkdir(parents=True)
    for index in range(2):
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(frames / f"{index:05d}.jpg", quality=95)
        Image.fromarray((rng.random((24, 32)) > 0.5).astype(np.uint8) * 255).save(masks / f"{index:05d}.png")
    source = DavisDataset(tmp_path / "src")
    copy = reencoded_copy(source, 50, tmp_path / "copy")
    assert copy.names == ["clip"] and copy.root == tmp_path / "copy"
    original, changed = (np.asarray(next(iter(d)).image(1), dtype=int) for d in (source, copy))
    assert 0 < np.abs(original - changed).mean() < 40  # re-encoded: changed, but the same picture
    assert np.array_equal(next(iter(source)).labels(1), next(iter(copy)).labels(1))
    grey = next(iter(reencoded_copy(source, 95, tmp_path / "grey", grey=True))).image(1)
    assert grey.shape == (24, 32, 3) and np.array_equal(grey[..., 0], grey[..., 2])
    assert np.array_equal(next(iter(source)).labels(1), next(iter(DavisDataset(tmp_path / "grey"))).labels(1))
    with pytest.raises(ValueError):
        reencoded_copy(source, 100, tmp_path / "bad")


def test_stored_validation_scores_are_read_back_and_only_missing_pairs_run(tmp_path, monkeypatch):
    import argparse
    import json

    from benchmarks import ship_default_weights as ship
    from qmra.evaluation.box_noise import BoxNoise

    def scores(value):
        return {"J&F-Mean": value, "J&F-range": [value], "per_object": {}, "lost": [], "seconds": 1.0}

    trials = tmp_path / "trials.json"
    trials.write_text(json.dumps({"a.safetensors": {"384:0": scores(0.5)}, "old.safetensors": {"320:0": scores(0.1)}}))
    scored = []
    monkeypatch.setattr(ship, "load_model", lambda path: (path, {}))
    monkeypatch.setattr(ship, "score_sets",
                        lambda model, sets, settings, seeds, noise: scored.append((model, noise)) or scores(0.7))
    args = argparse.Namespace(trials=str(trials), checkpoints="a.safetensors,b.safetensors", candidates="384:0", reencode=[],
                              report=[])
    result = ship.validate(args, {}, [0], 1)
    assert scored == [("b.safetensors", BoxNoise())]  # a's score came from the file
    assert result == {"a.safetensors": {"384:0": scores(0.5)},
                      "b.safetensors": {"384:0": {**scores(0.7), "reencoded": [], "adaptation_seeds": []}}}
    assert set(json.loads(trials.read_text())) == {"a.safetensors", "b.safetensors", "old.safetensors"}
    # A trial that adapts records the adaptation draws it ran, so trials of other seeds are told apart.
    adapted = ship.validate(argparse.Namespace(**{**vars(args), "candidates": "384:10"}), {}, [1, 2], 1)
    assert adapted["b.safetensors"]["384:10"]["adaptation_seeds"] == [1, 2]
    # Scores of another protocol (without the re-encoded copies asked for now) are run again.
    scored.clear()
    result = ship.validate(argparse.Namespace(**{**vars(args), "reencode": [95]}), {}, [0], 1)
    assert [model for model, _ in scored] == ["a.safetensors", "b.safetensors"]
    assert result["a.safetensors"]["384:0"]["reencoded"] == [95]
    # So are scores of other boxes, which the trial then records.
    scored.clear()
    loose = argparse.Namespace(**{**vars(args), "reencode": [95], "box_margin": 0.1})
    result = ship.validate(loose, {}, [0], 1)
    assert scored == [("a.safetensors", BoxNoise(box_margin=0.1)), ("b.safetensors", BoxNoise(box_margin=0.1))]
    assert result["a.safetensors"]["384:0"]["boxes"] == {"box_margin": 0.1, "box_jitter": 0.0, "box_seed": 0}
    scored.clear()
    ship.validate(loose, {}, [0], 1)
    assert scored == []  # read back: the same boxes


def test_reported_videos_are_scored_beside_validation_and_never_choose(tmp_path, monkeypatch):
    import argparse
    import json

    from benchmarks import ship_default_weights as ship

    def scores(value):
        return {"J&F-Mean": value, "J&F-range": [value], "per_object": {}, "lost": [], "seconds": 1.0}

    trials = tmp_path / "trials.json"
    trials.write_text(json.dumps({"a.safetensors": {"384:0": {**scores(0.5), "reencoded": []}}}))
    validated, reported = [], []
    monkeypatch.setattr(ship, "load_model", lambda path: (path, {}))
    monkeypatch.setattr(ship, "DavisDataset", lambda folder: folder)
    monkeypatch.setattr(ship, "score_sets", lambda model, sets, settings, seeds, noise: validated.append(model) or scores(0.7))
    monkeypatch.setattr(ship, "score_over_seeds",
                        lambda model, davis, settings, seeds, noise: reported.append((model, davis)) or scores(0.9))
    args = argparse.Namespace(trials=str(trials), checkpoints="a.safetensors,b.safetensors", candidates="384:0",
                              reencode=[], report=["small"])
    result = ship.validate(args, {}, [0], 1)
    # a's validation came from the file; only its report ran. Reported scores leave J&F-Mean alone.
    assert validated == ["b.safetensors"] and reported == [("a.safetensors", "small"), ("b.safetensors", "small")]
    assert result["a.safetensors"]["384:0"]["J&F-Mean"] == 0.5 and result["b.safetensors"]["384:0"]["J&F-Mean"] == 0.7
    assert result["a.safetensors"]["384:0"]["reported"] == {"small": scores(0.9)}
    assert ship.choose_with_margin(result, "384:0", 1.0) == ("b.safetensors", "384:0")
    # Read back, nothing runs again.
    validated.clear(), reported.clear()
    ship.validate(args, {}, [0], 1)
    assert validated == [] and reported == []


def test_scores_over_adaptation_seeds_are_pooled_and_one_seed_runs_without_adaptation(monkeypatch):
    import benchmarks.ship_default_weights as ship

    by_seed = {0: (0.50, []), 1: (0.70, ["goat_1"]), 2: (0.60, [])}
    monkeypatch.setattr(ship, "score_model", lambda model, davis, settings, noise: {
        "J&F-Mean": by_seed[settings.adapt_seed][0], "per_object": {"goat_1": by_seed[settings.adapt_seed][0]},
        "lost": by_seed[settings.adapt_seed][1], "seconds": 2.0})
    pooled = ship.score_over_seeds(None, None, InferenceSettings(adapt_steps=10), [0, 1, 2])
    assert pooled["J&F-Mean"] == 0.6 and pooled["J&F-range"] == [0.5, 0.7] and pooled["per_object"] == {"goat_1": 0.6}
    assert pooled["lost"] == ["goat_1"] and pooled["seconds"] == 6.0 and set(pooled["by_seed"]) == {"0", "1", "2"}
    alone = ship.score_over_seeds(None, None, InferenceSettings(adapt_steps=0), [0, 1, 2])
    assert alone["J&F-range"] == [0.5, 0.5] and list(alone["by_seed"]) == ["0"]  # seeds change nothing without adaptation


@pytest.mark.parametrize("change", ["dark", "q20", "sepia", "thermal", "every2", "hlg", "pq-read", "blur1.5"])
def test_a_look_changed_copy_keeps_the_masks_and_changes_the_look(tmp_path, change):
    import numpy as np

    from benchmarks.look_changes import changed_copy
    from qmra.data import DavisDataset, SyntheticConfig, SyntheticVideo

    SyntheticVideo(SyntheticConfig(height=24, width=32, num_frames=4, num_objects=1, seed=1), name="clip").write_davis(
        tmp_path / "src")
    source = next(iter(DavisDataset(tmp_path / "src")))
    copy = next(iter(changed_copy(DavisDataset(tmp_path / "src"), change, tmp_path / "copy")))
    step = 2 if change == "every2" else 1
    assert copy.num_frames == 4 // step
    for index in range(copy.num_frames):
        assert np.array_equal(copy.labels(index), source.labels(index * step))
    original, looked = np.asarray(source.image(2), dtype=int), np.asarray(copy.image(2 // step), dtype=int)
    if change == "dark":
        assert looked.mean() < 0.4 * original.mean()
    elif change in ("sepia", "thermal", "hlg"):
        assert np.abs(looked - original).mean() > 10
    elif change == "blur1.5":  # softer: less difference between neighbouring pixels
        assert np.abs(np.diff(looked, axis=1)).mean() < 0.6 * np.abs(np.diff(original, axis=1)).mean()
    elif change == "pq-read":  # through an HDR video and back: the colours kept (4:2:0 blurs the texture)
        assert np.abs(looked.mean((0, 1)) - original.mean((0, 1))).max() < 6
    else:
        assert np.abs(looked - original).mean() < 40
    with pytest.raises(ValueError, match="unknown change"):
        changed_copy(DavisDataset(tmp_path / "src"), "blur", tmp_path / "bad")
