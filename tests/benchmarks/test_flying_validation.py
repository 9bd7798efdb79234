import numpy as np
from PIL import Image

from benchmarks.flying_validation import held_out, render
from qmra.data.flying import parse_box_area
from qmra.data.boxes import box_from_mask


def _pack(root):
    (root / "objects").mkdir(parents=True)
    (root / "backgrounds").mkdir()
    yy, xx = np.mgrid[:60, :60]
    rgba = np.zeros((60, 60, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = ((yy - 30) ** 2 + (xx - 30) ** 2 < 25**2) * 255
    Image.fromarray(rgba, "RGBA").save(root / "objects" / "red.png")
    grey = np.random.default_rng(0).integers(90, 160, (120, 160, 1)).repeat(3, axis=2).astype(np.uint8)
    Image.fromarray(grey).save(root / "backgrounds" / "grey.png")
    return root


def _first_box_fractions(out, names, size):
    fractions = []
    for name in names:
        mask = np.asarray(Image.open(out / "Annotations" / "480p" / name / "00000.png")) > 0
        assert mask.shape == size
        assert len(list((out / "JPEGImages" / "480p" / name).glob("*.jpg"))) == 3
        fractions.append(box_from_mask(mask).area / (size[0] * size[1]))
    return fractions


def test_render_writes_davis_sequences_with_targets_of_the_asked_size(tmp_path):
    pack = _pack(tmp_path / "pack")
    small = render(pack, tmp_path / "small", videos=4, frames=3, size=(96, 160), seed=1,
                   box_area=parse_box_area("0.01-0.03"))
    large = render(pack, tmp_path / "large", videos=4, frames=3, size=(96, 160), seed=1, box_area=(0.2, 0.4))
    assert small == large == [f"flying-{i:02d}" for i in range(4)]
    small_fractions = _first_box_fractions(tmp_path / "small", small, (96, 160))
    large_fractions = _first_box_fractions(tmp_path / "large", large, (96, 160))
    assert max(small_fractions) < 0.05 < 0.1 < min(large_fractions)


def test_the_split_holds_out_about_the_fraction_asked_and_never_davis_files():
    names = [f"stamp-{i}.png" for i in range(2000)]
    share = sum(held_out(name, 0.12) for name in names) / len(names)
    assert 0.10 < share < 0.14
    # A larger fraction only adds names: what validation held out at 0.12 stays held out.
    assert all(held_out(name, 0.5) for name in names if held_out(name, 0.12))
    assert not any(held_out(f"davis-cows-{i:05d}.png", 1.0) for i in range(50))
