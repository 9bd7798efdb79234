"""The path box's suggestions: folders, videos and TIFF stacks; single-page TIFFs are frames."""

from __future__ import annotations

from PIL import Image

from qmra.ui import listing
from qmra.ui.listing import folder_listing


def test_a_folder_lists_its_folders_videos_and_stacks_and_counts_its_frames(tmp_path, monkeypatch):
    pages = [Image.new("L", (8, 6), shade) for shade in (0, 128)]
    pages[0].save(tmp_path / "cells 10.tif", save_all=True, append_images=pages[1:])
    pages[0].save(tmp_path / "cells 2.tiff", save_all=True, append_images=pages[1:])
    for name in ("f1.tif", "f2.png", "f3.jpg"):
        pages[0].convert("RGB").save(tmp_path / name)
    (tmp_path / "clip.mp4").write_bytes(b"")
    (tmp_path / "runs").mkdir()
    (tmp_path / ".hidden.mp4").write_bytes(b"")
    answer = folder_listing(tmp_path)
    assert answer["entries"] == [{"name": "cells 2.tiff", "kind": "stack"}, {"name": "cells 10.tif", "kind": "stack"},
                                 {"name": "clip.mp4", "kind": "video"}, {"name": "runs", "kind": "folder"}]
    assert answer["frames"] == 3 and answer["dir"] == str(tmp_path)
    # A folder of many TIFFs is a frame folder: its files are not opened one by one.
    monkeypatch.setattr(listing, "MAX_STACK_PROBES", 2)
    answer = folder_listing(tmp_path)
    assert [e["name"] for e in answer["entries"]] == ["clip.mp4", "runs"] and answer["frames"] == 5
