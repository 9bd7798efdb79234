import os
import stat
from contextlib import contextmanager

import numpy as np
import pytest

from qmra.data import Mp4Writer, write_palette_png
from qmra.data.atomic import atomic_path, write_text_atomic
from qmra.data.rle import RleVideoWriter
from qmra.model import QMRA
from qmra.model.checkpoint import save_checkpoint
from tests.tiny import TINY


@contextmanager
def umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _write_every_kind(folder):
    """One file of each kind qmra writes: a mask PNG, an RLE file, a checkpoint, an overlay video."""
    labels = np.zeros((8, 10), np.uint8)
    labels[2:5, 3:6] = 1
    write_palette_png(folder / "00000.png", labels)
    rle = RleVideoWriter(folder / "masks.json", "v", 8, 10)
    rle.add(0, "00000", labels, [1])
    rle.save()
    save_checkpoint(folder / "w.safetensors", QMRA(TINY))
    with Mp4Writer(folder / "overlay.mp4", 10, 8) as writer:
        writer.write(np.zeros((8, 10, 3), np.uint8))
    return [folder / name for name in ("00000.png", "masks.json", "w.safetensors", "overlay.mp4")]


@pytest.mark.parametrize("mask,expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_get_the_mode_that_open_would_give(tmp_path, mask, expected):
    with umask(mask):
        paths = _write_every_kind(tmp_path)
        with open(tmp_path / "plain.txt", "w") as plain:
            plain.write("x")
    assert _mode(tmp_path / "plain.txt") == expected
    assert {path.name: _mode(path) for path in paths} == {path.name: expected for path in paths}
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_a_replaced_file_keeps_its_mode_and_a_failed_write_leaves_it_alone(tmp_path):
    path = tmp_path / "scores.csv"
    with umask(0o022):
        write_text_atomic(path, "old")
        os.chmod(path, 0o440)  # read-only: kept, and no obstacle to writing the temporary file first
        write_text_atomic(path, "new")
        assert (path.read_text(), _mode(path)) == ("new", 0o440)
        with pytest.raises(RuntimeError):
            with atomic_path(path) as temporary:
                temporary.write_text("half")
                raise RuntimeError("crash")
    assert (path.read_text(), _mode(path)) == ("new", 0o440)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv"]


def test_stale_temporaries_of_a_killed_writer_are_removed_and_nothing_else(tmp_path):
    from qmra.data.atomic import remove_stale_temporaries, temporary_sibling

    left = [temporary_sibling(tmp_path / "overlay.mp4"), temporary_sibling(tmp_path / "00003.png")]
    keep = [tmp_path / "overlay.mp4", tmp_path / ".overlay.notes.tmp.mp4", tmp_path / "other.12345678.tmp.mp4"]
    for path in keep:
        path.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path / "overlay.mp4") == [left[0]]
    assert remove_stale_temporaries(tmp_path) == [left[1]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in keep)
