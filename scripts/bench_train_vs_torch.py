"""The full training step against PyTorch and against the machine's FLOP rate, as JSON lines.

Times `DMFNTrainer.train_step` (G update with every loss term, then D update; the setup of
`scripts/bench_train.py`) interleaved round by round with the same step rebuilt in PyTorch from the
design notes (`scripts/torch_reference_model.py`, run by an interpreter that has torch; `--compare-torch`)
and with the machine's attainable FLOP rate, so that the ratios hold on a machine whose load
changes. Without an interpreter that can import torch the PyTorch side is skipped with a message.

Usage:

    python scripts/bench_train_vs_torch.py --block official --batch 4 --repeats 5 \
        --compare-torch --torch-python /tmp/torchvenv/bin/python
    python scripts/bench_train_vs_torch.py --size 64 --batch 2 --nf 8 --n-blocks 2 --repeats 3   # quick check
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_common  # noqa: E402  (a sibling script, not a package)


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--block", default="official", choices=("paper", "official"))
    parser.add_argument("--nf", type=int, default=64)
    parser.add_argument("--n-blocks", type=int, default=8)
    parser.add_argument("--size", type=int, default=256, help="square image side, a multiple of 64 (default 256)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (default 5); medians are reported")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--inter-op", type=int, help="TensorFlow inter-op threads (default: TensorFlow's choice)")
    parser.add_argument("--compare-torch", action="store_true", help="also time the same training step rebuilt in PyTorch")
    parser.add_argument("--torch-python", help="an interpreter with torch installed (default: $DMFN_TORCH_PYTHON or this one)")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = _parse_args(argv)
    if args.size <= 0 or args.size % 64:
        raise SystemExit(f"--size must be a positive multiple of 64, got {args.size}")

    import keras
    import tensorflow as tf

    from dmfn_tf.config import ExperimentConfig, ModelConfig, PerceptualConfig, TrainConfig
    from dmfn_tf.models.perceptual import RandomPerceptualWeightsWarning
    from dmfn_tf.training.trainer import build_trainer

    if args.inter_op:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_op)

    python = bench_common.find_torch_python(args.torch_python) if args.compare_torch else None
    torch_worker = None
    if args.compare_torch and python is None:
        print("--compare-torch: no interpreter with torch found (pass --torch-python); timing TensorFlow only", file=sys.stderr)
    elif python is not None:
        torch_worker = bench_common.TorchWorker(python)
        torch_worker.request(op="build_train", block=args.block, nf=args.nf, n_blocks=args.n_blocks, size=args.size, batch=args.batch)

    keras.utils.set_random_seed(0)
    cfg = ExperimentConfig(
        model=ModelConfig(nf=args.nf, n_blocks=args.n_blocks, block=args.block, image_size=args.size),
        perceptual=PerceptualConfig(weights="none"),
        train=TrainConfig(batch_size=args.batch),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomPerceptualWeightsWarning)
        trainer = build_trainer(cfg)
    batch = bench_common.synthetic_training_batch(tf, args.size, args.batch)
    step = tf.function(lambda data: trainer.train_step(data)["g_total"])

    def run_step():
        step(batch).numpy()

    functions = {"tensorflow": run_step}
    peak_kernels = bench_common.peak_flop_functions(tf)
    functions.update({name: kernel for name, (kernel, _) in peak_kernels.items()})
    if torch_worker is not None:
        functions["torch"] = lambda: torch_worker.request(op="time_train")["seconds"]
    times = bench_common.interleaved_times(functions, args.repeats, args.warmup)

    peak_rates = {name: flops / bench_common.median(times[name]) / 1e9 for name, (_, flops) in peak_kernels.items()}
    peak = max(peak_rates.values())
    flops = 2.0 * args.batch * bench_common.train_step_macs(args.nf, args.n_blocks, args.block, args.size)
    seconds = bench_common.median(times["tensorflow"])
    record = {
        "bench": "train_step_vs_torch",
        "block": args.block,
        "size": args.size,
        "batch": args.batch,
        "nf": args.nf,
        "n_blocks": args.n_blocks,
        "seconds_median": round(seconds, 3),
        "seconds_min": round(min(times["tensorflow"]), 3),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "gflop_per_step_estimate": round(flops / 1e9, 1),
        "gflops": round(flops / seconds / 1e9, 1),
        "peak_gflops_float32": round(peak, 1),
        "ratio_to_peak": round(flops / seconds / 1e9 / peak, 3),
    }
    if torch_worker is not None:
        torch_seconds = bench_common.median(times["torch"])
        record.update(
            torch_seconds_median=round(torch_seconds, 3),
            ratio_to_torch_per_round=[round(ours / theirs, 3) for ours, theirs in zip(times["tensorflow"], times["torch"])],
            ratio_to_torch=round(seconds / torch_seconds, 3),
            torch_omp_wait_policy=torch_worker.omp_wait_policy,
        )
        torch_worker.close()
    bench_common.emit({**record, **bench_common.machine_info()})


if __name__ == "__main__":
    main()
