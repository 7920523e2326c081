"""The HTTP server behind `dmfn app`: one page and a small JSON API, standard library only.

Routes:
- `GET /`: the page (`static/index.html`).
- `GET /api/config`: the defaults the page starts from (model path, strategies, pixel budget).
- `POST /api/upload`: the photo file's bytes as the body (`X-Filename` names it, `X-Strategy` is
  the strategy chosen on the page). Decoded with `dmfn_tf.inference.read_image` (EXIF orientation,
  16-bit, CMYK, ...), checked against the pixel budget, kept in memory, and returned as a PNG
  for the page to paint on: `{"id", "width", "height", "png"}` (base64).
- `POST /api/inpaint`: JSON `{"id", "mask", "model", "strategy"}`, `mask` a base64 PNG of the
  photo's size (white = hole, `dmfn_tf.data.load_mask_file`'s rule). Returns `{"png", "info"}`.

Every error reaches the page as `{"error": "one line"}`: user errors (not an image, over the
budget, empty mask, bad model path) with status 400, anything else with status 500 and the
traceback in the server's log only.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import json
import logging
import os
import tempfile
import threading
import time
import traceback
import urllib.parse
from collections import OrderedDict
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

import numpy as np
from PIL import Image

from dmfn_tf.errors import UserError
from dmfn_tf.high_resolution import STRATEGIES, HDOptions, check_budget, holes_of, inpaint_hd, plan
from dmfn_tf.inference import DEFAULT_MAX_PIXELS

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
# Largest request body accepted (a 12 MP PNG is about 25 MB, base64 adds a third).
MAX_BODY_BYTES = 256 * 1024 * 1024
# Photos kept in memory between upload and inpainting (oldest dropped first).
KEPT_UPLOADS = 4

log = logging.getLogger(__name__)


class AppError(UserError):
    """A request the page sent cannot be served; the message is shown on the page."""


def _png_base64(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    # Fast compression: a 12 MP photo encodes in a fraction of the default level's time.
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _decode_base64(text, what: str) -> bytes:
    if not isinstance(text, str) or not text:
        raise AppError(f"no {what} in the request")
    try:
        return base64.b64decode(text.split(",", 1)[-1], validate=True)
    except (binascii.Error, ValueError):
        raise AppError(f"the {what} is not valid base64") from None


def _read_upload(data: bytes, filename: str, what: str):
    """Decodes an uploaded file with the package's readers; messages name the upload, not a temp path."""
    from dmfn_tf.inference import read_image, read_mask

    name = os.path.basename(filename.replace("\\", "/")) or what
    with tempfile.TemporaryDirectory(prefix="dmfn_app_") as directory:
        path = os.path.join(directory, name)
        with open(path, "wb") as f:
            f.write(data)
        try:
            return read_image(path)[0] if what == "image" else read_mask(path)
        except UserError as err:
            raise AppError(str(err).replace(directory + os.sep, "")) from None


class AppState:
    """What the server keeps between requests: defaults, uploaded photos and loaded generators.

    Args:
        model: the model path the page starts with (None: the user types one).
        hd: the high-resolution options; the page chooses the strategy, the rest comes from here.
        max_pixels: the pixel budget for every model input.
    """

    def __init__(self, model: str | None = None, hd: HDOptions = HDOptions(), max_pixels: int = DEFAULT_MAX_PIXELS):
        self.model = model
        self.hd = hd
        self.max_pixels = max_pixels
        self.uploads: OrderedDict[str, tuple[str, np.ndarray]] = OrderedDict()
        self.generators: dict[tuple[str, float], object] = {}
        self.lock = threading.Lock()  # one inpainting at a time: the model and the caches are shared

    def options(self, strategy) -> HDOptions:
        if strategy not in STRATEGIES:
            raise AppError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
        return dataclasses.replace(self.hd, strategy=strategy)

    def config(self) -> dict:
        return {"model": self.model or "", "strategies": list(STRATEGIES), "strategy": self.hd.strategy,
                "max_pixels": self.max_pixels, "trained_size": self.hd.trained_size}

    def upload(self, data: bytes, filename: str, strategy: str) -> dict:
        if not data:
            raise AppError("the uploaded file is empty")
        image = _read_upload(data, filename, "image")
        height, width = image.shape[:2]
        check_budget(height, width, self.options(strategy), self.max_pixels, source=os.path.basename(filename) or "photo")
        upload_id = f"{time.monotonic_ns():x}"
        with self.lock:
            self.uploads[upload_id] = (filename, image)
            while len(self.uploads) > KEPT_UPLOADS:
                self.uploads.popitem(last=False)
        return {"id": upload_id, "width": width, "height": height, "png": _png_base64(image)}

    def generator(self, path: str):
        from dmfn_tf.model_io import load_generator, resolve_generator_path

        if not path:
            raise AppError("no model: give the path of a .keras generator, a training run directory or a .pth checkpoint")
        source = resolve_generator_path(os.path.expanduser(path))
        key = (os.path.realpath(source), os.path.getmtime(source))
        if key not in self.generators:
            self.generators.clear()  # keep one model in memory
            self.generators[key] = load_generator(source)
        return self.generators[key]

    def inpaint(self, request: dict) -> dict:
        upload = self.uploads.get(request.get("id"))
        if upload is None:
            raise AppError("upload a photo first (or upload it again: the server keeps only the last few)")
        filename, image = upload
        options = self.options(request.get("strategy", self.hd.strategy))
        mask = _read_upload(_decode_base64(request.get("mask"), "mask"), "mask.png", "mask")
        if mask.shape[:2] != image.shape[:2]:
            raise AppError(f"the mask is {mask.shape[1]}x{mask.shape[0]} but the photo is {image.shape[1]}x{image.shape[0]}")
        hole = holes_of(mask[..., 0])
        if not hole.any():
            raise AppError("the mask is empty: paint over the part of the photo to fill, then run again")
        name = os.path.basename(filename) or "photo"
        check_budget(*image.shape[:2], options, self.max_pixels, source=name)
        with self.lock:
            generator = self.generator(request.get("model") or self.model or "")
            start = time.perf_counter()
            result = inpaint_hd(generator, image, mask, options, max_pixels=self.max_pixels, source=name)
            seconds = time.perf_counter() - start
        strategy, windows = plan(hole, options)
        inputs = ", ".join(f"{w.model_width}x{w.model_height}" for w in windows)
        info = f"{strategy} strategy: the model ran on {len(windows)} input{'s' if len(windows) != 1 else ''} ({inputs}) in {seconds:.1f} s"
        return {"png": _png_base64(result), "info": info, "strategy": strategy}


class Handler(BaseHTTPRequestHandler):
    """Serves the page and the JSON API of one `AppState` (set on the server as `server.state`)."""

    server_version = "dmfn-app"

    def log_message(self, format, *args):  # noqa: A002  (the base class's name)
        log.info("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: dict) -> None:
        self._send(status, json.dumps(payload).encode("utf-8"), "application/json")

    def do_GET(self):  # noqa: N802  (the base class's name)
        if self.path in ("/", "/index.html"):
            page = resources.files("dmfn_tf.app").joinpath("static", "index.html").read_bytes()
            self._send(HTTPStatus.OK, page, "text/html; charset=utf-8")
        elif self.path == "/api/config":
            self._json(HTTPStatus.OK, self.server.state.config())
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no page {self.path}"})

    def do_POST(self):  # noqa: N802
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self.close_connection = True
                raise AppError(f"the upload is {length / 2**20:.0f} MiB; the limit is {MAX_BODY_BYTES / 2**20:.0f} MiB")
            body = self.rfile.read(length)
            state = self.server.state
            if self.path == "/api/upload":
                filename = urllib.parse.unquote(self.headers.get("X-Filename", "photo"))
                payload = state.upload(body, filename, self.headers.get("X-Strategy", state.hd.strategy))
            elif self.path == "/api/inpaint":
                try:
                    request = json.loads(body)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    raise AppError("the request is not valid JSON") from None
                if not isinstance(request, dict):
                    raise AppError("the request must be a JSON object")
                payload = state.inpaint(request)
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no API {self.path}"})
                return
        except UserError as err:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(err)})
        except Exception as err:  # never a traceback on the page; the log has it
            log.error("%s failed:\n%s", self.path, traceback.format_exc())
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR,
                       {"error": f"internal error ({type(err).__name__}: {str(err)[:200]}); the server's log has the details"})
        else:
            self._json(HTTPStatus.OK, payload)


def make_server(state: AppState, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> ThreadingHTTPServer:
    """A server for `state` bound to `host:port` (port 0: any free port); call `serve_forever()`.

    Example:

    ```python
    server = make_server(AppState(model="runs/demo"), port=0)
    print(f"http://127.0.0.1:{server.server_address[1]}/"); server.serve_forever()
    ```
    """
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    server.state = state
    return server
