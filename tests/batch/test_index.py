"""The digest a batch keeps of how each video was made: what changes it and what must not."""

import dataclasses

from qmra.batch.index import SETTINGS_ADDED_LATER, run_fingerprint
from qmra.batch.job import BatchOutputs
from qmra.inference import InferenceSettings


def test_a_setting_added_later_keeps_earlier_digests_at_its_old_behaviour(tmp_path):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"weights")
    # InferenceSettings as it was before the settings added later: the same fields and values without them.
    before = dataclasses.make_dataclass("InferenceSettings", [
        (f.name, f.type, dataclasses.field(default=f.default)) for f in dataclasses.fields(InferenceSettings)
        if f.name not in SETTINGS_ADDED_LATER])
    outputs = BatchOutputs(tmp_path / "out", overlay=True)
    assert run_fingerprint(weights, InferenceSettings(), outputs) == run_fingerprint(weights, before(), outputs)
    assert (run_fingerprint(weights, InferenceSettings(previous_every=2), outputs)
            != run_fingerprint(weights, InferenceSettings(), outputs))
    assert (run_fingerprint(weights, InferenceSettings(min_piece=0.1), outputs)
            != run_fingerprint(weights, InferenceSettings(), outputs))
    assert (run_fingerprint(weights, InferenceSettings(redetect=True), outputs)
            != run_fingerprint(weights, InferenceSettings(), outputs))
    assert (run_fingerprint(weights, InferenceSettings(mem_every=5), outputs)
            != run_fingerprint(weights, InferenceSettings(), outputs))


#: InferenceSettings' fields when batch digests were introduced.
FIELDS_OF_THE_FIRST_DIGESTS = {
    "mem_every", "max_memory_frames", "resolution", "precision", "channels_last", "pipeline", "attention",
    "memory_top_k", "stage2_box", "fold_crm", "adapt_steps", "adapt_lr", "adapt_mask_weight", "adapt_seed",
    "adapt_average", "ensemble", "threads", "compile"}
#: Settings added since whose default changed results (greyscale video is adapted): new digests are right.
ADDED_WITH_NEW_RESULTS = {"grey_adapt_steps"}


def test_every_setting_added_since_the_first_digests_is_accounted_for():
    """A new setting either keeps earlier batches' digests at the behaviour they had
    (SETTINGS_ADDED_LATER) or changed results by default: decide which when adding it."""
    added = {f.name for f in dataclasses.fields(InferenceSettings)} - FIELDS_OF_THE_FIRST_DIGESTS
    assert added == set(SETTINGS_ADDED_LATER) | ADDED_WITH_NEW_RESULTS
    assert all(getattr(InferenceSettings(), name) == value for name, value in SETTINGS_ADDED_LATER.items())
