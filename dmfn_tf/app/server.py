"""The HTTP server behind `dmfn app`: one page and a small JSON API, standard library only.

Routes:
- `GET /`: the page (`static/index.html`).
- `GET /api/config`: the defaults the page starts from: the models it may choose (labels, never
  paths: `dmfn_tf.app.models`), the strategies, the pixel budget.
- `POST /api/upload`: the photo file's bytes as the body (`X-Filename` names it, `X-Strategy` is
  the strategy chosen on the page). Spooled to a private temporary file as it arrives, sized from
  its header and refused before decoding (`dmfn_tf.app.decoding`), kept as that file
  (`dmfn_tf.app.uploads`: the bytes sent, not the decoded pixels) and answered with a picture of it
  for the page to paint on, at most `PREVIEW_SIDE` pixels a side (`decoding.preview_photo`):
  `{"id", "width", "height", "png"}` (base64; `width` and `height` are the photo's own).
- `POST /api/inpaint`: JSON `{"id", "mask", "model", "strategy"}` (strings), `mask` a base64 PNG of
  the photo's size (white = hole, `dmfn_tf.data.load_mask_file`'s rule). Returns `{"png", "info"}`.
  The high-resolution strategies use the trained size of the model the request names: the
  start-up model's is `AppState.hd.trained_size` (`dmfn app --trained-size`, or what it records),
  any other's is what its file records (`dmfn_tf.app.models.ModelChoices.trained_size`). The kept
  photo is decoded (`decoding.decode_upload`) only while the model runs for it.

Hardening (issue 19), each behaviour tested in `tests/app_server_test.py`:
- every request must name this server (`Host`) and come from its page (`Origin`): 403 otherwise
  (`dmfn_tf.app.origin`), so neither a page on another site nor a DNS-rebinding name can use it;
- a body is read only after its `Content-Length` was checked (`dmfn_tf.app.body`): missing, not a
  number or over the route's limit is a 4xx before a byte is read, and never more than the declared
  bytes are read; all bodies in flight share one budget (`MAX_INPUT_BYTES`), past it a request gets 503;
- connections idle for `IDLE_TIMEOUT_S` are closed; a request must arrive whole (headers and body)
  within `RECEIVE_DEADLINE_S` (408); at most `MAX_CONNECTIONS` connections are served at once (503
  beyond), each in its own thread, so a slow client never stalls the others;
- the model runs for one request at a time, and one photo, mask or request body is decoded at a
  time (so parallel requests cannot add up their decoding memory); a request waits at most
  `BUSY_WAIT_S` for either (503); the model file is checked to be a regular file before it is
  opened (`dmfn_tf.app.models`);
- every error is `{"error": one line}` with a 4xx status (503 when busy) and no path of the machine
  (`dmfn_tf.app.refusal.one_line`), also for malformed requests the standard library refuses; a
  bug is a 500 whose message names only the exception's type (the log has the traceback).

Why the standard library and not a server library: the project has no web dependency, the page
needs two routes, and each limit above is a few lines with its own test; a library (waitress,
uvicorn + h11) would still need the `Host`/`Origin` rules, the in-flight budget, the header-first
image checks and the one-line errors written here, and would add a dependency to every install.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import io
import json
import logging
import os
import socket
import tempfile
import threading
import time
import traceback
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

import numpy as np
from PIL import Image

from dmfn_tf.app.body import InFlightBytes, declared_length, read_body
from dmfn_tf.app.decoding import decode_upload, plain_filename, preview_photo, read_holes
from dmfn_tf.app.models import ModelChoices
from dmfn_tf.app.origin import HostGuard
from dmfn_tf.app.refusal import Refusal, one_line
from dmfn_tf.app.uploads import UPLOAD_KEPT_BYTES, UploadStore
from dmfn_tf.errors import UserError
from dmfn_tf.inpaint.budget import DEFAULT_MAX_PIXELS
from dmfn_tf.inpaint.planner import check_size, plan
from dmfn_tf.inpaint.request import InpaintRequest
from dmfn_tf.inpaint.runner import run_plan
from dmfn_tf.inpaint.strategies import DEFAULT_TRAINED_SIZE, HDOptions, strategy_names
from dmfn_tf.input_limits import MAX_INPUT_BYTES

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
# Largest `/api/inpaint` body: a JSON object around one base64 mask PNG of the photo's size. The
# browser's two-colour mask of an 8192² photo is a few MiB; 16 MiB leaves room, and parsing even a
# hostile 16 MiB object (millions of keys: about 9 bytes of Python objects per byte) stays near
# +150 MB. Requests are parsed one at a time and may hold only the four fields of the API.
MAX_JSON_BYTES = MAX_INPUT_BYTES // 16
REQUEST_FIELDS = ("id", "mask", "model", "strategy")
MAX_JSON_MARKS = 64  # `{`, `[` and `:` in an inpaint body (the page's has five)
IDLE_TIMEOUT_S = 20.0
RECEIVE_DEADLINE_S = 120.0
BUSY_WAIT_S = 30.0
MAX_CONNECTIONS = 64

log = logging.getLogger(__name__)


_UPLOAD_AGAIN = ("upload a photo first (this one is unknown, or was dropped to make room for newer uploads: "
                 "upload it again)")


class AppError(Refusal):
    """A request the page sent cannot be served (400); the message is shown on the page."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(status, message)


def _png_base64(image: np.ndarray) -> bytes:
    """`image` as a base64 PNG (ASCII bytes; `Handler._json` puts it in the answer without copying it as text)."""
    buffer = io.BytesIO()
    # Fast compression: a 12 MP photo encodes in a fraction of the default level's time.
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return base64.b64encode(buffer.getbuffer())


def _decode_base64(text, what: str) -> bytes:
    if not isinstance(text, str) or not text:
        raise AppError(f"no {what} in the request")
    try:
        return base64.b64decode(text.split(",", 1)[-1], validate=True)
    except (binascii.Error, ValueError):
        raise AppError(f"the {what} is not valid base64") from None


class AppState:
    """What the server keeps between requests: defaults, uploaded photos and the loaded generator.

    Args:
        model: the model path the page starts with (None: the shipped model where present).
        hd: the high-resolution options; the page chooses the strategy, the rest comes from here.
            `hd.trained_size` is the start-up model's; other models use the size they record.
        max_pixels: the pixel budget for every model input.
        allowed_models: further model paths the page may choose (`dmfn_tf.app.models`).
        upload_bytes: budget of the kept photo files' bytes (`dmfn_tf.app.uploads`).
        busy_wait_s: how long a request waits while another one runs the model, or decodes a photo,
            a mask or a request (then 503). One of each runs at a time, so that parallel requests
            cannot add up their decoding memory.
    """

    def __init__(self, model: str | None = None, hd: HDOptions = HDOptions(), max_pixels: int = DEFAULT_MAX_PIXELS,
                 allowed_models=(), upload_bytes: int = UPLOAD_KEPT_BYTES, busy_wait_s: float = BUSY_WAIT_S):
        self.model = model
        self.hd = hd
        self.max_pixels = max_pixels
        self.models = ModelChoices(model, allowed_models)
        self.uploads = UploadStore(upload_bytes)
        self.busy_wait_s = busy_wait_s
        self.lock = threading.Lock()  # one inpainting at a time: the model is shared
        self.decoding = threading.Lock()  # one photo, mask or request decoded at a time

    @contextlib.contextmanager
    def _one_at_a_time(self, lock: threading.Lock, busy: str):
        if not lock.acquire(timeout=self.busy_wait_s):
            raise Refusal(503, f"the server is busy {busy}; try again in a moment")
        try:
            yield
        finally:
            lock.release()

    def options(self, strategy) -> HDOptions:
        if not isinstance(strategy, str) or strategy not in strategy_names():
            shown = repr(strategy[:40]) if isinstance(strategy, str) else "that"
            raise AppError(f"unknown strategy {shown}; choose one of {', '.join(strategy_names())}")
        return dataclasses.replace(self.hd, strategy=strategy)

    def trained_size(self, label: str) -> int:
        """The trained size of the model `label` (as `ModelChoices.path` returns it) for the strategies."""
        if label == self.models.default:
            return self.hd.trained_size
        size = self.models.trained_size(label)
        if size is None:
            log.warning("%s does not record the size it was trained on; using %d", label, DEFAULT_TRAINED_SIZE)
        return DEFAULT_TRAINED_SIZE if size is None else size

    def config(self) -> dict:
        return {"model": self.models.default or "", "models": self.models.labels, "strategies": list(strategy_names()),
                "strategy": self.hd.strategy, "max_pixels": self.max_pixels, "trained_size": self.hd.trained_size}

    def upload(self, path: str, name: str, strategy) -> dict:
        """Reads the spooled upload at `path` (shown as `name`), keeps it and returns what the page shows."""
        options = self.options(strategy)
        with self._one_at_a_time(self.decoding, "reading other photos"):
            preview, height, width = preview_photo(path, name, options, self.max_pixels)
            png = _png_base64(preview)
        return {"id": self.uploads.add(name, path, height, width), "width": width, "height": height, "png": png}

    def _kept_photo(self, upload) -> np.ndarray:
        """The kept upload's pixels, decoded now (its file may have been dropped since `uploads.get`).

        Its size and the request's strategy were checked against the budget before (`check_size`).
        """
        try:
            image = decode_upload(upload.path, upload.name)
        except (Refusal, UserError):
            if os.path.exists(upload.path):
                raise
            raise AppError(_UPLOAD_AGAIN) from None
        if image.shape[:2] != (upload.height, upload.width):  # the plan was made for the kept size
            raise AppError(_UPLOAD_AGAIN)
        return image

    def parse_request(self, body) -> dict:
        """The JSON object of an `/api/inpaint` body: only `REQUEST_FIELDS`, each a string (or null)."""
        # The page's object has four fields and no arrays: a body with more structure is refused before
        # it is parsed (millions of keys or empty lists would take about 9 bytes of memory per byte).
        if sum(body.count(mark) for mark in (b"{", b"[", b":")) > MAX_JSON_MARKS:
            raise AppError("the request is not the page's JSON object (too many fields or lists)")
        with self._one_at_a_time(self.decoding, "reading other requests"):
            try:
                request = json.loads(body)
            except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                raise AppError("the request is not valid JSON") from None
            if not isinstance(request, dict):
                raise AppError("the request must be a JSON object")
            unknown = [key for key in request if key not in REQUEST_FIELDS]
            if unknown:
                raise AppError(f"the request has {len(unknown)} unknown field(s); expected only {', '.join(REQUEST_FIELDS)}")
            for key, value in request.items():
                if value is not None and not isinstance(value, str):
                    raise AppError(f"'{key}' must be a string")
            return request

    def inpaint(self, request: dict) -> dict:
        """Inpaints the upload `request["id"]` with its mask (`parse_request`'s fields)."""
        upload = self.uploads.get(request.get("id"))
        if upload is None:
            raise AppError(_UPLOAD_AGAIN)
        options = self.options(request.get("strategy") or self.hd.strategy)
        label, _ = self.models.path(request.get("model"))  # an unknown name fails before any decoding
        options = dataclasses.replace(options, trained_size=self.trained_size(label))
        with self._one_at_a_time(self.decoding, "reading other masks"):
            hole = read_holes(_decode_base64(request.get("mask"), "mask"), upload.height, upload.width)
        if not hole.any():
            raise AppError("the mask is empty: paint over the part of the photo to fill, then run again")
        planned = plan(check_size(upload.height, upload.width, options, self.max_pixels, source=upload.name), hole)
        with self._one_at_a_time(self.lock, "running the model for another request"):
            image = self._kept_photo(upload)  # decoded for this request: filled in place
            generator = self.models.load(request.get("model"))
            start = time.perf_counter()
            result = run_plan(generator, InpaintRequest(image, hole, upload.name), planned, self.max_pixels)
            seconds = time.perf_counter() - start
        info = f"{planned.describe()} in {seconds:.1f} s"
        return {"png": _png_base64(result), "info": info, "strategy": planned.strategy}


class Handler(BaseHTTPRequestHandler):
    """Serves the page and the JSON API of one `AppState` (the server's `state`); see the module docstring."""

    server_version = "dmfn-app"
    sys_version = ""

    def log_message(self, format, *args):  # noqa: A002  (the base class's name)
        log.info("%s %s", self.address_string(), format % args)

    def setup(self):
        self.timeout = self.server.idle_timeout_s  # the socket's timeout: idle connections are closed
        self._expired = False
        super().setup()

    def handle(self):
        self._receiving = threading.Timer(self.server.receive_deadline_s, self._expire)
        self._receiving.daemon = True
        self._receiving.start()
        try:
            super().handle()
        finally:
            self._receiving.cancel()

    def _expire(self) -> None:
        """The request did not arrive in time: stop reading (a blocked read returns), answer 408."""
        self._expired = True
        try:
            self.connection.shutdown(socket.SHUT_RD)
        except OSError:
            pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: dict) -> None:
        png = payload.pop("png", None) if status == HTTPStatus.OK else None
        body = json.dumps(payload).encode("utf-8")
        if png is not None:  # a photo's base64 PNG joins the JSON as bytes: no extra copies of a large string
            body = b"".join((body[:-1], b', ' if payload else b'', b'"png": "', png, b'"}'))
        self._send(status, body, "application/json")

    def send_error(self, code, message=None, explain=None):
        """The standard library's refusals (bad request line, huge headers, unknown method) as one-line JSON 4xx."""
        if self._expired:
            code, message = HTTPStatus.REQUEST_TIMEOUT, f"the request did not arrive within {self.server.receive_deadline_s:.0f} s"
        elif code == HTTPStatus.NOT_IMPLEMENTED:
            code, message = HTTPStatus.METHOD_NOT_ALLOWED, "only GET and POST are served"
        elif code >= 500 and code != HTTPStatus.SERVICE_UNAVAILABLE:
            code = HTTPStatus.BAD_REQUEST
        self.close_connection = True
        self.request_version = "HTTP/1.0"  # a status line even for a request line too broken to name its version
        try:
            self._json(int(code), {"error": one_line(message or HTTPStatus(code).phrase)})
        except OSError:
            pass

    def do_GET(self):  # noqa: N802  (the base class's name)
        self._serve(self._get)

    def do_POST(self):  # noqa: N802
        self._serve(self._post)

    def _serve(self, route) -> None:
        try:
            if self._expired:
                raise Refusal(408, f"the request did not arrive within {self.server.receive_deadline_s:.0f} s")
            self.server.host_guard.check(self.headers)
            answer = route()
        except Refusal as err:
            self.close_connection = True
            self._json(err.status, {"error": one_line(str(err))})
        except UserError as err:
            self._json(HTTPStatus.BAD_REQUEST, {"error": one_line(str(err))})
        except MemoryError:
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "the server ran out of memory for this request; "
                                                                 "try a smaller photo or fewer holes"})
        except Exception as err:  # a bug: never a traceback or a path on the page; the log has it
            log.error("%s failed:\n%s", self.path, traceback.format_exc())
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR,
                       {"error": f"internal error ({type(err).__name__}); the server's log has the details"})
        else:
            if isinstance(answer, bytes):
                self._send(HTTPStatus.OK, answer, "text/html; charset=utf-8")
            else:
                self._json(HTTPStatus.OK, answer)

    def _route(self) -> str:
        return urllib.parse.urlsplit(self.path).path

    def _get(self):
        route = self._route()
        if route in ("/", "/index.html"):
            return resources.files("dmfn_tf.app").joinpath("static", "index.html").read_bytes()
        if route == "/api/config":
            return self.server.state.config()
        raise Refusal(404, "no such page: the app is at the server's root")

    def _post(self):
        routes = {"/api/upload": (MAX_INPUT_BYTES, self._upload), "/api/inpaint": (MAX_JSON_BYTES, self._inpaint)}
        route = self._route()
        if route not in routes:
            raise Refusal(404, "no such API call: the page posts to its upload and inpaint calls only")
        limit, serve = routes[route]
        length = declared_length(self.headers, limit)
        with self.server.in_flight.hold(length):
            return serve(length)

    def _read(self, length: int, sink):
        """The body into `sink`, within the request's deadline; afterwards the deadline no longer applies."""
        try:
            read_body(self.rfile, length, sink, self._started + self.server.receive_deadline_s)
        except Refusal:
            if self._expired:
                raise Refusal(408, f"the request did not arrive within {self.server.receive_deadline_s:.0f} s") from None
            raise
        self._receiving.cancel()
        return sink

    def handle_one_request(self):
        self._started = time.monotonic()
        super().handle_one_request()

    def _upload(self, length: int) -> dict:
        state = self.server.state
        name = plain_filename(self.headers.get("X-Filename"))
        strategy = self.headers.get("X-Strategy") or state.hd.strategy
        state.options(strategy)  # a wrong strategy fails before the body is read
        if length == 0:
            raise AppError("the uploaded file is empty")
        with tempfile.TemporaryDirectory(prefix="dmfn_app_") as directory:
            path = os.path.join(directory, "upload")
            with open(path, "wb") as f:
                self._read(length, f)
            return state.upload(path, name, strategy)

    def _inpaint(self, length: int) -> dict:
        state = self.server.state
        return state.inpaint(state.parse_request(self._read(length, bytearray(length))))


class AppServer(ThreadingHTTPServer):
    """A `ThreadingHTTPServer` with the limits of the module docstring; `state` is the `AppState` it serves."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = MAX_CONNECTIONS  # the listen backlog: a burst of users is queued, not reset
    _BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
             b'{"error": "the server has too many connections open; try again in a moment"}')

    def __init__(self, address, state: AppState, idle_timeout_s: float, receive_deadline_s: float, max_connections: int):
        super().__init__(address, Handler)
        self.state = state
        self.idle_timeout_s = idle_timeout_s
        self.receive_deadline_s = receive_deadline_s
        self.in_flight = InFlightBytes(MAX_INPUT_BYTES)
        self.host_guard = HostGuard(*self.server_address[:2])
        self._slots = threading.BoundedSemaphore(max_connections)

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            try:
                request.settimeout(1.0)
                request.sendall(self._BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def make_server(state: AppState, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *,
                idle_timeout_s: float = IDLE_TIMEOUT_S, receive_deadline_s: float = RECEIVE_DEADLINE_S,
                max_connections: int = MAX_CONNECTIONS) -> AppServer:
    """A server for `state` bound to `host:port` (port 0: any free port); call `serve_forever()`.

    Example:

    ```python
    server = make_server(AppState(model="runs/demo"), port=0)
    print(f"http://127.0.0.1:{server.server_address[1]}/"); server.serve_forever()
    ```
    """
    return AppServer((host, port), state, idle_timeout_s, receive_deadline_s, max_connections)
