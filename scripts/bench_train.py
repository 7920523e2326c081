"""Throughput of the full DMFN training step (G update + D update + VGG19), as one JSON line.

Builds a `DMFNTrainer` with random weights (VGG19 included: its weights do not change the cost),
feeds one fixed synthetic batch already on the device, and times `train_step` under `tf.function`
(through `strategy.run`, as `fit` does). Reports the median seconds per step over `--steps` timed
steps after `--warmup` untimed ones (the first includes tracing), and images per second.

Usage (quick check; the reference recipe is --size 256 --batch 16 --nf 64 --n-blocks 8):

    python scripts/bench_train.py --size 64 --batch 1 --nf 8 --n-blocks 2 --steps 5
    python scripts/bench_train.py --size 256 --batch 16 --precision mixed_bfloat16 --jit
    python scripts/bench_train.py --size 256 --batch 4 --block official --compare-torch --torch-python PY

The JSON line also gives the step's estimated FLOPs over the machine's FLOP rate measured in the
same run (`ratio_to_peak`). `--compare-torch` then runs `bench_train_vs_torch.py` on the same
configuration (PyTorch's BatchNorm needs maps larger than 1x1 at batch 1: use --size 128 or more).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import emit, machine_info, measure_peak_gflops, median, synthetic_training_batch, train_step_macs  # noqa: E402

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256, help="square image side, a multiple of 64 (default 256)")
    parser.add_argument("--batch", type=int, default=4, help="global batch size (default 4)")
    parser.add_argument("--block", default="paper", choices=("paper", "official"))
    parser.add_argument("--nf", type=int, default=64, help="base width of G and D (default 64)")
    parser.add_argument("--n-blocks", type=int, default=8, help="DMFBs in the generator (default 8)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first, tracing included (default 2)")
    parser.add_argument("--precision", default="float32", choices=PRECISIONS, help="Keras dtype policy")
    parser.add_argument("--jit", action="store_true", help="compile the step with XLA")
    parser.add_argument("--strategy", default="default", choices=("default", "mirrored"))
    parser.add_argument("--sync-batchnorm", action="store_true", help="synchronised BatchNorm in D")
    parser.add_argument("--compare-torch", action="store_true",
                        help="then time the same step against PyTorch, round-robin (bench_train_vs_torch.py)")
    parser.add_argument("--torch-python", help="an interpreter with torch installed (default: $DMFN_TORCH_PYTHON or this one)")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = _parse_args(argv)
    import keras
    import tensorflow as tf

    from dmfn_tf.config import ExperimentConfig, ModelConfig, PerceptualConfig, TrainConfig
    from dmfn_tf.models.perceptual import RandomPerceptualWeightsWarning
    from dmfn_tf.training.distribute import make_strategy
    from dmfn_tf.training.trainer import build_trainer

    keras.mixed_precision.set_global_policy(args.precision)
    keras.utils.set_random_seed(0)
    cfg = ExperimentConfig(
        model=ModelConfig(nf=args.nf, n_blocks=args.n_blocks, block=args.block, image_size=args.size),
        perceptual=PerceptualConfig(weights="none"),
        train=TrainConfig(batch_size=args.batch, strategy=args.strategy, sync_batchnorm=args.sync_batchnorm),
    )
    strategy = make_strategy(args.strategy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomPerceptualWeightsWarning)
        trainer = build_trainer(cfg, strategy)

    batch = synthetic_training_batch(tf, args.size, args.batch)
    distributed = next(iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(batch))))

    @tf.function(jit_compile=args.jit)
    def step(data):
        logs = strategy.run(trainer.train_step, args=(data,))
        return strategy.experimental_local_results(logs["g_total"])[0]

    start = time.perf_counter()
    step(distributed).numpy()
    first_step = time.perf_counter() - start
    for _ in range(max(args.warmup - 1, 0)):
        step(distributed).numpy()
    seconds = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step(distributed).numpy()  # .numpy() waits for the device
        seconds.append(time.perf_counter() - start)

    per_step = median(seconds)
    gpus = tf.config.list_logical_devices("GPU")
    # The machine's float32 FLOP rate, measured now, puts the step's rate in proportion (CPU only:
    # the kernels run on the default device).
    flops = 2.0 * args.batch * train_step_macs(args.nf, args.n_blocks, args.block, args.size)
    peak = measure_peak_gflops(tf)["peak_gflops"]
    emit(
        {
            "benchmark": "train_step",
            "size": args.size,
            "batch": args.batch,
            "block": args.block,
            "nf": args.nf,
            "n_blocks": args.n_blocks,
            "precision": args.precision,
            "jit": args.jit,
            "strategy": args.strategy,
            "replicas": strategy.num_replicas_in_sync,
            "device": ", ".join(d.name for d in gpus) or "CPU",
            "steps": args.steps,
            "seconds_per_step_median": round(per_step, 4),
            "seconds_per_step_min": round(min(seconds), 4),
            "images_per_second": round(args.batch / per_step, 2),
            "first_step_seconds": round(first_step, 2),
            "gflop_per_step_estimate": round(flops / 1e9, 1),
            "peak_gflops_float32": round(peak, 1),
            "ratio_to_peak": round(flops / per_step / 1e9 / peak, 3),
            **machine_info(),
        }
    )
    if args.compare_torch:
        import bench_train_vs_torch

        torch_args = ["--block", args.block, "--nf", str(args.nf), "--n-blocks", str(args.n_blocks), "--size",
                      str(args.size), "--batch", str(args.batch), "--repeats", str(args.steps), "--compare-torch"]
        bench_train_vs_torch.main(torch_args + (["--torch-python", args.torch_python] if args.torch_python else []))


if __name__ == "__main__":
    main()
