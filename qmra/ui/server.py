"""The web app's HTTP server: the Python standard library's ``ThreadingHTTPServer``, plain HTML and
JavaScript from the package's ``static/`` folder (nothing from other sites), JSON for the API and
Server-Sent Events for a run's progress.

Security, for a server that can read videos and write files: it binds 127.0.0.1 unless told
otherwise; on a loopback address it answers only requests whose ``Host`` is a loopback name (so a
web site cannot reach it through DNS rebinding); a page session is created only with the token
written into the page it served (so another site cannot create one), and every later request names
its session by a random id that only that page knows. Paths are limited by :class:`PathPolicy`;
uploads by size.

API (JSON unless said; ``S`` = ``/api/s/<session id>``)::

    POST /api/session              (header X-Qmra-Token) → a new page session; opens the command line's SOURCE
    GET  S/state                   the video, the objects and their boxes, which frames have masks, the run
    GET  S/frame/<i>               frame i as an image;  GET S/mask/<i>: its label map (PNG, background transparent)
    POST S/open {"path"}           open a video or frame folder on the server;  GET S/list?dir=: what a folder holds
    POST S/upload                  (raw body, header X-Filename) upload a video file and open it
    POST S/box {"object", "frame", "box": [x0, y0, x1, y1]}   draw a box (object null: a new one); computes the mask
    POST S/masks {"frame", "name", "png": base64}              load a mask PNG: its objects start there; computes the masks
    POST S/remove {"object", "frame"?}                         remove a box, or the whole object
    POST S/run {"direction": "forward" | "backward" | "both"} start a run;  POST S/cancel
    GET  S/events                  the run's progress (text/event-stream): "progress" events, then one "end"
    POST S/export {"folder", "per_object", "overlay", "rle", "tracks", "cutout", "redact", "redact_style", "overwrite"}   write the results into a folder
    POST S/export-zip {...}        the same as a zip, then GET S/download;  POST S/close: free the session
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import shutil
import sys
import tempfile
import traceback
from dataclasses import dataclass
from typing import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from ipaddress import ip_address
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from qmra.data.frames import STACK_SUFFIXES, VIDEO_SUFFIXES
from qmra.errors import QmraError
from qmra.inference.segmenter import Segmenter
from qmra.ui.config import UiConfig
from qmra.ui.engine import Engine
from qmra.ui.export import export_options
from qmra.ui.jobs import Busy, Gone
from qmra.ui.listing import folder_listing
from qmra.ui.page import Page
from qmra.ui.pages import PageRegistry
from qmra.ui.paths import PathPolicy, PathRefused
from qmra.ui.plan import BACKWARD, FORWARD

STATIC_FILES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
                "style.css": "text/css; charset=utf-8"}
MAX_JSON_BYTES = 1 << 20
UPLOAD_CHUNK = 1 << 20
KEEPALIVE_SECONDS = 15.0
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
# The page's own scripts and styles only: no other site is ever contacted.
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; "
                           "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


class UploadTooLarge(QmraError):
    pass


class LengthRequired(QmraError):
    pass


class Forbidden(QmraError):
    pass


STATUS = {UploadTooLarge: HTTPStatus.REQUEST_ENTITY_TOO_LARGE, LengthRequired: HTTPStatus.LENGTH_REQUIRED,
          PathRefused: HTTPStatus.FORBIDDEN, Forbidden: HTTPStatus.FORBIDDEN, Busy: HTTPStatus.CONFLICT,
          Gone: HTTPStatus.NOT_FOUND}


class UiServer(ThreadingHTTPServer):
    """``create_server(...)`` then ``serve_forever()``; ``close()`` frees every page session."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, config: UiConfig, segmenter: Segmenter) -> None:
        self.config = config
        self.engine = Engine(segmenter, config.adapt_previews)
        self.policy = PathPolicy(config.root, [config.source] if config.source else [], [config.out] if config.out else [])
        self.token = secrets.token_urlsafe(24)
        self.work_dir = Path(tempfile.mkdtemp(prefix="qmra-ui-"))
        self.loopback = _is_loopback(config.host)
        try:
            super().__init__((config.host, config.port), Handler)
        except OSError as error:
            shutil.rmtree(self.work_dir, ignore_errors=True)
            raise QmraError(f"cannot listen on {config.host}:{config.port}: {error.strerror or error} "
                            "(another program may use that port: give --port N, or --port 0 for any free one)") from None
        self.pages = PageRegistry(self.work_dir, self.engine, config.max_sessions, config.idle_seconds)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else (f"[{host}]" if ":" in str(host) else host)
        return f"http://{shown}:{port}/"

    # ------------------------------------------------------------------ pages

    @property
    def sessions(self) -> dict[str, Page]:
        return self.pages.pages

    def new_session(self) -> Page:
        page = self.pages.new()
        if self.config.source is not None:
            page.open(self.config.source)
        return page

    def session(self, session_id: str) -> Page:
        return self.pages.get(session_id)

    def close_session(self, session_id: str) -> None:
        self.pages.close(session_id)

    def close(self) -> None:
        """Stop answering and free every page and the temporary folder."""
        self.pages.close_all()
        self.server_close()
        shutil.rmtree(self.work_dir, ignore_errors=True)


def create_server(config: UiConfig, segmenter: Segmenter) -> UiServer:
    """The app's server, listening (``config.port`` 0: any free port; see :attr:`UiServer.url`)."""
    return UiServer(config, segmenter)


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


class Handler(BaseHTTPRequestHandler):
    server: UiServer
    server_version = "qmra-ui"
    protocol_version = "HTTP/1.0"  # one request per connection: the event stream simply ends with it

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass  # quiet: the page shows what happens; errors go to stderr in _fail

    # ------------------------------------------------------------------ dispatch

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        parts = [unquote(p) for p in url.path.split("/") if p]
        try:
            self._check_host()
            if method == "GET" and parts in ([], ["index.html"]):
                return self._index()
            if method == "GET" and len(parts) == 2 and parts[0] == "static":
                return self._static(parts[1])
            if method == "GET" and parts == ["favicon.ico"]:
                return self._send(HTTPStatus.NO_CONTENT, b"", "text/plain")
            if method == "POST" and parts == ["api", "session"]:
                return self._new_session()
            if len(parts) >= 4 and parts[:2] == ["api", "s"]:
                return self._session_call(method, parts[2], parts[3], parts[4:])
            raise Gone(f"no such page: {url.path}")
        except (BrokenPipeError, ConnectionResetError):
            pass
        except QmraError as error:
            self._json({"error": str(error)}, STATUS.get(type(error), HTTPStatus.BAD_REQUEST))
        except Exception as error:  # noqa: BLE001 - the page gets a message, the server's stderr the traceback
            traceback.print_exc(file=sys.stderr)
            self._json({"error": f"internal error: {type(error).__name__}: {error}"}, HTTPStatus.INTERNAL_SERVER_ERROR)

    def _check_host(self) -> None:
        """On a loopback address, only loopback host names (no DNS rebinding from a web site)."""
        if not self.server.loopback:
            return
        host = (self.headers.get("Host") or "").strip()
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:].split("]")[0]
        if name.lower() not in LOOPBACK_NAMES:
            raise Forbidden(f"requests for host {host!r} are refused; open {self.server.url}")

    def _session_call(self, method: str, session_id: str, action: str, rest: list[str]) -> None:
        if method == "POST" and action == "close":
            self.server.close_session(session_id)
            return self._json({"closed": True})
        route = ROUTES.get((method, action))
        if route is None or len(rest) != route.path_arguments:
            raise Gone(f"no such request: {method} {action}")
        page = self.server.session(session_id)
        if route.reads_body:
            return route.handler(self, page, self._body())
        return route.handler(self, page, *rest)

    # ------------------------------------------------------------------ one page's requests

    def _state(self, page: Page) -> None:
        self._json(page.state())

    def _frame(self, page: Page, index: str) -> None:
        data, content_type = page.frame_image(_index(index))
        self._send(HTTPStatus.OK, data, content_type, cache=True)

    def _mask(self, page: Page, index: str) -> None:
        self._send(HTTPStatus.OK, page.mask_image(_index(index)), "image/png")

    def _list(self, page: Page) -> None:
        self._json(self._listing(self.query.get("dir", ".")))

    def _open(self, page: Page, body: dict) -> None:
        self._json(page.open(self.server.policy.resolve(body.get("path"), "video file or frame folder")))

    def _box(self, page: Page, body: dict) -> None:
        object_id = body.get("object")
        self._json(page.set_box(None if object_id is None else _int(object_id, "object"), _int(body.get("frame"), "frame"),
                                body.get("box")))

    def _masks(self, page: Page, body: dict) -> None:
        try:
            data = base64.b64decode(str(body.get("png") or ""), validate=True)
        except binascii.Error:
            raise QmraError("the mask must come as base64 text (\"png\")") from None
        self._json(page.set_masks(_int(body.get("frame"), "frame"), str(body.get("name") or ""), data))

    def _remove(self, page: Page, body: dict) -> None:
        object_id = _int(body.get("object"), "object")
        if body.get("frame") is None:
            return self._json(page.remove_object(object_id))
        self._json(page.remove_box(object_id, _int(body.get("frame"), "frame")))

    def _run(self, page: Page, body: dict) -> None:
        direction = body.get("direction", "both")
        self._json(page.run((FORWARD, BACKWARD) if direction == "both" else (direction,)))

    def _cancel(self, page: Page, body: dict) -> None:
        self._json(page.cancel())

    def _export(self, page: Page, body: dict) -> None:
        folder = self.server.policy.resolve(body.get("folder"), "export folder")
        self._json(page.export(folder, overwrite=bool(body.get("overwrite")), **export_options(body)))

    def _export_zip(self, page: Page, body: dict) -> None:
        archive, summary = page.export_zip(**export_options(body))
        self._json({**summary, "download": f"/api/s/{page.id}/download", "name": archive.name})

    # ------------------------------------------------------------------ pages and files

    def _index(self) -> None:
        page = resources.files("qmra.ui").joinpath("static", "index.html").read_text(encoding="utf-8")
        self._send(HTTPStatus.OK, page.replace("{{TOKEN}}", self.server.token).encode(), STATIC_FILES["index.html"])

    def _static(self, name: str) -> None:
        if name not in STATIC_FILES or name == "index.html":
            raise Gone(f"no such file: {name}")
        self._send(HTTPStatus.OK, resources.files("qmra.ui").joinpath("static", name).read_bytes(), STATIC_FILES[name])

    def _new_session(self) -> None:
        if not secrets.compare_digest(self.headers.get("X-Qmra-Token", ""), self.server.token):
            raise Forbidden("a page session can only be opened from the page qmra ui serves: reload it")
        self._body()
        session = self.server.new_session()
        config = self.server.config
        self._json({"session": session.id, "state": session.state(), "max_upload_mb": config.max_upload_mb,
                    "idle_minutes": config.idle_seconds / 60, "root": str(self.server.policy.root),
                    "source": str(config.source) if config.source else None, "out": str(config.out) if config.out else None})

    def _listing(self, folder_text: str) -> dict:
        """What the path box suggests in an allowed folder (:func:`folder_listing`)."""
        folder = self.server.policy.resolve(folder_text, "folder")
        if not folder.is_dir():
            raise QmraError(f"{folder_text} is not a folder")
        return folder_listing(folder)

    def _upload(self, session: Page) -> None:
        limit = self.server.config.max_upload_bytes
        if self.headers.get("Transfer-Encoding"):
            raise LengthRequired("uploads must give their length (Content-Length)")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise LengthRequired("uploads must give their length (Content-Length)") from None
        if length > limit:
            self.close_connection = True
            raise UploadTooLarge(f"the file is {length / (1 << 20):.1f} MB; uploads are limited to "
                                 f"{self.server.config.max_upload_mb:g} MB (qmra ui --max-upload MB)")
        name = Path(unquote(self.headers.get("X-Filename", ""))).name
        if Path(name).suffix.lower() not in VIDEO_SUFFIXES + STACK_SUFFIXES:
            self.close_connection = True
            raise QmraError(f"upload a video file ({', '.join(VIDEO_SUFFIXES + STACK_SUFFIXES)}), not {name or 'a file without a name'}; "
                            "open a frame folder by its path on the server")
        folder = session.folder / "uploads" / secrets.token_hex(4)
        folder.mkdir(parents=True)
        target = folder / name
        remaining = length
        with target.open("wb") as file:
            while remaining:
                chunk = self.rfile.read(min(UPLOAD_CHUNK, remaining))
                if not chunk:
                    shutil.rmtree(folder, ignore_errors=True)
                    raise QmraError(f"the upload of {name} stopped after {length - remaining} of {length} bytes")
                file.write(chunk)
                remaining -= len(chunk)
        try:
            self._json(session.open(target))
        except QmraError:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def _download(self, session: Page) -> None:
        archive = session.download
        if archive is None or not archive.is_file():
            raise Gone("nothing to download: export as zip first")
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(archive.stat().st_size))
        self.send_header("Content-Disposition", f'attachment; filename="{archive.name}"')
        self.end_headers()
        with archive.open("rb") as file:
            shutil.copyfileobj(file, self.wfile, UPLOAD_CHUNK)

    def _events(self, session: Page) -> None:
        """The current run's progress as Server-Sent Events, until it ends."""
        job = session.job
        if job is None:
            raise Gone("no run has been started")
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        seen = -1
        while True:
            version = job.wait(seen, KEEPALIVE_SECONDS)
            session.touch()
            if version == seen:
                self.wfile.write(b": still running\n\n")
            else:
                seen = version
                snapshot = job.snapshot()
                event = "progress" if snapshot["status"] == "running" else "end"
                self.wfile.write(f"event: {event}\ndata: {json.dumps(snapshot)}\n\n".encode())
                if event == "end":
                    self.wfile.flush()
                    return
            self.wfile.flush()

    # ------------------------------------------------------------------ bodies and answers

    def _body(self) -> dict:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise LengthRequired("requests must give their length (Content-Length)") from None
        if length > MAX_JSON_BYTES:
            self.close_connection = True
            raise UploadTooLarge(f"request too large: over {MAX_JSON_BYTES >> 20} MiB (a mask PNG may have about 750 KB)")
        if not length:
            return {}
        try:
            body = json.loads(self.rfile.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise QmraError("the request is not valid JSON") from None
        if not isinstance(body, dict):
            raise QmraError("the request must be a JSON object")
        return body

    def _json(self, value: object, status: int = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    def _send(self, status: int, data: bytes, content_type: str, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "private, max-age=3600" if cache else "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if content_type.startswith("text/html"):
            self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
            self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        self.wfile.write(data)


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise QmraError(f"{what} must be an integer, got {value!r}")
    return value


def _index(text: str) -> int:
    if not text.isdigit():
        raise Gone(f"no frame {text!r}")
    return int(text)


@dataclass(frozen=True)
class Route:
    """How ``/api/s/<page>/<action>[/<argument>]`` is answered: ``handler(handler, page, *arguments)``,
    or with the JSON body instead of path arguments (``reads_body``)."""

    handler: Callable[..., None]
    path_arguments: int = 0
    reads_body: bool = False


#: A page's requests by (method, action).
ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "state"): Route(Handler._state),
    ("GET", "frame"): Route(Handler._frame, path_arguments=1),
    ("GET", "mask"): Route(Handler._mask, path_arguments=1),
    ("GET", "events"): Route(Handler._events),
    ("GET", "list"): Route(Handler._list),
    ("GET", "download"): Route(Handler._download),
    ("POST", "upload"): Route(Handler._upload),
    ("POST", "open"): Route(Handler._open, reads_body=True),
    ("POST", "box"): Route(Handler._box, reads_body=True),
    ("POST", "masks"): Route(Handler._masks, reads_body=True),
    ("POST", "remove"): Route(Handler._remove, reads_body=True),
    ("POST", "run"): Route(Handler._run, reads_body=True),
    ("POST", "cancel"): Route(Handler._cancel, reads_body=True),
    ("POST", "export"): Route(Handler._export, reads_body=True),
    ("POST", "export-zip"): Route(Handler._export_zip, reads_body=True),
}
