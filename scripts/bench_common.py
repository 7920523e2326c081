"""Shared pieces of the benchmarks: the machine's measured FLOP rate, the generator's arithmetic,
interleaved timing, JSON output and the PyTorch timing worker.

Every figure a benchmark reports is meant to be read as a ratio measured in the same run (the
machine is shared, so absolute times drift): the model's FLOP rate over the machine's measured
FLOP rate, TensorFlow's time over PyTorch's, bfloat16's over float32's. `interleaved_times` runs
the things being compared round-robin, one repeat each per round, so that a change of load hits
all of them alike; medians then discard the rounds a burst of load spoiled.
"""

from __future__ import annotations

import collections
import glob
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

DILATIONS = (1, 2, 4, 8)
TORCH_WORKER = Path(__file__).with_name("torch_reference_model.py")


def _conv_macs(height, width, kernel_size, cin, cout):
    return height * width * kernel_size * kernel_size * cin * cout


def dmfb_macs(channels: int, height: int, width: int, block: str) -> int:
    """Multiply-accumulates of one DMFB (docs/design.md §2a/§2b) on a `height x width` map, biases left out.

    Args:
        channels: the block's channels C (its branches work at C / 4).
        height: map height.
        width: map width.
        block: "paper" or "official".
    """
    inner = channels // 4
    macs = _conv_macs(height, width, 3, channels, inner) + 4 * _conv_macs(height, width, 3, inner, inner)
    if block == "paper":
        return macs + 3 * _conv_macs(height, width, 3, inner, inner) + _conv_macs(height, width, 1, channels, channels)
    return macs + _conv_macs(height, width, 3, channels, channels)


def generator_macs(nf: int, n_blocks: int, block: str, height: int, width: int) -> int:
    """Multiply-accumulates of one generator forward pass (docs/design.md §2 table), per image.

    Counted from the architecture, not from a TensorFlow graph, so that the way an operator is
    lowered (space-to-batch for dilations, padding copies) does not change the count.

    Args:
        nf: base width.
        n_blocks: number of DMFBs.
        block: "paper" or "official".
        height: input height (a multiple of 4).
        width: input width (a multiple of 4).

    Example:

    >>> round(generator_macs(64, 8, "paper", 256, 256) / 1e9, 1)
    32.3
    """
    h2, w2, h4, w4 = height // 2, width // 2, height // 4, width // 4
    macs = _conv_macs(height, width, 5, 4, nf)  # enc1
    macs += _conv_macs(h2, w2, 3, nf, 2 * nf)  # enc2 (stride 2: counted at the output size)
    macs += _conv_macs(h2, w2, 3, 2 * nf, 2 * nf)  # enc3
    macs += _conv_macs(h4, w4, 3, 2 * nf, 4 * nf)  # enc4
    macs += n_blocks * dmfb_macs(4 * nf, h4, w4, block)
    macs += _conv_macs(h4, w4, 3, 4 * nf, 4 * nf)  # dec1
    macs += _conv_macs(h4, w4, 4, 4 * nf, 2 * nf) + _conv_macs(h2, w2, 3, 2 * nf, 2 * nf)  # up1: deconv at its input size
    macs += _conv_macs(h2, w2, 4, 2 * nf, nf) + _conv_macs(height, width, 3, nf, nf)  # up2
    macs += _conv_macs(height, width, 3, nf, 3)  # out
    return macs


def vgg19_macs(height: int, width: int) -> int:
    """Multiply-accumulates of VGG19 up to relu5_1 (docs/design.md §4) on one `height x width` RGB image."""
    plan = [(1, 3, 64), (1, 64, 64), (2, 64, 128), (2, 128, 128), (4, 128, 256)] + [(4, 256, 256)] * 3
    plan += [(8, 256, 512)] + [(8, 512, 512)] * 3 + [(16, 512, 512)]
    return sum(_conv_macs(height // scale, width // scale, 3, cin, cout) for scale, cin, cout in plan)


def discriminator_macs(nf: int, size: int) -> int:
    """Multiply-accumulates of the global + local discriminator (docs/design.md §3) on one image."""
    widths = [3, nf, 2 * nf, 4 * nf, 8 * nf, 8 * nf, 8 * nf]
    macs = sum(_conv_macs(size >> (i + 1), size >> (i + 1), 5, widths[i], widths[i + 1]) for i in range(6))
    macs += sum(_conv_macs(size >> (i + 2), size >> (i + 2), 5, widths[i], widths[i + 1]) for i in range(5))
    return macs + 2 * 8 * nf * (size // 64) ** 2 * 512 + 1024


def train_step_macs(nf: int, n_blocks: int, block: str, size: int) -> int:
    """Estimated multiply-accumulates of one training step (docs/design.md §5-6) per image.

    Counts a backward pass as twice its forward (input and weight gradients) where weights are
    trained, once where only input gradients flow (the frozen VGG19; D in the G step):
    G forward + backward (3x); VGG19 on the target (1x) and on the output with its input gradient
    (2x); in the G step D on the output with its input gradient (2x) and on the target (1x); in the
    D step D on both with weight gradients (2 x 3x).

    Args:
        nf: base width of G and D.
        n_blocks: DMFBs in G.
        block: "paper" or "official".
        size: square image side.
    """
    generator = generator_macs(nf, n_blocks, block, size, size)
    return 3 * generator + 3 * vgg19_macs(size, size) + 9 * discriminator_macs(nf, size)


def interleaved_times(functions: dict[str, Callable[[], float | None]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Times each function `repeats` times, round-robin, after `warmup` untimed rounds.

    A function may return its own measured seconds (a remote worker timing itself); otherwise
    the wall-clock time of the call is used.

    Args:
        functions: name -> zero-argument callable.
        repeats: timed rounds.
        warmup: untimed rounds first.

    Returns:
        name -> list of seconds, one per round.
    """
    seconds = {name: [] for name in functions}
    for round_index in range(warmup + repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            reported = function()
            elapsed = time.perf_counter() - start if reported is None else reported
            if round_index >= warmup:
                seconds[name].append(elapsed)
    return seconds


def profile_op_times(tf, function: Callable[[], None], runs: int = 3) -> dict[str, dict[str, float]]:
    """Where the time goes: milliseconds per run by TensorFlow op type and by layer.

    Runs `function` under the TensorFlow profiler and sums the host events of the ops from the
    trace (`*.xplane.pb`). Concurrent ops overlap, so the sums can exceed the wall-clock time;
    compare shares, not totals. Layers are named by the second component of an op's name
    (`model/layer/...`), with DMFB sub-layers as `block/<sub-layer>` summed over the blocks.

    Args:
        tf: the imported `tensorflow` module.
        function: a warmed-up zero-argument callable (its tracing must be done already).
        runs: profiled runs to average over.

    Returns:
        `{"by_op": {op type: ms}, "by_layer": {layer: ms}}`, largest first.
    """
    import tempfile

    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    logdir = tempfile.mkdtemp(prefix="dmfn_profile_")
    tf.profiler.experimental.start(logdir)
    for _ in range(runs):
        function()
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    with open(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0], "rb") as file:
        space.ParseFromString(file.read())
    by_op, by_layer = collections.Counter(), collections.Counter()
    for plane in (plane for plane in space.planes if "CPU" in plane.name):
        for event in (event for line in plane.lines for event in line.events):
            name = plane.event_metadata[event.metadata_id].name
            # Op events are "scope/.../name:OpType"; executor and function events are not.
            if ":" not in name or "::" in name or name.startswith("__inference") or "/" not in name:
                continue
            milliseconds = event.duration_ps / 1e9 / runs
            by_op[name.rsplit(":", 1)[1]] += milliseconds
            parts = re.sub(r"_\d+(?=/|:|$)", "", name).split("/")
            layer = parts[1].split(":")[0]
            if layer.startswith("block") and len(parts) > 3:
                layer = f"block/{parts[2]}"
            by_layer[layer] += milliseconds
    return {key: {k: round(v, 2) for k, v in counter.most_common()} for key, counter in (("by_op", by_op), ("by_layer", by_layer))}


def median(values) -> float:
    return float(np.median(values))


def synthetic_training_batch(tf, size: int, batch: int) -> dict:
    """Smooth random images, a box hole per image and the size/2 local box around it."""
    rng = np.random.default_rng(0)
    half = size // 2
    image = np.tanh(rng.normal(size=(batch, size, size, 3))).astype("float32")
    mask = np.zeros((batch, size, size, 1), "float32")
    bbox = np.zeros((batch, 4), "int32")
    for i in range(batch):
        top, left = rng.integers(0, size - half + 1, size=2)
        bbox[i] = (top, left, half, half)
        mask[i, top + size // 16 : top + half - size // 16, left + size // 16 : left + half - size // 16] = 1.0
    return {"image": tf.constant(image), "mask": tf.constant(mask), "bbox": tf.constant(bbox)}


def machine_info() -> dict:
    """What a reader needs to judge a figure: CPU, cores, load, and the oneDNN setting."""
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
    }


def emit(record: dict) -> None:
    """Prints one JSON line (the benchmarks' only output on stdout)."""
    print(json.dumps(record), flush=True)


def peak_flop_functions(tf, dtype: str = "float32") -> dict[str, tuple[Callable[[], None], float]]:
    """Two large, well-shaped kernels that show the machine's attainable FLOP rate in TensorFlow.

    A 3x3 convolution 256 -> 256 channels on a 64x64 map (the generator's dominant shape) and a
    2048^3 matmul. Each value is `(function, flops per call)`; the caller times them, ideally
    interleaved with the model, and takes the faster rate as the machine's.

    Args:
        tf: the imported `tensorflow` module.
        dtype: "float32" or "bfloat16".
    """
    rng = np.random.default_rng(0)
    image = tf.constant(rng.normal(size=(1, 64, 64, 256)), dtype)
    kernel = tf.constant(rng.normal(size=(3, 3, 256, 256)) * 0.02, dtype)
    left = tf.constant(rng.normal(size=(2048, 2048)), dtype)
    right = tf.constant(rng.normal(size=(2048, 2048)), dtype)

    conv = tf.function(lambda: tf.nn.conv2d(image, kernel, 1, "SAME"))
    matmul = tf.function(lambda: tf.matmul(left, right))

    def run_conv():
        conv().numpy()

    def run_matmul():
        matmul().numpy()

    return {
        "conv3x3": (run_conv, 2.0 * 64 * 64 * 9 * 256 * 256),
        "matmul": (run_matmul, 2.0 * 2048**3),
    }


def measure_peak_gflops(tf, repeats: int = 5, dtype: str = "float32") -> dict:
    """The machine's FLOP rate measured now: `{"peak_gflops": best median rate, per kernel...}`.

    Args:
        tf: the imported `tensorflow` module.
        repeats: timed runs per kernel.
        dtype: "float32" or "bfloat16".
    """
    kernels = peak_flop_functions(tf, dtype)
    times = interleaved_times({name: fn for name, (fn, _) in kernels.items()}, repeats, warmup=2)
    rates = {f"{name}_gflops": kernels[name][1] / median(times[name]) / 1e9 for name in kernels}
    return {"peak_gflops": max(rates.values()), **{k: round(v, 1) for k, v in rates.items()}}


def find_torch_python(explicit: str | None) -> str | None:
    """An interpreter that can import torch: `explicit`, `$DMFN_TORCH_PYTHON`, this one, or None.

    Args:
        explicit: a path given on the command line, or None.
    """
    candidates = [explicit, os.environ.get("DMFN_TORCH_PYTHON"), sys.executable]
    for candidate in candidates:
        if not candidate:
            continue
        path = shutil.which(candidate) or candidate
        probe = subprocess.run([path, "-c", "import torch"], capture_output=True)
        if probe.returncode == 0:
            return path
    return None


class TorchWorker:
    """A `torch_reference_model.py` worker process: builds the generator of docs/design.md and times forwards.

    It runs under its own interpreter (one with PyTorch installed), so the project's environment
    never needs PyTorch; each `time()` returns the seconds the worker measured around the forward
    pass alone (no pipe overhead).

    Args:
        python: an interpreter that can import torch (see `find_torch_python`).
        threads: intra-op threads for PyTorch (default: its own choice, the core count).
    """

    def __init__(self, python: str, threads: int | None = None):
        env = dict(os.environ)
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        # OpenMP's default busy-waiting collapses when another process holds a core (seen here: a
        # forward pass 10-100x slower under load); passive waiting is what a shared machine needs.
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        self.omp_wait_policy = env["OMP_WAIT_POLICY"]
        self._process = subprocess.Popen(
            [python, str(TORCH_WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )

    def request(self, **message) -> dict:
        self._process.stdin.write(json.dumps(message) + "\n")
        self._process.stdin.flush()
        reply = json.loads(self._process.stdout.readline())
        if "error" in reply:
            raise RuntimeError(f"PyTorch worker: {reply['error']}")
        return reply

    def build(self, **spec) -> None:
        self.request(op="build", **spec)

    def time(self) -> float:
        return self.request(op="time")["seconds"]

    def close(self) -> None:
        self._process.stdin.close()
        self._process.wait(timeout=60)
