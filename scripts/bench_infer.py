"""Inference latency and throughput of the generator in every deployment format, as JSON lines.

For each format (Keras, SavedModel, TFLite float32/float16/int8 at a fixed size) and each batch
size, prints one JSON object: median and 90th-percentile latency per batch, images per second, and
the size of the exported file. Keras runs the model under `tf.function`; the SavedModel runs its
`serving_default` signature (uint8 in and out, padding and compositing included); TFLite runs the
fixed-size model, resized to the batch, with `--threads` interpreter threads.

Usage (a quick check; the paper's model at 256² takes seconds per image on a small CPU):

    python scripts/bench_infer.py --nf 8 --n-blocks 2 --size 64 --repeats 3
    python scripts/bench_infer.py --model runs/celeba_hq --size 256
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import numpy as np


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help=".keras generator, run directory or reference checkpoint (default: random weights)")
    parser.add_argument("--nf", type=int, default=64, help="base width of the random generator (default 64)")
    parser.add_argument("--n-blocks", type=int, default=8, help="DMFBs of the random generator (default 8)")
    parser.add_argument("--block", default="paper", choices=("paper", "official"))
    parser.add_argument("--size", type=int, default=256, help="square image side, a multiple of 4 (default 256)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per measurement (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="TFLite interpreter threads")
    parser.add_argument("--formats", nargs="+", default=["keras", "saved_model", "tflite"])
    parser.add_argument("--workdir", help="where to write the exported models (default: a temporary folder)")
    return parser.parse_args(argv)


def _time(fn, repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return seconds


def _folder_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


def _record(fmt: str, variant: str, batch: int, size: int, seconds: list[float], file_bytes: int, device: str) -> dict:
    median = float(np.median(seconds))
    return {
        "format": fmt,
        "variant": variant,
        "batch": batch,
        "size": size,
        "latency_ms_median": round(1000 * median, 3),
        "latency_ms_p90": round(1000 * float(np.percentile(seconds, 90)), 3),
        "images_per_s": round(batch / median, 3),
        "file_bytes": file_bytes,
        "device": device,
    }


def main(argv=None) -> None:
    args = _parse_args(argv)
    if args.size <= 0 or args.size % 4:
        raise SystemExit(f"--size must be a positive multiple of 4, got {args.size}")

    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from dmfn_tf.models.generator import build_generator
    from dmfn_tf.serving.keras_export import export_keras
    from dmfn_tf.model_io import load_generator
    from dmfn_tf.serving.saved_model_export import export_saved_model
    from dmfn_tf.serving.export import TFLITE_QUANTIZATIONS as QUANTIZATIONS
    from dmfn_tf.serving.tflite_export import convert_to_tflite

    generator = load_generator(args.model) if args.model else build_generator(args.nf, args.n_blocks, args.block)
    gpus = tf.config.list_physical_devices("GPU")
    device = (
        tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
        if gpus
        else f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    )
    workdir = args.workdir or tempfile.mkdtemp(prefix="dmfn_bench_")
    rng = np.random.default_rng(0)
    size = args.size

    def batch_of(n):
        image = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
        mask = np.zeros((n, size, size, 1), np.float32)
        mask[:, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1
        return image, mask

    def emit(record):
        print(json.dumps(record), flush=True)

    if "keras" in args.formats:
        file_bytes = os.path.getsize(export_keras(generator, os.path.join(workdir, "dmfn.keras")))
        forward = tf.function(lambda x: generator(x, training=False))
        for batch in args.batches:
            x = tf.random.uniform((batch, size, size, 4), -1.0, 1.0)
            seconds = _time(lambda: forward(x).numpy(), args.repeats, args.warmup)
            emit(_record("keras", "float32", batch, size, seconds, file_bytes, device))

    if "saved_model" in args.formats:
        directory = export_saved_model(generator, os.path.join(workdir, "saved_model", "1"), max_pixels=max(args.batches) * size * size)
        serving = tf.saved_model.load(directory).signatures["serving_default"]
        for batch in args.batches:
            image, mask = (tf.constant(a) for a in batch_of(batch))
            seconds = _time(lambda: serving(image=image, mask=mask)["inpainted"].numpy(), args.repeats, args.warmup)
            emit(_record("saved_model", "serving_default", batch, size, seconds, _folder_bytes(directory), device))

    if "tflite" in args.formats:
        for quantization in QUANTIZATIONS:
            model = convert_to_tflite(generator, size=size, quantization=quantization)
            with open(os.path.join(workdir, f"dmfn_{size}_{quantization}.tflite"), "wb") as file:
                file.write(model)
            interpreter = Interpreter(model_content=model, num_threads=args.threads)
            runner = interpreter.get_signature_runner()
            for batch in args.batches:
                image, mask = batch_of(batch)
                inputs = {"image": image.astype(np.float32) / 127.5 - 1.0, "mask": mask}
                seconds = _time(lambda: runner(**inputs), args.repeats, args.warmup)
                emit(_record("tflite", quantization, batch, size, seconds, len(model), f"{device}, {args.threads} threads"))


if __name__ == "__main__":
    main()
