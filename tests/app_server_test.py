"""Tests for the `dmfn app` server's API (dmfn_tf/app/server.py), over HTTP without a browser."""

import base64
import io
import json
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from dmfn_tf.app.server import AppState, make_server
from dmfn_tf.cli import build_parser
from dmfn_tf.high_resolution import HDOptions

HEIGHT, WIDTH = 90, 120


@pytest.fixture
def app(tiny_generator_file):
    state = AppState(model=tiny_generator_file, hd=HDOptions(strategy="crop", trained_size=64), max_pixels=6000)
    server = make_server(state, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", state
    server.shutdown()
    server.server_close()


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


def _assert_message(status, payload, expected_status, *parts):
    assert status == expected_status, payload
    assert set(payload) == {"error"}
    assert "\n" not in payload["error"] and "Traceback" not in payload["error"]
    for part in parts:
        assert part in payload["error"], payload["error"]


def test_page_and_config_are_served(app):
    base, state = app
    status, page = _request(base + "/")
    assert status == 200 and b'<canvas id="mask-canvas">' in page and b"http://" not in page.replace(b"http://127", b"")
    status, config = _request(base + "/api/config")
    assert json.loads(config) == {"model": state.model, "strategies": ["auto", "original", "crop", "resize"],
                                  "strategy": "crop", "max_pixels": 6000, "trained_size": 64}


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
    _assert_message(*_post_json(f"{base}/api/inpaint", {"id": answer["id"], "mask": full, "model": "/no/such/model.keras"}),
                    400, "/no/such/model.keras: no such model file")
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
    _assert_message(*_post_json(f"{base}/api/inpaint", {}), 500, "internal error (RuntimeError: something deep went wrong)")


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
        assert status == 200 and json.loads(config)["model"] == tiny_generator_file
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_dmfn_app_refuses_a_missing_model_before_serving(capsys):
    from dmfn_tf.cli import main

    assert main(["app", "--model", "/no/such/model.keras", "--port", "0"]) == 2
    assert "/no/such/model.keras: no such model file" in capsys.readouterr().err


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
