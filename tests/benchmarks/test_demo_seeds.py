from benchmarks.demo_seeds import clip_scores, parse_seeds
from qmra.commands.demo import demo_clip
from tests.inference.helpers import tiny_segmenter


def test_seeds_are_a_range_or_a_list():
    assert parse_seeds("0-3") == [0, 1, 2, 3] and parse_seeds("1,4,7") == [1, 4, 7] and parse_seeds("5") == [5]


def test_each_object_of_a_seeds_clip_is_scored_and_the_score_repeats(tmp_path):
    segmenter = tiny_segmenter()
    first = clip_scores(segmenter, 3, tmp_path)
    assert len(first) == 3 and all(0 <= j <= 1 for j in first)
    assert clip_scores(segmenter, 3, tmp_path) == first
    # Each seed is a clip of its own.
    assert demo_clip(seed=3).first_boxes() != demo_clip(seed=1).first_boxes()
