"""Memory of `dmfn app` under the hostile requests of issue 19: the server's peak RSS above its idle size.

Starts `dmfn app` (the shipped model unless `--model` names another) on an ephemeral port of
127.0.0.1, inpaints one small photo so that the model is loaded, takes the server's resident size
as the baseline, then sends each case and reads the server's peak resident size (`VmHWM`, reset
before each case through `/proc/PID/clear_refs`) and its size afterwards (`VmRSS`):

- `mask_png_16000`: a decodable 16000 x 16000 grayscale PNG mask (about 242 KiB) for an 80 x 64 photo;
- `mask_gif_600_frames`: a 600-frame 640 x 480 GIF mask for the same photo;
- `upload_png_13000`: a decodable 13000 x 13000 grayscale PNG upload (about 160 KiB);
- `content_length_minus_1`: an upload declaring `Content-Length: -1` followed by 800 MiB;
- `content_length_abc`: `Content-Length: abc`;
- `four_parallel_250_mib`: four uploads of 250 MiB each at once;
- `twenty_users`: 20 users uploading and inpainting at once (how many were told to upload again);
- `json_16_mib_of_keys`: an inpaint request of 16 MiB, an object of about 1.5 million keys;
- `four_parallel_8192_jpegs`: four users uploading an 8192 x 8192 JPEG (the largest photo
  accepted) at once: what the largest legitimate upload costs, and that parallel ones do not add up;
- `four_parallel_8192_pngs`: the same with an 8192 x 8192 RGB PNG (decoded whole by Pillow, where a
  JPEG is decoded at a fraction of its size for the page's picture).

Run it at `nice -n 19`; it prints one JSON object (also written to `--out`). Each case's status
and the first characters of the answer are recorded beside its memory.

Example:

```
nice -n 19 env PYTHONPATH=$PWD python scripts/bench_app_hardening.py --out /tmp/app_hardening.json
```
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

import numpy as np
from PIL import Image

MIB = 1024 * 1024


def png_of_zeros(side: int) -> bytes:
    """A real, decodable `side` x `side` 8-bit grayscale PNG of zeros (deflate shrinks it about 1000 times)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor, row, parts = zlib.compressobj(9), b"\0" * (side + 1), []
    for _ in range(side):
        parts.append(compressor.compress(row))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def gif_animation(frames: int, width: int, height: int) -> bytes:
    """An animated GIF of alternating black and white frames (Pillow would merge equal frames)."""
    images = [Image.new("L", (width, height), 255 * (i % 2)) for i in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:])
    return buffer.getvalue()


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def memory_mb(pid: int) -> dict:
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return {key: int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM")}


def reset_peak(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def call(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    except OSError as err:
        return 0, f"{type(err).__name__}: {err}"
    finally:
        connection.close()


def raw_post(port: int, path: str, length_header: str, body_bytes: int) -> tuple[int, str]:
    """Sends a POST whose `Content-Length` is `length_header`, then `body_bytes` of zeros, then reads the answer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=600)
    try:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {length_header}\r\n"
                     f"X-Filename: junk.png\r\n\r\n".encode())
        block, sent = b"\0" * MIB, 0
        try:
            while sent < body_bytes:
                sock.sendall(block[: min(MIB, body_bytes - sent)])
                sent += MIB
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server refused and closed; its answer may still be readable
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError as err:
            if not answer:
                return 0, f"{type(err).__name__} after {sent // MIB} MiB sent"
        head, _, text = answer.partition(b"\r\n\r\n")
        status = int(head.split()[1]) if head.startswith(b"HTTP/") else 0
        return status, text.decode("utf-8", "replace")
    finally:
        sock.close()


def upload(port: int, photo: np.ndarray) -> tuple[int, dict]:
    status, text = call(port, "POST", "/api/upload", png(photo), {"X-Filename": "photo.png", "X-Strategy": "auto"})
    return status, json.loads(text) if text.startswith("{") else {"error": text}


def inpaint(port: int, upload_id: str, mask_bytes: bytes) -> tuple[int, str]:
    body = json.dumps({"id": upload_id, "mask": base64.b64encode(mask_bytes).decode(), "model": "", "strategy": "auto"})
    return call(port, "POST", "/api/inpaint", body.encode(), {"Content-Type": "application/json"})


def twenty_users(port: int) -> tuple[int, str]:
    rng = np.random.default_rng(0)
    photos = [rng.integers(0, 256, (150, 200, 3), dtype=np.uint8) for _ in range(20)]
    hole = np.zeros((150, 200), np.uint8)
    hole[60:90, 80:120] = 255
    results = [None] * 20

    def user(i):
        status, answer = upload(port, photos[i])
        results[i] = inpaint(port, answer.get("id", ""), png(hole)) if status == 200 else (status, str(answer))

    threads = [threading.Thread(target=user, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(900)
    statuses = [r[0] if r else 0 for r in results]
    again = sum(1 for r in results if r and "again" in r[1])
    return statuses.count(200), f"{statuses.count(200)}/20 inpainted, {again} told to upload again, statuses {sorted(set(statuses))}"


def json_of_keys(port: int, size: int) -> tuple[int, str]:
    keys, total, i = [], 2, 0
    while total < size - 20:
        keys.append(f'"{i:x}":0')
        total += len(keys[-1]) + 1
        i += 1
    return call(port, "POST", "/api/inpaint", ("{" + ",".join(keys) + "}").encode(), {"Content-Type": "application/json"})


def parallel_uploads(port: int, data: bytes, count: int) -> tuple[int, str]:
    results = [None] * count
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, call(
        port, "POST", "/api/upload", data, {"X-Filename": "large.jpg", "X-Strategy": "crop"}))) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(900)
    statuses = [r[0] if r else 0 for r in results]
    return statuses.count(200), f"statuses {statuses}; " + " | ".join((r or (0, ""))[1][:60] for r in results)


def large_photo(side: int, image_format: str = "JPEG") -> bytes:
    ramp = np.linspace(0, 255, side, dtype=np.float32)
    image = np.stack([np.add.outer(ramp, ramp) / 2, np.tile(ramp, (side, 1)), np.tile(ramp[:, None], (1, side))], -1)
    buffer = io.BytesIO()
    options = {"quality": 85} if image_format == "JPEG" else {"compress_level": 1}
    Image.fromarray(image.astype(np.uint8)).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def parallel_bodies(port: int, count: int, size: int) -> tuple[int, str]:
    results = [None] * count
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, raw_post(port, "/api/upload", str(size), size)))
               for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(900)
    statuses = [r[0] if r else 0 for r in results]
    return max(statuses), f"statuses {statuses}; " + " | ".join((r or (0, ""))[1][:80] for r in results)


def run_case(model: str, case) -> dict:
    """Starts a fresh server, loads the model with one small inpainting, then measures `case(port, photo_id)`."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    server = subprocess.Popen([sys.executable, "-m", "dmfn_tf", "app", "--model", model, "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        port = int(server.stdout.readline().split("http://127.0.0.1:")[1].split("/")[0])
        photo = np.random.default_rng(1).integers(0, 256, (64, 80, 3), dtype=np.uint8)
        hole = np.zeros((64, 80), np.uint8)
        hole[20:40, 30:50] = 255
        warm = inpaint(port, upload(port, photo)[1]["id"], png(hole))
        assert warm[0] == 200, warm
        time.sleep(1)
        baseline = memory_mb(server.pid)["VmRSS"]
        reset_peak(server.pid)
        start = time.perf_counter()
        status, text = case(port, lambda: upload(port, photo)[1].get("id", ""))
        seconds = time.perf_counter() - start
        time.sleep(0.5)
        memory = memory_mb(server.pid)
        return {"status": status, "answer": text[:160], "seconds": round(seconds, 1), "baseline_rss_mb": round(baseline),
                "peak_above_baseline_mb": round(memory["VmHWM"] - baseline),
                "kept_above_baseline_mb": round(memory["VmRSS"] - baseline)}
    finally:
        server.terminate()
        server.wait(timeout=60)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="shipped", help="the model dmfn app starts with (default: shipped)")
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--cases", nargs="*", help="only these cases")
    args = parser.parse_args(argv)

    cases = {
        "mask_png_16000": lambda port, photo_id: inpaint(port, photo_id(), png_of_zeros(16000)),
        "mask_gif_600_frames": lambda port, photo_id: inpaint(port, photo_id(), gif_animation(600, 640, 480)),
        "upload_png_13000": lambda port, photo_id: call(port, "POST", "/api/upload", png_of_zeros(13000),
                                                        {"X-Filename": "big.png", "X-Strategy": "auto"}),
        "content_length_minus_1": lambda port, photo_id: raw_post(port, "/api/upload", "-1", 800 * MIB),
        "content_length_abc": lambda port, photo_id: raw_post(port, "/api/upload", "abc", 0),
        "four_parallel_250_mib": lambda port, photo_id: parallel_bodies(port, 4, 250 * MIB),
        "twenty_users": lambda port, photo_id: twenty_users(port),
        "json_16_mib_of_keys": lambda port, photo_id: json_of_keys(port, 16 * MIB - 100),
        "four_parallel_8192_jpegs": lambda port, photo_id: parallel_uploads(port, large_photo(8192), 4),
        "four_parallel_8192_pngs": lambda port, photo_id: parallel_uploads(port, large_photo(8192, "PNG"), 4),
    }
    record = {"model": args.model, "cases": {}}
    for name, case in cases.items():
        if not args.cases or name in args.cases:
            record["cases"][name] = run_case(args.model, case)
            print(name, json.dumps(record["cases"][name]), file=sys.stderr, flush=True)
    print(json.dumps(record, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(record, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
