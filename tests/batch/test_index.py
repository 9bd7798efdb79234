"""The digest a batch keeps of how each video was made: what changes it and what must not."""

import dataclasses

from qmra.batch.index import run_fingerprint
from qmra.batch.job import BatchOutputs
from qmra.inference import InferenceSettings


def test_a_setting_added_later_keeps_earlier_digests_at_its_old_behaviour(tmp_path):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"weights")
    # InferenceSettings as it was before previous_every and min_piece: the same fields and values without them.
    before = dataclasses.make_dataclass("InferenceSettings", [
        (f.name, f.type, dataclasses.field(default=f.default)) for f in dataclasses.fields(InferenceSettings)
        if f.name not in ("previous_every", "min_piece")])
    outputs = BatchOutputs(tmp_path / "out", overlay=True)
    assert run_fingerprint(weights, InferenceSettings(), outputs) == run_fingerprint(weights, before(), outputs)
    assert (run_fingerprint(weights, InferenceSettings(previous_every=2), outputs)
            != run_fingerprint(weights, InferenceSettings(), outputs))
    assert (run_fingerprint(weights, InferenceSettings(min_piece=0.1), outputs)
            != run_fingerprint(weights, InferenceSettings(), outputs))
    assert (run_fingerprint(weights, InferenceSettings(mem_every=5), outputs)
            != run_fingerprint(weights, InferenceSettings(), outputs))
