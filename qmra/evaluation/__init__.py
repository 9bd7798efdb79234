"""DAVIS metrics and benchmark runners that agree with the official toolkit."""

from qmra.evaluation.davis_eval import EvaluationResult, ObjectScores, evaluate_davis, evaluate_sequence, read_prediction
from qmra.evaluation.metrics import boundary_f_measure, boundary_map, region_similarity, statistics

__all__ = ["EvaluationResult", "ObjectScores", "boundary_f_measure", "boundary_map", "evaluate_davis", "evaluate_sequence",
           "read_prediction", "region_similarity", "statistics"]
