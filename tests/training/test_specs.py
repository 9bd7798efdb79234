import pytest

from qmra.errors import QmraError
from qmra.training.specs import DataSpec


def test_parse_specs_with_weights_and_selections():
    assert DataSpec.parse("synthetic") == DataSpec("synthetic", None, None, 1.0, "synthetic")
    spec = DataSpec.parse("davis:/data/davis2016:cows,dog@2.5")
    assert (spec.kind, spec.path, spec.selection, spec.weight) == ("davis", "/data/davis2016", "cows,dog", 2.5)
    assert DataSpec.parse("coco:ann.json:images@0.5").selection == "images"
    assert DataSpec.parse("synthetic:12").selection == "12"


@pytest.mark.parametrize("text,message", [
    ("kinetics:/x", "unknown kind 'kinetics'"),
    ("davis", "davis needs a path"),
    ("coco:ann.json", "coco needs coco:ANNOTATIONS.json:IMAGE_FOLDER"),
    ("synthetic@x", "must be a number"),
    ("synthetic@0", "must be positive"),
    ("synthetic:many", "number of videos"),
])
def test_bad_specs(text, message):
    with pytest.raises(QmraError, match=message):
        DataSpec.parse(text)


def test_davis_selection_and_hold_out(davis_root):
    assert DataSpec.parse(f"davis:{davis_root}:cows,dog").davis().names == ["cows", "dog"]
    kept = DataSpec.parse(f"davis:{davis_root}:-cows,dog,goat,parkour").davis().names
    assert len(kept) == 11 and "cows" not in kept and "breakdance" in kept
    with pytest.raises(QmraError, match="unknown sequence"):
        DataSpec.parse(f"davis:{davis_root}:-nope").davis()
