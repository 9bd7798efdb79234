"""The web app in a real browser (headless Chromium through Selenium): open the page, draw a box with
the mouse, see its mask, run, scrub, export into a folder, check the files. Skips when no Chromium
or chromedriver is installed (apt-get install -y chromium chromium-driver)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from PIL import Image

from qmra.data import open_frames
from qmra.data.video_writer import cutout_frames
from tests.ui.browser import data, draw_box, find_browser, start_browser, wait_until
from tests.ui.conftest import serve

FOUND = find_browser()
pytestmark = pytest.mark.skipif(isinstance(FOUND, str), reason=f"no browser for the UI tests: {FOUND}")


@pytest.fixture(scope="module")
def driver():
    browser = start_browser()
    yield browser
    browser.quit()


def canvas_pixel(driver, x: int, y: int) -> list[int]:
    return driver.execute_script("return Array.from(document.getElementById('canvas').getContext('2d')"
                                 ".getImageData(arguments[0], arguments[1], 1, 1).data)", x, y)


def test_draw_a_box_see_the_mask_run_scrub_and_export(driver, tmp_path, tiny_segmenter, small_video):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    started = time.monotonic()
    with serve(tiny_segmenter, tmp_path, source=small_video) as server:
        driver.get(server.url)
        wait_until(lambda: data(driver, "ready") == "1" and data(driver, "frames") == "8", what="the video")
        wait_until(lambda: driver.execute_script("return document.getElementById('source').textContent.indexOf('reading') < 0"),
                   what="decoding")
        assert data(driver, "maskFrame") == ""

        # A box on frame 3: its mask is computed and shown at once.
        driver.find_element(By.ID, "slider").send_keys(*["\ue014"] * 3)  # → three times
        wait_until(lambda: data(driver, "frame") == "3", what="frame 3")
        draw_box(driver, (20, 16, 76, 64))
        wait_until(lambda: data(driver, "maskFrame") == "3" and data(driver, "busy") == "0", what="the mask of frame 3")
        objects = driver.find_elements(By.CSS_SELECTOR, "#objects li")
        assert [o.get_attribute("data-object") for o in objects] == ["1"]
        assert data(driver, "latencyMs").isdigit()
        session = next(iter(server.sessions.values()))
        keyframe = session.state()["objects"][0]["keyframes"][0]
        x0, y0, x1, y1 = keyframe["box"]
        assert keyframe["frame"] == 3 and max(abs(x0 - 20), abs(y0 - 16), abs(x1 - 76), abs(y1 - 64)) <= 2
        # The box is outlined in object 1's overlay colour (bright red, between dark edges) where it was dragged.
        edge = [canvas_pixel(driver, round((x0 + x1) / 2), round(y0) + dy) for dy in (-1, 0, 1)]
        assert any(r > 150 and g < 130 and b < 130 for r, g, b, _ in edge), edge

        # Run both ways; the progress bar fills and every frame gets a mask.
        driver.find_element(By.ID, "run-both").click()
        wait_until(lambda: data(driver, "job") == "finished", timeout=60, what="the run")
        wait_until(lambda: "8 of 8 frames have every mask" in driver.find_element(By.ID, "run-status").text,
                   what="the run's status")
        assert driver.execute_script("const p = document.getElementById('progress'); return p.value === p.max")

        # Scrub: frame 0 (computed backward) shows its mask.
        driver.find_element(By.ID, "slider").send_keys("\ue012" * 3)  # ← three times
        wait_until(lambda: data(driver, "frame") == "0" and data(driver, "maskFrame") == "0", what="frame 0's mask")

        # Correct object 1 on frame 6 and run forward from there: only frames 6 and 7 are computed.
        driver.find_element(By.ID, "slider").send_keys("\ue014" * 6)
        wait_until(lambda: data(driver, "frame") == "6" and data(driver, "maskFrame") == "6", what="frame 6's mask")
        draw_box(driver, (40, 30, 100, 80))
        wait_until(lambda: data(driver, "busy") == "0" and len(driver.find_elements(By.CSS_SELECTOR, "#objects .keyframe")) == 2,
                   what="the correction")
        assert [k.text.rstrip("×") for k in driver.find_elements(By.CSS_SELECTOR, "#objects .keyframe")] == ["f3", "f6"]
        driver.find_element(By.ID, "run-forward").click()
        wait_until(lambda: "(2 frames computed)" in driver.find_element(By.ID, "run-status").text, timeout=60,
                   what="the corrected run")

        # Export into a folder in the server's start folder.
        field = driver.find_element(By.ID, "export-folder")
        field.clear()
        field.send_keys("exported")
        driver.find_element(By.ID, "exp-cutout").click()
        driver.find_element(By.ID, "exp-redact").click()
        Select(driver.find_element(By.ID, "exp-redact-style")).select_by_value("black")
        driver.find_element(By.ID, "export").click()
        wait_until(lambda: data(driver, "exported"), timeout=60, what="the export")
    out = tmp_path / "exported"
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == [f"{i:05d}.png" for i in range(8)]
    assert sorted(p.name for p in (out / "1").glob("*.png")) == pngs
    rle = json.loads((out / "masks.json").read_text())
    assert rle["video"] == "clip" and len(rle["frames"]) == 8 and (rle["height"], rle["width"]) == (96, 128)
    assert all(set(frame["objects"]) == {"1"} for frame in rle["frames"])
    labels = np.asarray(Image.open(out / "00003.png"))
    assert labels.shape == (96, 128) and set(np.unique(labels)) <= {0, 1}
    assert (out / "overlay.mp4").stat().st_size > 0
    cutout = list(cutout_frames(out / "cutout.webm"))
    assert len(cutout) == 8 and ((cutout[3][..., 3] > 127) == (labels == 1)).mean() > 0.999
    redacted = open_frames(out / "redacted.mp4")  # black over object 1's box
    assert redacted.info.num_frames == 8 and redacted.read(3)[labels == 1].mean() < 25
    assert time.monotonic() - started < 60


def test_open_by_upload_and_by_server_path(driver, tmp_path, tiny_segmenter, small_video):
    from selenium.webdriver.common.by import By

    frames = tmp_path / "frames"
    frames.mkdir()
    for index in range(3):
        Image.new("RGB", (64, 48), (40 * index, 90, 160)).save(frames / f"{index}.png")
    with serve(tiny_segmenter, tmp_path) as server:
        driver.get(server.url)
        wait_until(lambda: data(driver, "session") == "1", what="the page session")
        assert data(driver, "ready") == "0"
        driver.find_element(By.ID, "upload").send_keys(str(small_video))  # the file picker's input
        wait_until(lambda: data(driver, "ready") == "1" and data(driver, "frames") == "8", what="the uploaded video")
        assert "clip: 128×96" in driver.find_element(By.ID, "source").text
        field = driver.find_element(By.ID, "path")
        field.send_keys("frames")
        driver.find_element(By.CSS_SELECTOR, "#open-form button").click()
        wait_until(lambda: data(driver, "frames") == "3", what="the frame folder")
        assert "frames: 64×48, 3 frames" in driver.find_element(By.ID, "source").text
        field.clear()
        field.send_keys(str(small_video))  # outside the start folder, not on the command line
        driver.find_element(By.CSS_SELECTOR, "#open-form button").click()
        wait_until(lambda: "outside the folder" in data(driver, "error"), what="the refusal")
        assert data(driver, "frames") == "3"


def test_while_frames_are_read_and_a_mask_computes_the_page_says_so(driver, tmp_path, tiny_segmenter, small_video,
                                                                      monkeypatch):
    """The slider label and the header say 'reading frames…' until a frame exists (not 'frame 0 (0–-1)'),
    and a drawn box stays on the canvas until its mask replaces it."""
    import threading

    from selenium.webdriver.common.by import By

    from qmra.data.video_seek import SeekingVideoReader
    from qmra.ui.page import Page

    first_frame = threading.Event()
    add = SeekingVideoReader.add
    monkeypatch.setattr(SeekingVideoReader, "add", lambda self, where: first_frame.wait(20) and add(self, where))
    mask_asked, mask_may_go = threading.Event(), threading.Event()
    preview = Page._preview
    monkeypatch.setattr(Page, "_preview", lambda self, at: (mask_asked.set(), mask_may_go.wait(20), preview(self, at)))
    with serve(tiny_segmenter, tmp_path, source=small_video) as server:
        driver.get(server.url)
        wait_until(lambda: data(driver, "ready") == "1", what="the page")
        label = driver.find_element(By.ID, "frame-label").text
        header = driver.find_element(By.ID, "source").text
        first_frame.set()
        assert label == "reading frames…" and "reading frames…" in header and "-1" not in header, (label, header)
        wait_until(lambda: data(driver, "frames") == "8", what="the video")
        wait_until(lambda: driver.find_element(By.ID, "frame-label").text == "frame 0 (0–7)", what="the slider label")

        draw_box(driver, (20, 16, 76, 64))
        assert mask_asked.wait(20)
        wait_until(lambda: data(driver, "pendingBox") == "1", what="the pending box")
        edge = [canvas_pixel(driver, 48, 16 + dy) for dy in (-1, 0, 1)]
        assert any(r > 150 and g < 130 and b < 130 for r, g, b, _ in edge), edge  # object 1's colour, still drawn
        assert driver.find_element(By.ID, "hint").text == "Computing the mask of object 1…"
        mask_may_go.set()
        wait_until(lambda: data(driver, "maskFrame") == "0" and data(driver, "busy") == "0", what="the mask")
        assert data(driver, "pendingBox") == "0"
        assert driver.find_element(By.ID, "hint").text.startswith("Drag")


def test_load_a_mask_on_a_frame_and_see_it_as_that_frames_masks(driver, tmp_path, tiny_segmenter, small_video):
    from selenium.webdriver.common.by import By

    from qmra.data import write_palette_png

    labels = np.zeros((96, 128), np.uint8)
    labels[20:60, 20:70], labels[50:90, 80:120] = 2, 4
    write_palette_png(tmp_path / "frame1.png", labels)
    (tmp_path / "notes.png").write_bytes(b"not an image")
    with serve(tiny_segmenter, tmp_path, source=small_video) as server:
        driver.get(server.url)
        wait_until(lambda: data(driver, "ready") == "1" and data(driver, "frames") == "8", what="the video")
        driver.find_element(By.ID, "slider").send_keys("\ue014")  # → frame 1
        wait_until(lambda: data(driver, "frame") == "1", what="frame 1")
        driver.find_element(By.ID, "mask-file").send_keys(str(tmp_path / "frame1.png"))  # the file picker's input
        wait_until(lambda: data(driver, "maskFrame") == "1" and data(driver, "busy") == "0", what="the loaded masks")
        objects = driver.find_elements(By.CSS_SELECTOR, "#objects li")
        assert [o.get_attribute("data-object") for o in objects] == ["2", "4"]
        assert "f1 mask" in objects[0].text
        assert "objects 2, 4 from its mask on frame 1" in driver.find_element(By.ID, "message").text
        session = next(iter(server.sessions.values()))
        assert np.array_equal(session.labels(1), labels)
        driver.find_element(By.ID, "mask-file").send_keys(str(tmp_path / "notes.png"))
        wait_until(lambda: "cannot read image notes.png" in data(driver, "error"), what="the refusal")
