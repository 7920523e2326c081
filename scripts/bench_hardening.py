"""Peak memory of hostile data files and model files (issue 19), for one source tree or two side by side.

Each case runs in a fresh Python process with `PYTHONPATH` set to a source tree (this one, or an
older checkout given with `--before`), which reports its resident memory after its imports and its
peak (`VmHWM`) at the end. The parent watches every process: one whose memory passes `--cap-mb`
or that runs past `--timeout` is killed, and reported so ("killed above 4000 MB", "hung: killed
after 60 s"), as the old code was by the kernel or a user.

Cases (inputs built once under `--work`):
- data folders, read by `build_dataset` with the up-front check (`checked`) and without it
  (`unchecked`, decoded in the pipeline): three small photos plus one of a symbolic link to
  `/dev/zero` named `zero.png`, a FIFO `fifo.png`, a real 10000² PNG and a real 20000² PNG;
- model files, read by `load_generator`: a 1.5 MB `.keras` whose `config.json` inflates to 1.5 GiB,
  and one whose first convolution declares 5,000,000 filters.

Usage (run at low priority beside other work):

```bash
git archive <old commit> | tar -x -C /tmp/before_tree
nice -n 19 python scripts/bench_hardening.py --before /tmp/before_tree --out bench_hardening.json
```
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

CHILD_PRELUDE = """
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
def _status_mb(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":")) / 1024
"""

DATA_CHILD = CHILD_PRELUDE + """
import tensorflow as tf
from dmfn_tf.config import DataConfig
from dmfn_tf.data.pipeline import build_dataset
base = _status_mb("VmRSS")
try:
    cfg = DataConfig(path=sys.argv[1], check_files=sys.argv[2] == "checked", mask_delta=8)
    for batch in build_dataset(cfg, 64, 2, seed=0).take(3):
        pass
    outcome = "ran"
except Exception as err:
    outcome = f"{type(err).__name__}: {' '.join(str(err).split())[:200]}"
print("RESULT" + json.dumps({"base_mb": base, "peak_mb": _status_mb("VmHWM"), "outcome": outcome}), flush=True)
"""

MODEL_CHILD = CHILD_PRELUDE + """
import keras
from dmfn_tf.model_io import load_generator
base = _status_mb("VmRSS")
try:
    load_generator(sys.argv[1])
    outcome = "loaded"
except Exception as err:
    outcome = f"{type(err).__name__}: {' '.join(str(err).split())[:200]}"
print("RESULT" + json.dumps({"base_mb": base, "peak_mb": _status_mb("VmHWM"), "outcome": outcome}), flush=True)
"""


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_black_png(path: Path, side: int) -> None:
    """A real, fully decodable side x side black RGB PNG, compressed row by row (a few hundred KB)."""
    compressor = zlib.compressobj(9)
    row = b"\0" * (1 + 3 * side)
    with open(path, "wb") as file:
        file.write(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)))
        data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
        file.write(_png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b""))


def data_folders(work: Path) -> dict[str, Path]:
    """One folder per hostile file, each with three small photos beside it."""
    from PIL import Image

    folders = {}
    for name in ("zero", "fifo", "png10000", "png20000"):
        folder = work / "data" / name
        if not folder.exists():
            folder.mkdir(parents=True)
            for index in range(3):
                Image.fromarray(np.full((80, 96, 3), 70 * index, np.uint8)).save(folder / f"photo_{index}.png")
            target = folder / f"{name}.png"
            if name == "zero":
                target.symlink_to("/dev/zero")
            elif name == "fifo":
                os.mkfifo(target)
            else:
                write_black_png(target, int(name[3:]))
        folders[name] = folder
    return folders


def model_files(work: Path) -> dict[str, Path]:
    """A tiny generator's `.keras` file rewritten two ways (config inflating to 1.5 GiB; 5,000,000 filters)."""
    folder = work / "models"
    folder.mkdir(parents=True, exist_ok=True)
    tiny = folder / "tiny.keras"
    if not tiny.exists():
        subprocess.run([sys.executable, "-c", "import sys; from dmfn_tf.models.generator import build_generator; "
                        "build_generator(nf=4, n_blocks=1).save(sys.argv[1])", str(tiny)], check=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3"))
    with zipfile.ZipFile(tiny) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    config = json.loads(members["config.json"])
    files = {"config_bomb": folder / "config_bomb.keras", "filters_5m": folder / "filters_5m.keras"}
    if not files["config_bomb"].exists():
        with zipfile.ZipFile(files["config_bomb"], "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            for name, data in members.items():
                if name != "config.json":
                    archive.writestr(name, data)
            with archive.open("config.json", "w", force_zip64=True) as member:
                member.write(members["config.json"])
                chunk = b" " * (64 << 20)
                for _ in range(24):  # 1.5 GiB of trailing white space: still valid JSON
                    member.write(chunk)
    if not files["filters_5m"].exists():
        first = next(layer for layer in config["config"]["layers"] if "filters" in layer["config"])
        first["config"]["filters"] = 5_000_000
        with zipfile.ZipFile(files["filters_5m"], "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in members.items():
                archive.writestr(name, json.dumps(config).encode() if name == "config.json" else data)
    return files


def measure(tree: Path, child: str, args: list[str], cap_mb: float, timeout: float) -> dict:
    """Runs `child` under `tree`, killing it above `cap_mb` of resident memory or after `timeout` seconds."""
    env = dict(os.environ, PYTHONPATH=str(tree), TF_CPP_MIN_LOG_LEVEL="3")
    with tempfile.TemporaryFile("w+") as output:
        process = subprocess.Popen([sys.executable, "-c", child, *args], stdout=output, stderr=subprocess.DEVNULL,
                                   env=env, cwd=tree)
        start, peak, verdict = time.monotonic(), 0.0, None
        while process.poll() is None:
            try:
                with open(f"/proc/{process.pid}/status") as status:
                    fields = dict(line.split(":", 1) for line in status if ":" in line)
                peak = max(peak, int(fields.get("VmHWM", "0 kB").split()[0]) / 1024)
            except (OSError, ValueError):
                pass
            elapsed = time.monotonic() - start
            if peak > cap_mb or elapsed > timeout:
                process.kill()
                verdict = f"killed above {cap_mb:.0f} MB" if peak > cap_mb else f"hung: killed after {timeout:.0f} s"
                break
            time.sleep(0.02)
        process.wait()
        seconds = time.monotonic() - start
        output.seek(0)
        lines = [line for line in output.read().splitlines() if line.startswith("RESULT")]
    if verdict or not lines:
        return {"outcome": verdict or f"exit {process.returncode} without a result", "peak_mb": round(peak),
                "seconds": round(seconds, 1)}
    result = json.loads(lines[-1][len("RESULT"):])
    return {"outcome": result["outcome"], "base_mb": round(result["base_mb"]), "peak_mb": round(result["peak_mb"]),
            "growth_mb": round(result["peak_mb"] - result["base_mb"]), "seconds": round(seconds, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", help="an older source tree to measure beside this one")
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "bench_hardening"))
    parser.add_argument("--cap-mb", type=float, default=4000)
    parser.add_argument("--timeout", type=float, default=90)
    parser.add_argument("--out", help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    work = Path(args.work)
    cases = [(f"data {name} ({mode})", DATA_CHILD, [str(folder), mode])
             for name, folder in data_folders(work).items() for mode in ("checked", "unchecked")]
    cases += [(f"model {name}", MODEL_CHILD, [str(path)]) for name, path in model_files(work).items()]
    trees = {"after": ROOT} if not args.before else {"before": Path(args.before), "after": ROOT}
    results = {}
    for label, child, child_args in cases:
        for tree_name, tree in trees.items():
            result = measure(tree, child, child_args, args.cap_mb, args.timeout)
            results.setdefault(label, {})[tree_name] = result
            print(f"{label:32s} {tree_name:6s} {json.dumps(result)}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
