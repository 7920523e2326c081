"""Where a training step's CPU goes: the full step and each part run alone, in process CPU seconds.

Builds the trainer of a configuration (random weights: they do not change the cost) and times,
round-robin under `tf.function`, in CPU seconds of this process (`time.process_time`, all threads):

- `step`: the whole `train_step` (G update, then D update);
- `generator`: the generator's forward and backward (the gradient of its output's mean);
- `perceptual`: the perceptual network's two forwards (real, fake) and one backward (to the fake),
  on what `loss.perceptual_region` makes it see (the whole image, or the S/2 local box);
- `discriminator`: the discriminator's work in a step: two forwards with backward to the fake in
  the G step, and two forwards with backward to its weights in the D step.

Prints one JSON line: the median CPU seconds of each, and each part's share of the parts' sum.
CPU seconds, not wall-clock, so a loaded machine changes the figures less (docs/training_on_cpu.md).

Usage:

    python scripts/profile_train_step.py --config configs/photo_cpu.yaml
    python scripts/profile_train_step.py --config configs/photo_campaign.yaml --set train.precision=float32
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import emit, machine_info, median, synthetic_training_batch  # noqa: E402

PARTS = ("step", "generator", "perceptual", "discriminator")


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="a training configuration (YAML)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a key (repeatable)")
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default 2)")
    return parser.parse_args(argv)


def _part_functions(tf, trainer, batch):
    """name -> a compiled zero-argument function doing that part of the step once."""
    image, mask, bbox = batch["image"], batch["mask"], batch["bbox"]
    generator, discriminator, perceptual = trainer.generator, trainer.discriminator, trainer.perceptual
    generator_input = tf.concat([image * (1 - mask), mask], axis=-1)
    global_batch = tf.constant(float(image.shape[0]))

    @tf.function
    def step():
        trainer.train_step(batch)

    @tf.function
    def generator_part():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.cast(generator(generator_input, training=True), tf.float32))
        return tape.gradient(loss, generator.trainable_variables)

    @tf.function
    def perceptual_part():
        real, fake = trainer._perceptual_region(image, bbox), trainer._perceptual_region(image * 0.9, bbox)
        with tf.GradientTape() as tape:
            tape.watch(fake)
            target = perceptual(real, training=False)
            output = perceptual(fake, training=False)
            loss = tf.add_n([tf.reduce_mean(tf.cast(a - b, tf.float32)) for a, b in zip(target, output)])
        return tape.gradient(loss, fake)

    @tf.function
    def discriminator_part():
        fake = image * 0.9
        with tf.GradientTape() as tape:
            tape.watch(fake)
            loss = tf.reduce_mean(trainer._discriminate(fake, bbox)[0]) + tf.reduce_mean(trainer._discriminate(image, bbox)[0])
        tape.gradient(loss, fake)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(trainer._discriminate(image, bbox)[0]) - tf.reduce_mean(trainer._discriminate(fake, bbox)[0])
        return tape.gradient(loss, discriminator.trainable_variables), global_batch

    return {"step": step, "generator": generator_part, "perceptual": perceptual_part, "discriminator": discriminator_part}


def _cpu_times(functions, repeats, warmup):
    seconds = {name: [] for name in functions}
    for round_index in range(warmup + repeats):
        for name, function in functions.items():
            start = time.process_time()
            function()
            if round_index >= warmup:
                seconds[name].append(time.process_time() - start)
    return seconds


def main(argv=None) -> int:
    args = _parse_args(argv)
    import keras
    import tensorflow as tf

    from dmfn_tf.config import apply_overrides, load_config, parse_overrides
    from dmfn_tf.training.trainer import build_trainer

    cfg = apply_overrides(load_config(args.config), parse_overrides(args.set))
    keras.mixed_precision.set_global_policy(cfg.train.precision)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = build_trainer(cfg)
    batch = synthetic_training_batch(tf, cfg.model.image_size, cfg.train.batch_size)
    seconds = _cpu_times(_part_functions(tf, trainer, batch), args.repeats, args.warmup)
    medians = {name: median(values) for name, values in seconds.items()}
    parts_total = sum(medians[name] for name in PARTS[1:])
    emit({
        "config": args.config, "overrides": args.set, "precision": cfg.train.precision,
        "size": cfg.model.image_size, "batch": cfg.train.batch_size, "nf": cfg.model.nf,
        "perceptual_region": cfg.loss.perceptual_region,
        "cpu_seconds": {name: round(value, 4) for name, value in medians.items()},
        "share_of_parts": {name: round(medians[name] / parts_total, 3) for name in PARTS[1:]},
        "machine": machine_info(),
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
