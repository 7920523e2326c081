"""Tests for the `dmfn app` server's API (dmfn_tf/app/server.py), over HTTP without a browser.

Every test runs a real server on 127.0.0.1 with an ephemeral port; raw-socket clients have
bounded reads (timeouts, byte caps), so a server that misbehaves fails a test instead of hanging it.
"""

import base64
import io
import json
import os
import re
import socket
import struct
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zlib

import numpy as np
import pytest
from PIL import Image

import image_headers
from dmfn_tf.app.server import AppState, make_server
from dmfn_tf.cli import build_parser
from dmfn_tf.inpaint.strategies import HDOptions

HEIGHT, WIDTH = 90, 120


def _state(model, **kwargs):
    return AppState(model=model, hd=HDOptions(strategy="crop", trained_size=64), max_pixels=6000, **kwargs)


@pytest.fixture
def serve():
    """`serve(state, **make_server_options) -> (base_url, port)`: a running server, shut down after the test."""
    servers = []

    def start(state, **options):
        server = make_server(state, port=0, **options)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        port = server.server_address[1]
        return f"http://127.0.0.1:{port}", port

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def app(serve, tiny_generator_file):
    state = _state(tiny_generator_file)
    base, _ = serve(state)
    return base, state


def _request(url, data=None, headers=None):
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _post_json(url, payload):
    status, body = _request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    return status, json.loads(body)


def _png(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _photo():
    return np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def _upload(base, data, name="photo.png", strategy="crop"):
    status, body = _request(f"{base}/api/upload", data, {"X-Filename": name, "X-Strategy": strategy})
    return status, json.loads(body)


_ABSOLUTE_PATH = re.compile(r"(^|[\s'\"(])/[^\s/]+/")


def _assert_message(status, payload, expected_status, *parts):
    assert status == expected_status, payload
    assert set(payload) == {"error"}
    assert "\n" not in payload["error"] and "Traceback" not in payload["error"]
    assert not _ABSOLUTE_PATH.search(payload["error"]), f"a path in {payload['error']!r}"
    assert tempfile.gettempdir() not in payload["error"]
    for part in parts:
        assert part in payload["error"], payload["error"]


def test_page_and_config_are_served(app):
    base, state = app
    status, page = _request(base + "/")
    assert status == 200 and b'<canvas id="mask-canvas">' in page and b"http://" not in page.replace(b"http://127", b"")
    status, config = _request(base + "/api/config")
    config = json.loads(config)
    assert config == {"model": "generator.keras", "models": ["generator.keras"] + config["models"][1:],
                      "strategies": ["auto", "original", "crop", "resize"], "strategy": "crop", "max_pixels": 6000,
                      "trained_size": 64}
    assert config["models"][1:] in ([], ["shipped"])


def test_upload_then_inpaint_keeps_known_pixels(app):
    base, _ = app
    photo = _photo()
    status, answer = _upload(base, _png(photo))
    assert status == 200 and (answer["width"], answer["height"]) == (WIDTH, HEIGHT)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["png"])))), photo)

    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[30:50, 40:90] = 255
    status, result = _post_json(f"{base}/api/inpaint", {"id": answer["id"], "mask": base64.b64encode(_png(mask)).decode(),
                                                        "model": "", "strategy": "crop"})
    assert status == 200, result
    assert result["strategy"] == "crop" and result["info"].startswith("crop strategy: the model ran on 1 input (64x")
    inpainted = np.asarray(Image.open(io.BytesIO(base64.b64decode(result["png"]))))
    hole = mask > 0
    np.testing.assert_array_equal(inpainted[~hole], photo[~hole])
    assert np.mean(inpainted[hole] != photo[hole]) > 0.5


def test_bad_uploads_give_one_line_messages(app):
    base, _ = app
    _assert_message(*_upload(base, b"just some notes", name="notes.txt"), 400, "notes.txt: not a readable image file")
    _assert_message(*_upload(base, b"\x89PNG\r\n\x1a\n" + b"\0" * 40, name="broken.png"), 400, "broken.png: not a readable")
    _assert_message(*_upload(base, b""), 400, "the uploaded file is empty")
    # 10,800 pixels: over the budget of 6,000 as a whole (original), fine for crop (above).
    _assert_message(*_upload(base, _png(_photo()), strategy="original"), 400,
                    "photo.png: 120x90 = 10,800 pixels exceeds the budget of 6,000 pixels")


def test_bad_inpaint_requests_give_one_line_messages(app):
    base, _ = app
    _, answer = _upload(base, _png(_photo()))
    empty = base64.b64encode(_png(np.zeros((HEIGHT, WIDTH), np.uint8))).decode()
    _assert_message(*_post_json(f"{base}/api/inpaint", {"id": answer["id"], "mask": empty}), 400, "the mask is empty")
    small = base64.b64encode(_png(np.full((10, 10), 255, np.uint8))).decode()
    _assert_message(*_post_json(f"{base}/api/inpaint", {"id": answer["id"], "mask": small}), 400,
                    "the mask is 10x10 but the photo is 120x90")
    full = base64.b64encode(_png(np.full((HEIGHT, WIDTH), 255, np.uint8))).decode()
    _assert_message(*_post_json(f"{base}/api/inpaint", {"id": answer["id"], "mask": full, "model": "other.keras"}),
                    400, "unknown model 'other.keras'; this server offers 'generator.keras'")
    _assert_message(*_post_json(f"{base}/api/inpaint", {"id": "nope", "mask": full}), 400, "upload a photo first")
    _assert_message(*_post_json(f"{base}/api/inpaint", {"id": answer["id"], "mask": "***"}), 400, "mask is not valid base64")
    _assert_message(*_post_json(f"{base}/api/inpaint", {"id": answer["id"], "mask": full, "strategy": "tiles"}), 400,
                    "unknown strategy 'tiles'")
    status, body = _request(f"{base}/api/inpaint", b"{not json")
    _assert_message(status, json.loads(body), 400, "not valid JSON")


def test_unexpected_failures_reach_the_page_without_a_traceback(app, monkeypatch):
    base, state = app

    def broken(request):
        raise RuntimeError("something deep went wrong")

    monkeypatch.setattr(state, "inpaint", broken)
    status, payload = _post_json(f"{base}/api/inpaint", {})
    _assert_message(status, payload, 500, "internal error (RuntimeError); the server's log has the details")
    assert "something deep" not in payload["error"]  # a bug's message may name paths: the log has it


def test_binds_to_localhost_by_default():
    args = build_parser().parse_args(["app"])
    assert args.host == "127.0.0.1"
    server = make_server(AppState(), port=0)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()


def test_dmfn_app_command_serves_the_page(tiny_generator_file):
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")])))
    process = subprocess.Popen([sys.executable, "-m", "dmfn_tf", "app", "--model", tiny_generator_file, "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = process.stdout.readline()
        assert line.startswith("dmfn app: open http://127.0.0.1:"), line or process.stderr.read()  # empty: it exited
        url = line.split()[3]
        status, config = _request(url + "api/config")
        assert status == 200 and json.loads(config)["model"] == "generator.keras"
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_dmfn_app_refuses_a_missing_model_before_serving(capsys):
    from dmfn_tf.cli import main

    assert main(["app", "--model", "/no/such/model.keras", "--port", "0"]) == 2
    assert "/no/such/model.keras: no such model file" in capsys.readouterr().err


def test_dmfn_app_refuses_a_fifo_as_a_model_without_opening_it(tmp_path, capsys):
    from dmfn_tf.cli import main

    fifo = tmp_path / "model.keras"
    os.mkfifo(fifo)
    started = time.monotonic()
    assert main(["app", "--model", str(fifo), "--port", "0"]) == 2
    assert "model.keras: not a regular file" in capsys.readouterr().err
    assert main(["app", "--allow-model", str(fifo), "--port", "0"]) == 2
    assert time.monotonic() - started < 10


def test_dmfn_app_defaults_to_the_shipped_model(shipped_model, monkeypatch, capsys):
    from dmfn_tf.app import server as server_module
    from dmfn_tf.cli import main

    started = {}

    class NotServing:
        server_address = ("127.0.0.1", 7860)

        def serve_forever(self):
            pass

        def server_close(self):
            pass

    def make_server(state, host, port):
        started["state"] = state
        return NotServing()

    monkeypatch.setattr(server_module, "make_server", make_server)
    assert main(["app"]) == 0
    assert f"using the shipped model {shipped_model}" in capsys.readouterr().err
    state = started["state"]
    assert state.model == shipped_model and state.hd.trained_size == 128


def test_a_request_uses_the_trained_size_of_the_model_it_names(shipped_model, tiny_generator_file, tiny_config,
                                                               tmp_path, monkeypatch):
    """The start-up model's size is the server's (`--trained-size` or its record); any other model's is its own record."""
    import dataclasses
    import shutil

    from dmfn_tf.app import server as server_module
    from dmfn_tf.config import save_config

    old_run = tmp_path / "old_run"  # a run from before model files described themselves: its config.yaml says 192
    old_run.mkdir()
    shutil.copyfile(tiny_generator_file, old_run / "generator.keras")
    cfg = tiny_config()
    save_config(dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, image_size=192)), old_run / "config.yaml")
    state = AppState(model=tiny_generator_file, hd=HDOptions(strategy="crop", trained_size=64), max_pixels=100_000,
                     allowed_models=[str(old_run)])
    assert state.models.labels == ["generator.keras", "shipped", "old_run"]
    sizes = []

    check_size = server_module.check_size

    def record(height, width, options, *args, **kwargs):
        sizes.append(options.trained_size)
        return check_size(height, width, options, *args, **kwargs)

    monkeypatch.setattr(server_module, "check_size", record)
    Image.fromarray(_photo()).save(tmp_path / "photo.png")
    upload = state.upload(str(tmp_path / "photo.png"), "photo.png", "crop")
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[30:50, 40:60] = 255
    for model in ("", "shipped", "old_run", "generator.keras"):
        answer = state.inpaint({"id": upload["id"], "mask": _mask_b64(mask), "model": model, "strategy": "crop"})
        assert answer["strategy"] == "crop"
    assert sizes == [64, 128, 192, 64]


# ---- Hostile requests (issue 19) ----------------------------------------------------------------

def _png_declaring(width, height, decodable=False):
    """A grayscale PNG declaring `width` x `height`: all zeros (real, about 1000x smaller than its pixels) or one tiny row."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    rows = [compressor.compress(b"\0" * (width + 1)) for _ in range(height if decodable else 1)]
    data = b"".join(rows) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def _peak_growth_mb(action):
    """Runs `action()` and returns how far this process's peak resident size rose above its size before (MiB)."""
    def status_mb(key):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(key + ":")) / 1024

    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pytest.skip("no /proc/self/clear_refs to reset the peak resident size")
    before = status_mb("VmRSS")
    action()
    return status_mb("VmHWM") - before


def _raw(port, data, timeout=10.0, after=None):
    """Sends raw bytes, optionally waits for `after()`, reads the answer until the server closes: (status, payload)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if after is not None:
            after()
        answer = b""
        deadline = time.monotonic() + timeout
        try:
            while len(answer) < 2**20 and time.monotonic() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split()[1]) if head.startswith(b"HTTP/") else 0
    return status, (json.loads(body) if body.startswith(b"{") else {"raw": answer[:300].decode("latin-1")})


def _post_head(port, path="/api/upload", headers=""):
    return f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}\r\n".encode()


def _mask_b64(array):
    return base64.b64encode(_png(array)).decode()


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's own, below its hard limit
def test_a_huge_upload_is_refused_from_its_header_before_decoding(app):
    base, state = app
    bomb = _png_declaring(13000, 13000, decodable=True)  # 13000² zeros: about 160 KiB, 507 MB decoded as RGB
    assert len(bomb) < 400_000
    growth = _peak_growth_mb(lambda: _assert_message(*_upload(base, bomb, name="big.png"), 413,
                                                     "big.png: 13000x13000 is 169000000 pixels, above the limit"))
    assert growth < 100, f"{growth:.0f} MB: the upload was decoded"
    assert len(state.uploads) == 0
    _assert_message(*_upload(base, _png_declaring(4000, 3000), name="wide.png", strategy="original"), 400,
                    "wide.png: 4000x3000 = 12,000,000 pixels exceeds the budget of 6,000 pixels")


def test_a_mask_is_sized_from_its_header_before_decoding(app):
    base, _ = app
    _, answer = _upload(base, _png(_photo()))

    def inpaint(mask_bytes):
        return _post_json(f"{base}/api/inpaint", {"id": answer["id"], "mask": base64.b64encode(mask_bytes).decode()})

    bomb = _png_declaring(16000, 16000, decodable=True)  # about 242 KiB, 256 MB of pixels
    assert len(bomb) < 300_000
    growth = _peak_growth_mb(lambda: _assert_message(*inpaint(bomb), 413, "mask: declares too many pixels"))
    assert growth < 100, f"{growth:.0f} MB: the mask was decoded"
    # A mask of another size is refused from its header (this one could not even be decoded).
    _assert_message(*inpaint(_png_declaring(WIDTH, HEIGHT + 1)), 400, "the mask is 120x91 but the photo is 120x90")
    frames = [Image.fromarray(np.full((HEIGHT, WIDTH), 255 * (i % 2), np.uint8)) for i in range(600)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])
    _assert_message(*inpaint(gif.getvalue()), 413, "mask: an animation of 600 frames")
    _assert_message(*inpaint(b"GIF89a" + b"\0" * 20), 400, "mask: not a readable image file")


@pytest.mark.parametrize("headers, status, part", [
    ("Content-Length: -1\r\n", 400, "Content-Length '-1' is not a number of bytes"),
    ("Content-Length: abc\r\n", 400, "Content-Length 'abc' is not a number of bytes"),
    ("Content-Length: 1e9\r\n", 400, "is not a number of bytes"),
    ("Content-Length: 99999999999999999999999\r\n", 400, "is not a number of bytes"),
    ("Content-Length: 5\r\nContent-Length: 6\r\n", 400, "several different Content-Length"),
    ("", 411, "no Content-Length"),
    ("Transfer-Encoding: chunked\r\n", 411, "chunks"),
    (f"Content-Length: {256 * 2**20 + 1}\r\n", 413, "the limit is 256 MiB"),
])
def test_body_lengths_are_checked_before_the_body_is_read(app, headers, status, part):
    base, _ = app
    port = int(base.rsplit(":", 1)[1])
    started = time.monotonic()
    # Headers and the start of a body: the server must answer without waiting for (or reading) the rest.
    answer = _raw(port, _post_head(port, headers=headers + "X-Filename: a.png\r\n") + b"\0" * 1000)
    _assert_message(*answer, status, part)
    assert time.monotonic() - started < 5


def test_an_inpaint_body_over_its_limit_is_refused_unread(app):
    from dmfn_tf.app.server import MAX_JSON_BYTES

    base, _ = app
    port = int(base.rsplit(":", 1)[1])
    _assert_message(*_raw(port, _post_head(port, "/api/inpaint", f"Content-Length: {MAX_JSON_BYTES + 1}\r\n")), 413,
                    "the limit is 16 MiB")


def test_parallel_large_bodies_share_one_budget(app):
    base, _ = app
    port = int(base.rsplit(":", 1)[1])
    big = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:  # a 250 MiB body on its way (stalled after its first bytes) holds 250 MiB of the budget
        big.sendall(_post_head(port, headers=f"Content-Length: {250 * 2**20}\r\n") + b"\0" * 1000)
        time.sleep(0.3)
        second = _raw(port, _post_head(port, headers="Content-Length: 20000000\r\n") + b"\0" * 1000)
        _assert_message(*second, 503, "busy receiving other uploads")
        status, _ = _request(base + "/api/config")  # small requests still go through
        assert status == 200
    finally:
        big.close()
    deadline = time.monotonic() + 10  # the budget comes back once the stalled request ends
    while time.monotonic() < deadline:
        status, payload = _upload(base, _png(_photo()))
        if status == 200:
            break
        time.sleep(0.2)
    assert status == 200, payload


@pytest.mark.parametrize("headers, part", [
    ({"Host": "evil.example:{port}"}, "not for Host 'evil.example:{port}'"),
    ({"Host": "127.0.0.1:1"}, "its own address only"),
    ({"Host": "127.0.0.1:{port}", "Origin": "http://evil.example"}, "another site ('http://evil.example')"),
    ({"Host": "127.0.0.1:{port}", "Origin": "null"}, "another site ('null')"),
    ({"Host": "127.0.0.1:{port}", "Origin": "https://127.0.0.1:{port}"}, "another site"),
    ({"Host": "127.0.0.1:{port}", "Sec-Fetch-Site": "cross-site"}, "another site"),
])
def test_requests_for_another_host_or_from_another_site_are_refused(app, headers, part):
    base, _ = app
    port = int(base.rsplit(":", 1)[1])
    lines = "".join(f"{key}: {value.format(port=port)}\r\n" for key, value in headers.items())
    _assert_message(*_raw(port, f"GET /api/config HTTP/1.1\r\n{lines}\r\n".encode()), 403, part.format(port=port))
    _assert_message(*_raw(port, f"POST /api/upload HTTP/1.1\r\n{lines}Content-Length: 3\r\n\r\nabc".encode()), 403)


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}", "[::1]:{port}", "127.0.0.2:{port}"])
def test_the_page_own_names_are_served(app, host):
    base, _ = app
    port = int(base.rsplit(":", 1)[1])
    host = host.format(port=port)
    status, payload = _raw(port, f"GET /api/config HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\n\r\n".encode())
    assert status == 200 and payload["strategy"] == "crop"


def test_config_names_models_by_label_only(serve, tiny_generator_file, tmp_path):
    other = tmp_path / "run" / "generator.keras"
    other.parent.mkdir()
    other.write_bytes(open(tiny_generator_file, "rb").read())
    state = _state(tiny_generator_file, allowed_models=[str(other.parent)])
    base, _ = serve(state)
    _, config = _request(base + "/api/config")
    assert "/" not in config.decode() and os.sep not in config.decode()
    assert json.loads(config)["models"][0] == "generator.keras" and "run" in json.loads(config)["models"]


def test_the_model_field_cannot_probe_the_disk(app, tmp_path):
    base, _ = app
    _, answer = _upload(base, _png(_photo()))
    full = _mask_b64(np.full((HEIGHT, WIDTH), 255, np.uint8))
    (tmp_path / "notes.keras").write_text("not a model")
    messages = []
    for model in ["/no/such/model.keras", str(tmp_path), str(tmp_path / "notes.keras"), "/etc/passwd", "../x.keras"]:
        status, payload = _post_json(f"{base}/api/inpaint", {"id": answer["id"], "mask": full, "model": model})
        _assert_message(status, payload, 400, "unknown model")
        messages.append(re.sub(r"unknown model '.*?';", "", payload["error"]))
    assert len(set(messages)) == 1, messages


def test_a_model_replaced_by_a_fifo_is_refused_without_blocking_the_server(serve, tiny_generator_file, tmp_path):
    model = tmp_path / "swapped.keras"
    model.write_bytes(open(tiny_generator_file, "rb").read())
    base, _ = serve(_state(str(model)))
    _, answer = _upload(base, _png(_photo()))
    model.unlink()
    os.mkfifo(model)
    full = _mask_b64(np.full((HEIGHT, WIDTH), 255, np.uint8))
    started = time.monotonic()
    _assert_message(*_post_json(f"{base}/api/inpaint", {"id": answer["id"], "mask": full}), 400,
                    "swapped.keras: not a regular file")
    _assert_message(*_post_json(f"{base}/api/inpaint", {"id": answer["id"], "mask": full}), 400, "not a regular file")
    assert time.monotonic() - started < 20


def test_a_request_waits_a_bounded_time_for_the_model(serve, tiny_generator_file):
    state = _state(tiny_generator_file, busy_wait_s=0.3)
    base, _ = serve(state)
    _, answer = _upload(base, _png(_photo()))
    full = _mask_b64(np.full((HEIGHT, WIDTH), 255, np.uint8))
    with state.lock:  # another request holds the model
        started = time.monotonic()
        _assert_message(*_post_json(f"{base}/api/inpaint", {"id": answer["id"], "mask": full}), 503,
                        "busy running the model for another request")
        assert time.monotonic() - started < 5
    status, _ = _post_json(f"{base}/api/inpaint", {"id": answer["id"], "mask": full})
    assert status == 200
    with state.decoding:  # another request is decoding its photo
        _assert_message(*_upload(base, _png(_photo())), 503, "busy reading other photos")
        _assert_message(*_post_json(f"{base}/api/inpaint", {"id": answer["id"], "mask": full}), 503, "busy reading other")


def test_idle_connections_are_closed(serve, tiny_generator_file):
    _, port = serve(_state(tiny_generator_file), idle_timeout_s=0.5)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        started = time.monotonic()
        assert sock.recv(100) == b""  # closed by the server, well before our own timeout
        assert time.monotonic() - started < 5


def test_a_stalled_request_gets_408_and_does_not_hold_up_others(serve, tiny_generator_file):
    base, port = serve(_state(tiny_generator_file), idle_timeout_s=30, receive_deadline_s=4)

    def others_are_served():  # well before the stalled request's deadline
        started = time.monotonic()
        status, _ = _request(base + "/api/config")
        assert status == 200 and time.monotonic() - started < 3

    # Headers sent, body stalled after a few bytes.
    started = time.monotonic()
    _assert_message(*_raw(port, _post_head(port, headers="Content-Length: 100\r\n") + b"\0" * 10, after=others_are_served),
                    408, "did not arrive within 4 s")
    assert time.monotonic() - started < 12

    # Headers trickled one byte at a time, each well within the idle timeout.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        started = time.monotonic()
        closed = False
        for byte in b"GET /api/config HTTP/1.1\r\nX-Slow: " + b"a" * 100:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            if byte == ord("X"):
                others_are_served()
            time.sleep(0.05)
            if time.monotonic() - started > 6:
                break
        answer = b"" if closed else sock.recv(1000)
    assert closed or answer == b"" or b" 408 " in answer.split(b"\r\n")[0], answer
    assert time.monotonic() - started < 12


def test_connections_beyond_the_limit_get_503(serve, tiny_generator_file):
    base, port = serve(_state(tiny_generator_file), max_connections=2)
    holders = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(2)]
    try:
        time.sleep(0.3)
        status, payload = _raw(port, f"GET /api/config HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        _assert_message(status, payload, 503, "too many connections")
    finally:
        for sock in holders:
            sock.close()
    deadline = time.monotonic() + 10
    while (status := _request(base + "/api/config")[0]) != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status == 200


def test_twenty_users_at_once_each_keep_their_upload(serve, tiny_generator_file):
    # Generous timeouts: this test is about the kept uploads, on a machine that may be busy.
    base, _ = serve(_state(tiny_generator_file, busy_wait_s=300), idle_timeout_s=300)
    rng = np.random.default_rng(1)
    photos = [rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8) for _ in range(20)]
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[30:50, 40:60] = 255
    results = [None] * 20
    uploaded = threading.Barrier(20, timeout=300)

    def user(i):
        phase = "upload"
        try:
            status, answer = _upload(base, _png(photos[i]))
            phase = "wait"
            uploaded.wait()  # every user has uploaded before anyone inpaints
            phase = "inpaint"
            results[i] = _post_json(f"{base}/api/inpaint", {"id": answer.get("id"), "mask": _mask_b64(mask)})
        except Exception as err:  # noqa: BLE001  (reported below)
            results[i] = (0, {"error": f"{phase}: {err!r}"})

    threads = [threading.Thread(target=user, args=(i,), daemon=True) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    assert [status for status, _ in results] == [200] * 20, [payload.get("error") for _, payload in results]
    for (_, payload), photo in zip(results, photos):
        inpainted = np.asarray(Image.open(io.BytesIO(base64.b64decode(payload["png"]))))
        np.testing.assert_array_equal(inpainted[mask == 0], photo[mask == 0])  # each user got their own photo back


@pytest.mark.parametrize("request_body, part", [
    ({"id": ["a"], "mask": "x"}, "'id' must be a string"),
    ({"id": {"a": 1}, "mask": "x"}, "'id' must be a string"),
    ({"id": "x", "mask": "x", "model": ["a"]}, "'model' must be a string"),
    ({"id": "x", "mask": "x", "model": {"path": "/etc"}}, "'model' must be a string"),
    ({"id": "x", "mask": 5}, "'mask' must be a string"),
    ({"id": "x", "mask": "x", "strategy": ["crop"]}, "'strategy' must be a string"),
])
def test_fields_of_the_wrong_type_give_one_line(app, request_body, part):
    base, _ = app
    _assert_message(*_post_json(f"{base}/api/inpaint", request_body), 400, part)


@pytest.mark.parametrize("body, part", [
    ("{" + ",".join(f'"k{i}": 0' for i in range(200_000)) + ', "id": "x"}', "too many fields or lists"),
    ('{"id": "x", "mask": [' + "[]," * 200_000 + "[]]}", "too many fields or lists"),
    ('{"id": "x", "extra": "y"}', "the request has 1 unknown field(s); expected only id, mask, model, strategy"),
])
def test_requests_with_more_than_the_api_fields_are_refused(app, body, part):
    base, _ = app
    status, payload = _request(f"{base}/api/inpaint", body.encode(), {"Content-Type": "application/json"})
    _assert_message(status, json.loads(payload), 400, part)


def test_deeply_nested_json_gives_one_line(app):
    base, _ = app
    body = b"[" * 100_000 + b"]" * 100_000
    status, payload = _request(f"{base}/api/inpaint", body, {"Content-Type": "application/json"})
    _assert_message(status, json.loads(payload), 400, "the request is not")
    status, payload = _request(f"{base}/api/inpaint", b'{"id": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    _assert_message(status, json.loads(payload), 400, "the request is not")


@pytest.mark.parametrize("name", [".", "..", "a" * 300, "%00", "photo%00.png", "..%2F..%2Fetc%2Fpasswd", "a/b.png",
                                  "%2Ftmp%2Fx.png", "%ff%fe.png", "x%0Ay.png"])
def test_odd_file_names_give_one_line(app, name):
    base, _ = app
    _assert_message(*_upload(base, _png(_photo()), name=name), 400, "X-Filename must be a plain file name")


def test_a_long_plain_file_name_is_fine(app):
    base, _ = app
    status, answer = _upload(base, _png(_photo()), name="%C3%A9t%C3%A9 " + "a" * 200 + ".png")
    assert status == 200, answer


@pytest.mark.parametrize("raw, status, part", [
    (b"PUT /api/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 405, "only GET and POST"),
    (b"DELETE / HTTP/1.1\r\n\r\n", 405, "only GET and POST"),
    (b"GET / HTTP/9.9\r\n\r\n", 400, ""),
    (b"BLAH\r\n\r\n", 400, ""),
    (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", 414, ""),
    (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", 431, ""),
    (b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 150 + b"\r\n", 431, ""),
    (b"GET /api/config HTTP/1.0\r\n\r\n", 400, "no Host header"),
    (b"GET /no/such/page HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n", 404, "no such page"),
    (b"POST /api/nothing HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 3\r\n\r\nabc", 404, "no such API call"),
    (b"POST /api/upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Filename: \xff\xfe.png\r\nContent-Length: 3\r\n\r\nabc",
     400, "X-Filename must be a plain file name"),  # raw bytes that are not UTF-8 (nor the page's percent-encoding)
    (b"GET /\xff\xfe HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n", 404, "no such page"),
])
def test_malformed_requests_give_one_line_json(app, raw, status, part):
    base, _ = app
    port = int(base.rsplit(":", 1)[1])
    _assert_message(*_raw(port, raw.replace(b"{port}", str(port).encode())), status, part)


@pytest.mark.parametrize("image_format", image_headers.FORMATS)
def test_huge_headers_of_every_format_are_refused_as_uploads_and_masks(app, image_format):
    base, state = app
    huge = image_headers.declaring(image_format, 16000, 16000)
    _assert_message(*_upload(base, huge, name="big.img"), 413, "big.img: declares too many pixels")
    _, answer = _upload(base, _png(_photo()))
    status, payload = _post_json(f"{base}/api/inpaint", {"id": answer["id"], "mask": base64.b64encode(huge).decode()})
    _assert_message(status, payload, 413, "mask: declares too many pixels")  # the size first, also for a TIFF
    assert len(state.uploads) == 1


_NOT_STRINGS = [1, 2.5, True, False, [], ["x"], {}, {"a": "b"}]


@pytest.mark.parametrize("field", ["id", "mask", "model", "strategy"])
def test_every_field_of_another_type_than_string_gives_one_line(app, field):
    base, _ = app
    for value in _NOT_STRINGS:
        body = {"id": "x", "mask": "x", **{field: value}}
        _assert_message(*_post_json(f"{base}/api/inpaint", body), 400, f"'{field}' must be a string")


def test_a_truncated_upload_gives_one_line(app):
    base, _ = app
    _assert_message(*_upload(base, _png(_photo())[:400], name="cut.png"), 400, "cut.png: ")
