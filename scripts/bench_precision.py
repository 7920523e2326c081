"""Training-step time of float32 vs mixed_bfloat16, measured in one process, round-robin, as one JSON line.

Builds two `DMFNTrainer`s with the same configuration, one under each Keras dtype policy, and times
their `train_step` alternately on one synthetic batch, so that both see the same machine load.
Reports the median wall-clock and process-CPU seconds per step of each and their ratios
(float32 / mixed_bfloat16: above 1 means bfloat16 is faster). On CPUs, bfloat16 pays off where
oneDNN has AVX512_BF16 / AMX kernels.

Usage:

    python scripts/bench_precision.py --size 128 --batch 4 --nf 16 --n-blocks 4 --steps 10
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import emit, interleaved_times, machine_info, median, synthetic_training_batch  # noqa: E402

POLICIES = ("float32", "mixed_bfloat16")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--nf", type=int, default=16)
    parser.add_argument("--n-blocks", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10, help="timed rounds (one step of each policy per round)")
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf

    from dmfn_tf.config import ExperimentConfig, ModelConfig, PerceptualConfig, TrainConfig
    from dmfn_tf.models.perceptual import RandomPerceptualWeightsWarning
    from dmfn_tf.training.trainer import build_trainer

    batch = synthetic_training_batch(tf, args.size, args.batch)
    steps, cpu = {}, {policy: [] for policy in POLICIES}
    for policy in POLICIES:
        keras.mixed_precision.set_global_policy(policy)
        keras.utils.set_random_seed(0)
        cfg = ExperimentConfig(
            model=ModelConfig(nf=args.nf, n_blocks=args.n_blocks, image_size=args.size),
            perceptual=PerceptualConfig(network="lpips_vgg16", weights="none"),
            train=TrainConfig(batch_size=args.batch, precision=policy),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RandomPerceptualWeightsWarning)
            trainer = build_trainer(cfg)
        step = tf.function(lambda data, trainer=trainer: tf.distribute.get_strategy().run(trainer.train_step, args=(data,))["g_total"])

        def timed(step=step, policy=policy):
            start = time.process_time()
            step(batch).numpy()
            cpu[policy].append(time.process_time() - start)

        steps[policy] = timed
    keras.mixed_precision.set_global_policy("float32")
    wall = interleaved_times(steps, args.steps, warmup=2)
    # interleaved_times also ran the warm-up rounds through `timed`: keep the timed rounds' CPU times.
    cpu = {policy: values[-args.steps:] for policy, values in cpu.items()}
    result = {"benchmark": "precision", "size": args.size, "batch": args.batch, "nf": args.nf,
              "n_blocks": args.n_blocks, "steps": args.steps}
    for policy in POLICIES:
        result[f"{policy}_wall_s_median"] = round(median(wall[policy]), 4)
        result[f"{policy}_cpu_s_median"] = round(median(cpu[policy]), 4)
    result["wall_ratio_float32_over_bf16"] = round(result["float32_wall_s_median"] / result["mixed_bfloat16_wall_s_median"], 3)
    result["cpu_ratio_float32_over_bf16"] = round(result["float32_cpu_s_median"] / result["mixed_bfloat16_cpu_s_median"], 3)
    emit({**result, **machine_info()})


if __name__ == "__main__":
    main()
