"""A screenshot of ``qmra ui`` in headless Chromium after a box is drawn and its mask is shown, and the
time from "box drawn" (mouse released) to "mask shown" (the label map drawn on the canvas), as the
page measures it.

    .venv/bin/python -m tests.ui.screenshot                      # docs/ui.png, shipped weights
    .venv/bin/python -m tests.ui.screenshot --trials 3 --out /tmp/ui.png

The video: DAVIS 2016's car-shadow (854×480) when ../shared/data/davis2016 (or $QMRA_DAVIS_ROOT) is
there, boxed on its first annotation's tight box; else a synthetic 854×480 clip boxed on its first
object. Needs Debian's chromium and chromium-driver.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from qmra.data import SyntheticConfig, SyntheticVideo, box_from_mask, read_labels
from qmra.inference import Segmenter
from tests.ui.browser import data, draw_box, start_browser, wait_until
from tests.ui.conftest import serve

REPO = Path(__file__).resolve().parents[2]


def davis_sequence(name: str) -> tuple[Path, tuple[float, ...]] | None:
    root = Path(os.environ.get("QMRA_DAVIS_ROOT") or REPO.parent / "shared" / "data" / "davis2016")
    frames = root / "JPEGImages" / "480p" / name
    annotation = root / "Annotations" / "480p" / name / "00000.png"
    if not frames.is_dir() or not annotation.is_file():
        return None
    box = box_from_mask(read_labels(annotation) > 0)
    return frames, box.as_tuple()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(REPO / "docs" / "ui.png"))
    parser.add_argument("--weights", help="a checkpoint (default: the shipped weights and their recommended settings)")
    parser.add_argument("--sequence", default="car-shadow", help="DAVIS 2016 sequence to open when the data is there")
    parser.add_argument("--trials", type=int, default=1, help="boxes drawn (each one timed; the last one is shown)")
    args = parser.parse_args(argv)

    segmenter = Segmenter.from_checkpoint(args.weights) if args.weights else Segmenter()
    with tempfile.TemporaryDirectory() as scratch:
        found = davis_sequence(args.sequence)
        if found is None:
            video = SyntheticVideo(SyntheticConfig(height=480, width=854, num_frames=24, num_objects=2, seed=1))
            source = video.write_mp4(Path(scratch) / "synthetic.mp4")
            box = video.first_boxes()[1].as_tuple()
        else:
            source, box = found
        latencies = []
        driver = start_browser(1400, 860)
        try:
            with serve(segmenter, Path(scratch), source=Path(source)) as server:
                driver.get(server.url)
                wait_until(lambda: data(driver, "ready") == "1", what="the video")
                for trial in range(args.trials):
                    driver.execute_script("document.body.dataset.maskFrame = ''")
                    # Each box a pixel apart: a new box is adapted to anew (the same box reuses its adaptation).
                    draw_box(driver, (box[0] + trial, box[1], box[2] - trial, box[3]))
                    wait_until(lambda: data(driver, "maskFrame") == "0" and data(driver, "busy") == "0", timeout=600,
                               what="the mask")
                    latencies.append(int(data(driver, "latencyMs")))
                    print(f"box {trial + 1}: mask shown {latencies[-1] / 1000:.2f} s after the box was drawn "
                          f"(server: {server.sessions[next(iter(server.sessions))].preview_seconds:.2f} s)", flush=True)
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(args.out)
        finally:
            driver.quit()
    settings = segmenter.settings
    print(f"{Path(source).name}: box {tuple(round(v) for v in box)}; resolution {settings.resolution}, adaptation "
          f"{settings.adapt_steps} steps; box → mask median {statistics.median(latencies) / 1000:.2f} s over {len(latencies)} "
          f"box(es); screenshot: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
