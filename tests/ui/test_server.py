"""The web app's server without a browser: path refusal, upload limits, the page token and host check,
idle sessions, and a whole box → run → correct → export round over its HTTP API."""

from __future__ import annotations

import base64
import http.client
import io
import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from qmra.cli import main
from qmra.data import Box
from qmra.data.rle import decode_rle
from qmra.inference.prompt_files import parse_prompts
from qmra.ui.paths import PathPolicy, PathRefused
from tests.tiny import no_masks_on
from tests.ui.conftest import serve


class Client:
    """The page's side of the API, over plain HTTP."""

    def __init__(self, server) -> None:
        self.server = server
        self.port = server.server_address[1]
        self.session: str | None = None

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                host: str | None = None) -> tuple[int, bytes, dict]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.putrequest(method, path, skip_host=host is not None)
            if host is not None:
                connection.putheader("Host", host)
            for name, value in (headers or {}).items():
                connection.putheader(name, value)
            if body is not None and "Content-Length" not in (headers or {}):
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            return response.status, response.read(), dict(response.getheaders())
        finally:
            connection.close()

    def json(self, method: str, path: str, value: dict | None = None, **kw) -> tuple[int, dict]:
        body = None if value is None and method == "GET" else json.dumps(value or {}).encode()
        status, data, _ = self.request(method, path, body, {"Content-Type": "application/json"} if body else None, **kw)
        return status, json.loads(data)

    def start(self) -> dict:
        status, data, _ = self.request("POST", "/api/session", b"", {"X-Qmra-Token": self.server.token})
        answer = json.loads(data)
        assert status == 200, answer
        self.session = answer["session"]
        return answer

    def call(self, method: str, action: str, value: dict | None = None, expect: int = 200) -> dict:
        status, answer = self.json(method, f"/api/s/{self.session}/{action}", value)
        assert status == expect, answer
        return answer

    def wait_decoded(self, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.call("GET", "state")
            if not state["source"]["decoding"]:
                return state
            time.sleep(0.05)
        raise AssertionError("the video was not decoded")

    def box_and_run(self, box: list[float], frame: int = 0, direction: str = "forward") -> dict:
        """A new page: once the video is decoded, one object boxed on ``frame`` and run; the state after."""
        self.start()
        self.wait_decoded()
        self.call("POST", "box", {"object": None, "frame": frame, "box": box})
        self.call("POST", "run", {"direction": direction})
        return self.wait_for_run()

    def wait_for_run(self, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.call("GET", "state")
            if state["job"]["status"] != "running":
                return state
            time.sleep(0.05)
        raise AssertionError("the run did not end")


# ---------------------------------------------------------------------- paths


def test_path_policy(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "videos").mkdir(parents=True)
    outside.mkdir()
    (root / "link").symlink_to(outside)
    policy = PathPolicy(root, exact=[outside / "given.mp4"], trees=[outside / "exports"])
    assert policy.resolve("videos") == (root / "videos").resolve()
    assert policy.resolve(str(root / "videos" / "x.mp4")) == (root / "videos" / "x.mp4").resolve()
    assert policy.resolve(str(outside / "given.mp4")) == (outside / "given.mp4").resolve()
    assert policy.resolve(str(outside / "exports" / "run1")) == (outside / "exports" / "run1").resolve()
    for refused in ("../outside/clip.mp4", str(outside / "clip.mp4"), "link/clip.mp4", "videos/../../outside", "/etc/passwd"):
        with pytest.raises(PathRefused, match="outside the folder"):
            policy.resolve(refused)


def test_the_server_refuses_paths_outside_its_folder(tmp_path, tiny_segmenter, small_video):
    root = tmp_path / "root"
    root.mkdir()
    inside = root / "clip.mp4"
    inside.write_bytes(small_video.read_bytes())
    (root / "escape").symlink_to(small_video.parent)
    with serve(tiny_segmenter, root) as server:
        client = Client(server)
        client.start()
        for path in (str(small_video), "../" + small_video.name, "escape/clip.mp4"):
            answer = client.call("POST", "open", {"path": path}, expect=403)
            assert "outside the folder" in answer["error"]
        assert client.call("POST", "open", {"path": "clip.mp4"})["source"]["name"] == "clip"
        assert "is not a folder" in client.call("GET", "list?dir=clip.mp4", expect=400)["error"]
        assert client.call("GET", "list?dir=.")["entries"] == [{"name": "clip.mp4", "kind": "video"},
                                                                {"name": "escape", "kind": "folder"}]
        assert client.call("GET", "list?dir=/", expect=403)
        answer = client.call("POST", "export", {"folder": str(tmp_path / "elsewhere")}, expect=403)
        assert "outside the folder" in answer["error"]
        assert client.call("POST", "open", {"path": "missing.mp4"}, expect=400)["error"].startswith("no such file")
    # The command line's SOURCE may lie anywhere: each new page opens it.
    with serve(tiny_segmenter, root, source=small_video) as server:
        client = Client(server)
        assert client.start()["state"]["source"]["name"] == "clip"
        assert client.call("POST", "open", {"path": str(small_video)})["source"]["width"] == 128


def test_uploads_are_size_checked(tmp_path, tiny_segmenter, small_video):
    data = small_video.read_bytes()
    with serve(tiny_segmenter, tmp_path, max_upload_mb=len(data) / (1 << 20) * 2) as server:
        client = Client(server)
        client.start()
        upload = f"/api/s/{client.session}/upload"
        too_big = str(len(data) * 3)
        status, body, _ = client.request("POST", upload, None, {"Content-Length": too_big, "X-Filename": "big.mp4"})
        assert status == 413 and "uploads are limited to" in json.loads(body)["error"]
        status, body, _ = client.request("POST", upload, b"", {"X-Filename": "notes.txt"})
        assert status == 400 and "upload a video file" in json.loads(body)["error"]
        status, body, _ = client.request("POST", upload, data, {"X-Filename": "my%20clip.mp4"})
        answer = json.loads(body)
        assert status == 200, answer
        assert answer["source"]["name"] == "my clip" and answer["source"]["width"] == 128
        status, body, _ = client.request("POST", upload, b"not a video", {"X-Filename": "broken.mp4"})
        assert status == 400 and "cannot read video" in json.loads(body)["error"]


def test_sessions_need_the_page_token_and_a_loopback_host(tmp_path, tiny_segmenter):
    with serve(tiny_segmenter, tmp_path) as server:
        client = Client(server)
        status, body, _ = client.request("POST", "/api/session", b"")
        assert status == 403 and "page qmra ui serves" in json.loads(body)["error"]
        status, body, _ = client.request("POST", "/api/session", b"", {"X-Qmra-Token": server.token}, host="evil.example:80")
        assert status == 403
        status, page, headers = client.request("GET", "/")
        assert status == 200 and server.token.encode() in page and "default-src 'self'" in headers["Content-Security-Policy"]
        for name in ("app.js", "style.css"):
            assert client.request("GET", f"/static/{name}")[0] == 200
        assert client.request("GET", "/static/../server.py")[0] == 404
        assert client.request("GET", "/api/s/unknown/state")[0] == 404


def test_idle_and_closed_sessions_are_freed(tmp_path, tiny_segmenter, small_video):
    with serve(tiny_segmenter, tmp_path, source=small_video, idle_seconds=0.3) as server:
        client = Client(server)
        client.start()
        folder = server.work_dir / client.session
        assert folder.is_dir()
        time.sleep(1.5)
        assert client.call("GET", "state", expect=404)["error"].startswith("this page's session has ended")
        assert not folder.exists()
    with serve(tiny_segmenter, tmp_path, source=small_video) as server:
        client = Client(server)
        client.start()
        folder = server.work_dir / client.session
        client.call("POST", "close")
        deadline = time.monotonic() + 10
        while folder.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not folder.exists() and not server.sessions
    assert not server.work_dir.exists()


# ---------------------------------------------------------------------- a whole round


def test_box_run_correct_and_export(tmp_path, tiny_segmenter, small_video):
    with serve(tiny_segmenter, tmp_path, source=small_video) as server:
        client = Client(server)
        client.start()
        state = client.wait_decoded()
        assert state["source"]["frames"] == 8 and state["source"]["expected"] == 8
        state = client.call("POST", "box", {"object": None, "frame": 3, "box": [20, 20, 70, 60]})
        assert state["object"] == 1 and state["shown"] == "00010000"
        status, mask, _ = client.request("GET", f"/api/s/{client.session}/mask/3")
        assert status == 200 and Image.open(io.BytesIO(mask)).size == (128, 96)
        assert client.request("GET", f"/api/s/{client.session}/mask/4")[0] == 404
        frame = client.request("GET", f"/api/s/{client.session}/frame/7")
        assert frame[0] == 200 and frame[2]["Content-Type"] == "image/jpeg"
        # Forward from the box only: frames 3..7.
        client.call("POST", "run", {"direction": "forward"})
        state = client.wait_for_run()
        assert state["job"]["status"] == "finished" and state["shown"] == "00011111"
        assert state["job"]["total"] == 5
        # Backward: frames 3, 2, 1, 0 (frame 3 is the forward run's).
        client.call("POST", "run", {"direction": "both"})
        state = client.wait_for_run()
        assert state["shown"] == "11111111" and state["complete"] == 8 and state["job"]["total"] == 4
        # A second object on frame 0 and a correction of object 1 on frame 6: only what they own runs.
        client.call("POST", "box", {"object": None, "frame": 0, "box": [80, 40, 120, 90]})
        state = client.call("POST", "box", {"object": 1, "frame": 6, "box": [30, 30, 80, 70]})
        assert [k["frame"] for k in state["objects"][0]["keyframes"]] == [3, 6]
        assert state["complete"] == 1  # frame 0 only: object 2 is boxed there; object 1 is current everywhere but 6..7
        client.call("POST", "run", {"direction": "both"})
        state = client.wait_for_run()
        assert state["complete"] == 8 and state["job"]["total"] == 8 + 2  # object 2: frames 0..7; object 1: 6..7
        out = tmp_path / "export"
        answer = client.call("POST", "export", {"folder": "export"})
        assert answer["frames"] == 8 and answer["without_masks"] == 0 and not (out / "cutout.webm").exists()
        assert sorted(p.name for p in out.glob("*.png")) == [f"{i:05d}.png" for i in range(8)]
        assert sorted(p.name for p in (out / "1").glob("*.png")) == [f"{i:05d}.png" for i in range(8)]
        assert (out / "overlay.mp4").stat().st_size > 0
        rle = json.loads((out / "masks.json").read_text())
        assert [f["name"] for f in rle["frames"]] == [f"{i:05d}" for i in range(8)]
        labels = np.asarray(Image.open(out / "00005.png"))
        for object_id in (1, 2):
            assert np.array_equal(decode_rle(rle["frames"][5]["objects"][str(object_id)]), labels == object_id)
        assert json.loads((out / "boxes.json").read_text())[0] == {"id": 1, "frame": 3, "box": [20.0, 20.0, 70.0, 60.0]}
        tracks = (out / "tracks.csv").read_text().splitlines()  # by default, without the confidence the page lacks
        assert len(tracks) == 1 + 8 * 2 and tracks[11].split(",")[:3] == ["5", "00005", "1"]
        assert int(tracks[11].split(",")[7]) == int((labels == 1).sum()) and tracks[11].split(",")[8] == ""
        # Its boxes, the correction of object 1 on frame 6 included, are a --boxes file for qmra segment.
        prompts = parse_prompts(None, str(out / "boxes.json"))
        assert sorted((p.object_id, p.frame) for p in prompts) == [(1, 3), (1, 6), (2, 0)]
        # An export folder is a qmra segment folder: qmra export makes it a dataset.
        assert main(["export", str(out), "--video", str(small_video), "--out", str(tmp_path / "ds"), "--quiet"]) == 0
        coco = json.loads((tmp_path / "ds" / "annotations.json").read_text())
        assert [i["file_name"] for i in coco["images"]] == [f"clip/{i:05d}.jpg" for i in range(8)]
        assert coco["annotations"]  # the tiny network's masks, whatever they are, as the PNGs hold them
        for image in coco["images"]:
            frame_labels = np.asarray(Image.open(out / f"{image['frame_id']:05d}.png"))
            annotations = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
            assert sorted(a["object_id"] for a in annotations) == sorted(set(np.unique(frame_labels).tolist()) - {0})
            for annotation in annotations:
                assert np.array_equal(decode_rle(annotation["segmentation"]), frame_labels == annotation["object_id"])
        assert "already holds results" in client.call("POST", "export", {"folder": "export"}, expect=400)["error"]
        assert client.call("POST", "export", {"folder": "export", "overwrite": True})["frames"] == 8
        assert "redaction style must be one of blur, pixelate, black" in client.call(
            "POST", "export-zip", {"redact": True, "redact_style": "smudge"}, expect=400)["error"]
        answer = client.call("POST", "export-zip", {"overlay": False, "cutout": True, "redact": True, "redact_style": "black"})
        status, data, headers = client.request("GET", answer["download"])
        assert status == 200 and headers["Content-Type"] == "application/zip"
        (tmp_path / "masks.zip").write_bytes(data)
        names = zipfile.ZipFile(tmp_path / "masks.zip").namelist()
        assert "clip/00007.png" in names and "clip/2/00000.png" in names and "clip/masks.json" in names
        assert "clip/overlay.mp4" not in names and "clip/cutout.webm" in names and "clip/redacted.mp4" in names
        # Removing object 2 leaves object 1's masks; the run ran nothing more for it.
        state = client.call("POST", "remove", {"object": 2})
        assert [o["id"] for o in state["objects"]] == [1] and state["complete"] == 8
        assert "no box on frame" in client.call("POST", "remove", {"object": 1, "frame": 0}, expect=400)["error"]


def test_an_exported_overlay_and_redacted_video_carry_the_sound(tmp_path, tiny_segmenter):
    from tests.data.test_audio import loudness, sound, video_with_sound

    source = video_with_sound(tmp_path / "talk.mp4", seconds=1.0, tone_from=0.5)
    with serve(tiny_segmenter, tmp_path, source=source) as server:
        client = Client(server)
        client.box_and_run([10, 10, 40, 40])
        client.call("POST", "export", {"folder": "export", "redact": True})
    for name in ("overlay.mp4", "redacted.mp4"):
        samples, rate = sound(tmp_path / "export" / name)
        assert abs(samples.shape[1] / rate - 1.0) < 0.03 and loudness(samples, rate, 0.55, 0.95) > 0.3, name


def test_a_run_can_be_cancelled_and_refuses_edits_meanwhile(tmp_path, tiny_segmenter, small_video, monkeypatch):
    from qmra.ui import page

    real = page.Page._store_mask

    def slow(self, *args):
        time.sleep(0.3)
        real(self, *args)

    monkeypatch.setattr(page.Page, "_store_mask", slow)
    with serve(tiny_segmenter, tmp_path, source=small_video) as server:
        client = Client(server)
        client.start()
        client.wait_decoded()
        client.call("POST", "box", {"object": None, "frame": 0, "box": [10, 10, 60, 60]})
        client.call("POST", "run", {"direction": "forward"})
        assert "while a run is going on" in client.call("POST", "box", {"object": 1, "frame": 2, "box": [0, 0, 9, 9]},
                                                        expect=409)["error"]
        assert client.call("POST", "run", {"direction": "forward"}, expect=409)
        client.call("POST", "cancel")
        # The event stream reports the run's progress, then its end.
        status, stream, headers = client.request("GET", f"/api/s/{client.session}/events")
        assert status == 200 and headers["Content-Type"] == "text/event-stream"
        assert b"event: end" in stream and b'"status": "cancelled"' in stream
        state = client.call("GET", "state")
        assert state["job"]["status"] == "cancelled" and 0 < state["complete"] < 8


@pytest.mark.parametrize("args, message", [
    (["missing.mp4"], "no such file or folder"),
    (["--port", "70000"], "--port must lie in"),
    (["--max-upload", "0"], "must be positive"),
])
def test_bad_command_lines(tmp_path, args, message, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["ui", "--no-browser", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qmra: error: ") and message in err and "Traceback" not in err


def test_a_port_in_use_is_one_clear_error(tmp_path, tiny_segmenter, weights, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with serve(tiny_segmenter, tmp_path) as server:
        port = server.server_address[1]
        assert main(["ui", "--no-browser", "--port", str(port), "--weights", str(weights)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_the_static_files_are_package_data():
    import tomllib

    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["package-data"]["qmra.ui"]
    static = Path(__file__).resolve().parents[2] / "qmra" / "ui" / "static"
    shipped = {p.name for pattern in patterns for p in static.glob(pattern.removeprefix("static/"))}
    assert shipped == {"index.html", "app.js", "style.css"}
    for name in shipped:  # nothing is fetched from other sites: the page works offline
        assert "http://" not in (static / name).read_text() and "https://" not in (static / name).read_text()


def test_the_upload_picker_offers_every_video_file_qmra_reads():
    import re

    from qmra.data.frames import STACK_SUFFIXES, VIDEO_SUFFIXES

    page = (Path(__file__).resolve().parents[2] / "qmra" / "ui" / "static" / "index.html").read_text()
    accepted = re.search(r'id="upload" type="file" accept="([^"]+)"', page).group(1).split(",")
    assert set(VIDEO_SUFFIXES + STACK_SUFFIXES) <= set(accepted)  # a GIF or a TIFF stack is no video/* type: named, it can be picked


@pytest.mark.parametrize("adapt_previews, adaptations", [(False, [0, 1]), (True, [1, 0])])
def test_test_time_adaptation_runs_once_per_box(tmp_path, weights, small_video, monkeypatch, adapt_previews,
                                                adaptations):
    """Runs adapt as the settings say, once per box: the backward session reuses the forward one's
    network. Previews adapt only when asked to, and then the runs reuse theirs."""
    from qmra.inference import InferenceSettings, Segmenter
    from qmra.inference import adapt as adapt_module

    calls = []
    real = adapt_module.adapt

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(adapt_module, "adapt", counted)
    segmenter = Segmenter.from_checkpoint(weights, settings=InferenceSettings(adapt_steps=1))
    with serve(segmenter, tmp_path, source=small_video, adapt_previews=adapt_previews) as server:
        client = Client(server)
        client.start()
        client.wait_decoded()
        client.call("POST", "box", {"object": None, "frame": 3, "box": [20, 20, 70, 60]})
        after_preview = len(calls)
        client.call("POST", "run", {"direction": "both"})
        state = client.wait_for_run()
        assert state["job"]["status"] == "finished" and state["complete"] == 8
        assert [after_preview, len(calls) - after_preview] == adaptations


def test_a_greyscale_video_adapts_colour_only_weights_once_per_box(tmp_path, small_video, monkeypatch):
    """Weights trained on colour only adapt on greyscale video (grey_adapt_steps) although the settings
    do not adapt: the run says so, and the backward run reuses the forward one's network."""
    from qmra.data import open_frames
    from qmra.inference import InferenceSettings, Segmenter
    from qmra.inference import adapt as adapt_module
    from tests.tiny import tiny_checkpoint

    frames = tmp_path / "root" / "grey"
    frames.mkdir(parents=True)
    for index, frame in enumerate(open_frames(small_video)):
        Image.fromarray(frame).convert("L").save(frames / f"{index:05d}.png")
    calls = []
    real = adapt_module.adapt
    monkeypatch.setattr(adapt_module, "adapt", lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs))
    weights = tiny_checkpoint(tmp_path / "colour.safetensors", {"training": {"train": {"grey_clips": 0.0}}})
    segmenter = Segmenter.from_checkpoint(weights, settings=InferenceSettings(grey_adapt_steps=1))
    with serve(segmenter, tmp_path / "root", source=frames) as server:
        client = Client(server)
        client.start()
        client.wait_decoded()
        client.call("POST", "box", {"object": None, "frame": 3, "box": [20, 20, 70, 60]})
        assert calls == []  # a preview does not adapt
        said = []
        monkeypatch.setattr(adapt_module, "adapt", lambda *args, **kwargs: calls.append(1) or said.append(
            server.pages.get(client.session).job.snapshot()["message"]) or real(*args, **kwargs))
        client.call("POST", "run", {"direction": "both"})
        state = client.wait_for_run()
        assert state["job"]["status"] == "finished" and state["complete"] == 8
        assert calls == [1] and "the video is greyscale" in said[0]


def test_frames_where_a_mask_is_doubtful_are_marked_for_the_timeline(tmp_path, tiny_segmenter, small_video, monkeypatch):
    """A run's doubtful masks (FrameResult.doubts) mark their frames in the page's state; removing the
    object removes its marks."""
    from qmra.inference import quality

    monkeypatch.setattr(quality.QualityWatch, "check",
                        lambda self, result, starting=frozenset(), found=frozenset(): {1: ("jump",)} if result.index in (5, 6) else {})
    with serve(tiny_segmenter, tmp_path, source=small_video) as server:
        client = Client(server)
        state = client.box_and_run([20, 20, 70, 60], frame=3, direction="both")
        assert state["complete"] == 8 and state["doubtful"] == "00000110"
        state = client.call("POST", "remove", {"object": 1})
        assert state["doubtful"] == "00000000"


def test_frames_where_an_object_is_not_found_are_marked_apart(tmp_path, tiny_segmenter, small_video, monkeypatch):
    """An empty mask marks its frame as lost (red on the timeline), not as doubtful."""
    no_masks_on(monkeypatch, (5, 6))
    with serve(tiny_segmenter, tmp_path, source=small_video) as server:
        client = Client(server)
        state = client.box_and_run([20, 20, 70, 60], frame=3)
        assert state["lost"][5:7] == "11" and state["lost"][3] == "0"
        assert state["doubtful"][5:7] == "00"
        state = client.call("POST", "remove", {"object": 1})
        assert state["lost"] == "00000000"


def _png(labels: np.ndarray, mode: str = "P") -> str:
    buffer = io.BytesIO()
    image = Image.fromarray(labels) if mode == "P" else Image.fromarray(np.stack([labels] * 3, -1))
    if mode == "P":
        image = image.convert("P")
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_a_mask_loaded_on_a_frame_starts_its_objects_there_with_the_mask_as_their_result(tmp_path, tiny_segmenter,
                                                                                          small_video):
    labels = np.zeros((96, 128), np.uint8)
    labels[20:60, 20:70], labels[40:90, 80:120] = 3, 5
    labels[40, 45] = 0  # a hole no box gives
    with serve(tiny_segmenter, tmp_path, source=small_video) as server:
        client = Client(server)
        client.start()
        client.wait_decoded()
        state = client.call("POST", "masks", {"frame": 2, "name": "frame2.png", "png": _png(labels)})
        assert state["loaded"] == [3, 5] and state["shown"] == "00100000"
        assert [(o["id"], o["keyframes"]) for o in state["objects"]] == [
            (3, [{"frame": 2, "box": [20.0, 20.0, 70.0, 60.0], "mask": True}]),
            (5, [{"frame": 2, "box": [80.0, 40.0, 120.0, 90.0], "mask": True}])]
        page = server.sessions[client.session]
        assert np.array_equal(page.labels(2), labels)  # the loaded masks are the frame's result, exactly
        client.call("POST", "run", {"direction": "both"})
        state = client.wait_for_run()
        assert state["job"]["status"] == "finished" and state["complete"] == 8
        assert np.array_equal(page.labels(2), labels)
        client.call("POST", "export", {"folder": "export"})  # the loaded masks go with the boxes file
        prompts = json.loads((tmp_path / "export" / "boxes.json").read_text())
        assert prompts == [{"id": 3, "frame": 2, "mask": "prompts/3-00002.png"},
                           {"id": 5, "frame": 2, "mask": "prompts/5-00002.png"}]
        assert [p.box for p in parse_prompts(None, str(tmp_path / "export" / "boxes.json"))] == [
            Box(20, 20, 70, 60), Box(80, 40, 120, 90)]
        state = client.call("POST", "box", {"object": 3, "frame": 2, "box": [20, 20, 70, 60]})  # a box replaces the mask
        assert state["objects"][0]["keyframes"][0]["mask"] is False
        for value, message in [
                ({"frame": 2, "name": "small.png", "png": _png(labels[:40])},
                 "the masks are 128x40 pixels but the video's frames are 128x96"),
                ({"frame": 2, "name": "rgb.png", "png": _png(labels, "RGB")},
                 "rgb.png: a mask must be a greyscale or palette PNG"),
                ({"frame": 2, "name": "empty.png", "png": _png(np.zeros_like(labels))}, "empty.png: every pixel is 0"),
                ({"frame": 2, "name": "mask.jpg", "png": _png(labels)}, "mask.jpg: load a PNG mask"),
                ({"frame": 2, "name": "x.png", "png": "not base64!"}, "the mask must come as base64 text"),
                ({"frame": 9, "name": "x.png", "png": _png(labels)}, "frame 9")]:
            answer = client.call("POST", "masks", value, expect=400)
            assert message in answer["error"], answer
        # Only the length is sent, as a browser's request would start: the server answers before the body.
        status, body, _ = client.request("POST", f"/api/s/{client.session}/masks", None,
                                         {"Content-Length": str(2 << 20), "Content-Type": "application/json"})
        assert status == 413
        assert json.loads(body)["error"] == "request too large: over 1 MiB (a mask PNG may have about 750 KB)"
