import shutil

import numpy as np
import pytest

from qmra.data import DavisDataset, SyntheticConfig, SyntheticVideo, write_palette_png
from qmra.errors import DataError
from qmra.evaluation import EvaluationResult, ObjectScores, evaluate_davis


@pytest.fixture
def davis17(tmp_path):
    for seed, name in ((1, "alpha"), (2, "beta")):
        SyntheticVideo(SyntheticConfig(height=40, width=56, num_frames=6, num_objects=2, seed=seed), name=name).write_davis(tmp_path / "davis")
    return tmp_path / "davis"


def _copy_truth(davis_root, results):
    for sequence in DavisDataset(davis_root):
        for index in range(sequence.num_frames):
            write_palette_png(results / sequence.name / f"{sequence.frame_names[index]}.png", sequence.labels(index))


def test_truth_as_prediction_scores_one(davis17, tmp_path):
    results = tmp_path / "results"
    _copy_truth(davis17, results)
    result = evaluate_davis(DavisDataset(davis17), results, processes=2)
    assert [o.name for o in result.objects] == ["alpha_1", "alpha_2", "beta_1", "beta_2"]
    assert all(len(o.j) == 4 for o in result.objects)  # first and last frames are not scored
    scores = result.global_scores()
    assert scores["J-Mean"] == scores["F-Mean"] == scores["J&F-Mean"] == 1.0 and scores["J-Decay"] == 0.0


def test_averages_over_objects_not_sequences():
    objects = [ObjectScores("a", 1, np.array([1.0, 1.0]), np.array([1.0, 1.0])),
               ObjectScores("a", 2, np.array([0.5, 0.5]), np.array([0.0, 0.0])),
               ObjectScores("b", 1, np.array([0.0, 0.0]), np.array([1.0, 1.0]))]
    scores = EvaluationResult(objects).global_scores()
    assert scores["J-Mean"] == pytest.approx(0.5)  # (1 + 0.5 + 0) / 3, not ((1 + 0.5) / 2 + 0) / 2
    assert scores["F-Mean"] == pytest.approx(2 / 3)
    assert scores["J-Recall"] == pytest.approx(1 / 3)
    assert scores["J&F-Mean"] == pytest.approx((0.5 + 2 / 3) / 2)


def test_official_csv_files(tmp_path):
    objects = [ObjectScores("bear", 1, np.array([0.8, 0.6, 0.4, 0.2]), np.array([0.9, 0.9, 0.9, 0.9]))]
    global_csv, sequence_csv = EvaluationResult(objects).write_csvs(tmp_path)
    # Decay bins over 4 values: edges [0, 1, 2, 2, 3] → mean(0.8, 0.6) − mean(0.4, 0.2) = 0.4.
    assert global_csv.read_text() == ("J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay\n"
                                      "0.700,0.500,0.500,0.400,0.900,1.000,0.000\n")
    assert sequence_csv.read_text() == "Sequence,J-Mean,F-Mean\nbear_1,0.500,0.900\n"


def test_prediction_problems_name_the_sequence_and_frame(davis17, tmp_path):
    results = tmp_path / "results"
    _copy_truth(davis17, results)
    davis = DavisDataset(davis17, sequences=["alpha"])
    (results / "alpha" / "00003.png").unlink()
    with pytest.raises(DataError, match="sequence alpha frame 00003: prediction missing"):
        evaluate_davis(davis, results, processes=1)
    write_palette_png(results / "alpha" / "00003.png", np.zeros((20, 20), np.uint8))
    with pytest.raises(DataError, match="sequence alpha frame 00003: 00003.png is 20x20, the annotation is 56x40"):
        evaluate_davis(davis, results, processes=1)
    write_palette_png(results / "alpha" / "00003.png", np.full((40, 56), 7, np.uint8))
    with pytest.raises(DataError, match="prediction has object id 7, the sequence has 2 object"):
        evaluate_davis(davis, results, processes=1)
    write_palette_png(results / "alpha" / "00003.png", np.zeros((40, 56), np.uint8))
    shutil.copy(results / "alpha" / "00003.png", results / "alpha" / "00077.png")
    with pytest.raises(DataError, match="frames the sequence does not have: 00077.png"):
        evaluate_davis(davis, results, processes=1)
    with pytest.raises(DataError, match="no predictions folder"):
        evaluate_davis(DavisDataset(davis17, sequences=["beta"]), tmp_path, processes=1)


def test_greyscale_predictions_of_davis_2016(davis_root, tmp_path):
    from PIL import Image

    davis = DavisDataset(davis_root, sequences=["car-shadow"])
    sequence = davis.sequence("car-shadow")
    (tmp_path / "car-shadow").mkdir()
    for index in range(sequence.num_frames):
        mask = sequence.labels(index).astype(np.uint8) * 255
        Image.fromarray(mask, mode="L").save(tmp_path / "car-shadow" / f"{index:05d}.png")
    result = evaluate_davis(davis, tmp_path, processes=1)
    assert result.global_scores()["J-Mean"] == 1.0 and len(result.objects[0].j) == sequence.num_frames - 2


def test_lost_objects_are_those_missing_over_the_last_quarter():
    import numpy as np

    from qmra.evaluation.davis_eval import EvaluationResult, ObjectScores

    kept = ObjectScores("a", 1, np.array([0.9] * 8), np.array([0.9] * 8))
    lost = ObjectScores("b", 1, np.array([0.9] * 6 + [0.05, 0.0]), np.array([0.9] * 8))
    found_again = ObjectScores("c", 1, np.array([0.0] * 6 + [0.5, 0.6]), np.array([0.5] * 8))
    assert EvaluationResult([kept, lost, found_again]).lost_objects() == ["b_1"]
