import numpy as np
import pytest
import torch
from PIL import Image

from qmra.data.clips import NoUsableClip
from qmra.errors import QmraError
from qmra.training import DataSpec, TrainConfig, Trainer
from qmra.training.distributed import DistributedContext
from qmra.training.mixing import DRAWS, MixedClips
from tests.tiny import TINY


class _Numbered(torch.utils.data.Dataset):
    """Clips that say which source and item made them; items in ``fails`` cannot be made."""

    def __init__(self, name: int, fails: set[int] | None = None, length: int = 1000) -> None:
        self.name, self.fails, self.length = name, fails, length
        self.calls = 0

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        self.calls += 1
        if self.fails is None or index in self.fails:
            raise NoUsableClip(f"source {self.name}: no usable clip for item {index}")
        return {"source": torch.tensor(self.name), "item": torch.tensor(index)}


def _drawn(mix: MixedClips, numbers: range) -> list[tuple[int, int]]:
    return [(int(c["source"]), int(c["item"])) for c in (mix[n] for n in numbers)]


def test_a_clip_that_cannot_be_made_is_drawn_again_and_the_other_draws_stay_as_they_were():
    """A long run must not end because one source rejected one clip (a small target at a small
    size): that sample number draws again, from its own random stream, while every other sample
    number gets the clip it always got (a resumed run sees the same data)."""
    whole = MixedClips([_Numbered(0, set()), _Numbered(1, set())], [1, 1], seed=3)
    reference = _drawn(whole, range(200))
    failing = {item for source, item in reference[:100] if source == 1}
    mix = MixedClips([_Numbered(0, set()), _Numbered(1, failing)], [1, 1], seed=3)
    drawn = _drawn(mix, range(200))
    changed = [n for n in range(200) if drawn[n] != reference[n]]
    assert changed and all(reference[n][0] == 1 and reference[n][1] in failing for n in changed)
    assert all(not (source == 1 and item in failing) for source, item in drawn)
    assert drawn == _drawn(mix, range(200))  # still a pure function of the sample number
    # A source that can never make a clip ends the draw after DRAWS tries, with its own error.
    never = MixedClips([_Numbered(0)], [1], seed=0)
    with pytest.raises(NoUsableClip, match="source 0"):
        never[5]
    assert never.sources[0].calls == DRAWS


def test_a_source_that_makes_no_clip_stops_the_run_before_it_starts_and_names_its_spec(tmp_path):
    """Cut-outs far too small for the clip size: every clip is rejected. The run must stop at once,
    naming the --data spec and the size (exit code 2 from the command line), not in a data loader's
    worker after its start-up."""
    (tmp_path / "pack" / "objects").mkdir(parents=True)
    (tmp_path / "pack" / "backgrounds").mkdir()
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[5:35, 10:30] = (200, 50, 50, 255)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "pack" / "objects" / "a.png")
    Image.fromarray(np.full((50, 70, 3), 120, np.uint8)).save(tmp_path / "pack" / "backgrounds" / "b.jpg")
    spec = f"flying:{tmp_path / 'pack'}:0.003-0.005"
    config = TrainConfig(steps=1, batch_size=2, size=48, workers=0)
    cpu = DistributedContext(0, 1, torch.device("cpu"))
    with pytest.raises(QmraError, match=rf"--data {spec}: .*at 48x48.*larger --size"):
        Trainer(TINY, config, [DataSpec.parse("synthetic:2"), DataSpec.parse(spec)], tmp_path / "run", cpu)
    assert not (tmp_path / "run" / "last.safetensors").exists()
