"""Generator forward-pass speed as JSON lines, as ratios measured in the same run.

For each block variant it times, interleaved round by round: the machine's attainable FLOP rate
(a large 3x3 convolution and a matmul), the float32 generator under `tf.function`, optionally the
same model compiled with XLA, the bfloat16 inference copy (`dmfn_tf.inpaint.precision`) and the
same architecture in PyTorch (`--compare-torch`). Each record gives medians and the ratios that
matter: the model's FLOP rate over the machine's, TensorFlow's time over PyTorch's, bfloat16's
speed-up over float32 and the PSNR between their outputs.

PyTorch is never imported here: `--compare-torch` runs `scripts/torch_reference_model.py` in a
worker process under an interpreter that has torch (`--torch-python`, `$DMFN_TORCH_PYTHON`, or
this one), and is skipped with a message when there is none.

Usage:

    python scripts/bench_generator.py --blocks paper official --repeats 7 --precisions float32 bfloat16 \
        --compare-torch --torch-python /tmp/torchvenv/bin/python
    python scripts/bench_generator.py --nf 8 --n-blocks 2 --size 64 --repeats 3   # a quick check
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_common  # noqa: E402  (a sibling script, not a package)


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", nargs="+", default=["paper", "official"], choices=("paper", "official"))
    parser.add_argument("--nf", type=int, default=64)
    parser.add_argument("--n-blocks", type=int, default=8)
    parser.add_argument("--size", type=int, default=256, help="square input side, a multiple of 4 (default 256)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument(
        "--init",
        default="keras",
        choices=("keras", "reference"),
        help="random weights: Keras' initialisers, or N(0, 0.02) for every tensor as the authors' code (default keras)",
    )
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (default 7); medians are reported")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--precisions", nargs="+", default=["float32", "bfloat16"], choices=("float32", "bfloat16"))
    parser.add_argument("--xla", action="store_true", help="also time the float32 model with jit_compile=True")
    parser.add_argument("--tflite", action="store_true", help="also time the float32 TFLite model (compositing included) and size the int8 one")
    parser.add_argument("--profile", action="store_true", help="also print where the float32 model's time goes (TensorFlow profiler)")
    parser.add_argument("--compare-torch", action="store_true", help="also time the same architecture rebuilt in PyTorch")
    parser.add_argument("--torch-python", help="an interpreter with torch installed (default: $DMFN_TORCH_PYTHON or this one)")
    parser.add_argument("--inter-op", type=int, help="TensorFlow inter-op threads (default: TensorFlow's choice)")
    parser.add_argument("--intra-op", type=int, help="TensorFlow intra-op threads (default: TensorFlow's choice)")
    return parser.parse_args(argv)


def _psnr_db(reference: np.ndarray, other: np.ndarray, data_range: float = 2.0) -> float:
    mse = float(np.mean((reference.astype("float64") - other.astype("float64")) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(data_range**2 / mse)


def _start_torch_worker(args):
    if not args.compare_torch:
        return None
    python = bench_common.find_torch_python(args.torch_python)
    if python is None:
        print("--compare-torch: no interpreter with torch found (pass --torch-python); skipping PyTorch", file=sys.stderr)
        return None
    return bench_common.TorchWorker(python, threads=args.intra_op)


def main(argv=None) -> None:
    args = _parse_args(argv)
    if args.size <= 0 or args.size % 4:
        raise SystemExit(f"--size must be a positive multiple of 4, got {args.size}")
    if args.tflite and "float32" not in args.precisions:
        raise SystemExit("--tflite compares with the float32 Keras model: keep float32 in --precisions")

    import keras
    import tensorflow as tf

    from dmfn_tf import build_generator

    if args.inter_op:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_op)
    if args.intra_op:
        tf.config.threading.set_intra_op_parallelism_threads(args.intra_op)

    torch_worker = _start_torch_worker(args)
    peak_kernels = bench_common.peak_flop_functions(tf)
    inputs = tf.constant(np.random.default_rng(0).uniform(-1, 1, (args.batch, args.size, args.size, 4)).astype("float32"))
    common = {"bench": "generator_forward", "size": args.size, "batch": args.batch, "nf": args.nf, "n_blocks": args.n_blocks, "init": args.init}
    # What users see is the composite: generated pixels only in the hole (here the centred half-side box).
    hole = np.zeros((1, args.size, args.size, 1), "float32")
    hole[:, args.size // 4 : 3 * args.size // 4, args.size // 4 : 3 * args.size // 4] = 1

    for block in args.blocks:
        keras.utils.set_random_seed(0)
        generator = build_generator(nf=args.nf, n_blocks=args.n_blocks, block=block)
        if args.init == "reference":
            rng = np.random.default_rng(0)
            generator.set_weights([rng.normal(0, 0.02, weight.shape).astype("float32") for weight in generator.get_weights()])
        models = {"float32": generator}
        if "bfloat16" in args.precisions:
            from dmfn_tf.inpaint.precision import bfloat16_generator

            models["bfloat16"] = bfloat16_generator(generator)
        compiled = {name: tf.function(model.__call__) for name, model in models.items() if name in args.precisions}
        if args.xla:
            compiled["float32_xla"] = tf.function(generator.__call__, jit_compile=True)
        outputs = {name: function(inputs).numpy() for name, function in compiled.items()}

        functions = {name: _discarding(function, inputs) for name, function in compiled.items()}
        tflite_sizes = {}
        if args.tflite:
            functions["tflite_float32"], tflite_sizes = _tflite_runner(generator, args.size, inputs.numpy())
        functions.update({name: kernel for name, (kernel, _) in peak_kernels.items()})
        if torch_worker is not None:
            torch_worker.build(block=block, nf=args.nf, n_blocks=args.n_blocks, size=args.size, batch=args.batch)
            functions["torch"] = torch_worker.time
        times = bench_common.interleaved_times(functions, args.repeats, args.warmup)

        peak_rates = {name: flops / bench_common.median(times[name]) / 1e9 for name, (_, flops) in peak_kernels.items()}
        peak = max(peak_rates.values())
        flops = 2.0 * args.batch * bench_common.generator_macs(args.nf, args.n_blocks, block, args.size, args.size)
        torch_seconds = bench_common.median(times["torch"]) if "torch" in times else None
        float32_seconds = bench_common.median(times["float32"]) if "float32" in times else None
        if args.tflite:
            seconds = bench_common.median(times["tflite_float32"])
            record = {
                **common,
                "block": block,
                "precision": "tflite_float32",
                "seconds_median": round(seconds, 4),
                "ratio_to_keras_float32": round(seconds / float32_seconds, 3),
                "tflite_float32_bytes": tflite_sizes["float32"],
                "tflite_int8_bytes": tflite_sizes["int8"],
                "int8_size_ratio": round(tflite_sizes["int8"] / tflite_sizes["float32"], 3),
            }
            bench_common.emit({**record, **bench_common.machine_info()})
        for name in compiled:
            seconds = bench_common.median(times[name])
            record = {
                **common,
                "block": block,
                "precision": name,
                "seconds_median": round(seconds, 4),
                "seconds_min": round(min(times[name]), 4),
                "gflop_per_image": round(flops / args.batch / 1e9, 2),
                "gflops": round(flops / seconds / 1e9, 1),
                "peak_gflops_float32": round(peak, 1),
                **{f"peak_{kernel}_gflops": round(rate, 1) for kernel, rate in peak_rates.items()},
                "ratio_to_peak": round(flops / seconds / 1e9 / peak, 3),
            }
            if torch_seconds is not None:
                record["torch_seconds_median"] = round(torch_seconds, 4)
                record["ratio_to_torch"] = round(seconds / torch_seconds, 3)
            if name != "float32" and float32_seconds is not None:
                record["speedup_vs_float32"] = round(float32_seconds / seconds, 3)
                record["psnr_vs_float32_db"] = round(_psnr_db(outputs["float32"], outputs[name]), 2)
                record["psnr_composite_vs_float32_db"] = round(_psnr_db(outputs["float32"] * hole, outputs[name] * hole), 2)
            bench_common.emit({**record, **bench_common.machine_info()})

        if args.profile and "float32" in functions:
            profile = bench_common.profile_op_times(tf, functions["float32"])
            for key, milliseconds in profile.items():
                total = sum(milliseconds.values())
                shares = {name: round(ms / total, 4) for name, ms in milliseconds.items()}
                bench_common.emit({**common, "bench": f"profile_{key}", "block": block, "total_op_ms": round(total, 1), "share": shares})

    if torch_worker is not None:
        bench_common.emit({"bench": "torch_info", **torch_worker.request(op="info"), "omp_wait_policy": torch_worker.omp_wait_policy})
        torch_worker.close()


def _tflite_runner(generator, size: int, inputs: np.ndarray):
    """A runner of the float32 TFLite model on the image and mask inside `inputs`, and the byte
    sizes of the float32 and dynamic-range int8 models."""
    from ai_edge_litert.interpreter import Interpreter

    from dmfn_tf.serving.tflite_export import convert_to_tflite

    models = {quantization: convert_to_tflite(generator, size=size, quantization=quantization) for quantization in ("float32", "int8")}
    runner = Interpreter(model_content=models["float32"], num_threads=os.cpu_count()).get_signature_runner()
    # The TFLite model takes the image and the mask apart (it masks and composites itself); the
    # already-masked image does as well as any for timing.
    image, mask = inputs[..., :3], inputs[..., 3:]

    def run():
        runner(image=image, mask=mask)

    return run, {quantization: len(model) for quantization, model in models.items()}


def _discarding(function, inputs):
    def run():
        function(inputs).numpy()

    return run


if __name__ == "__main__":
    main()
