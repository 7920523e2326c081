"""A training recipe's learning curve: train, and every N steps validate the generator.

Trains with `dmfn_tf.training.run.train` (checkpoints, resume) and every `--eval-every` steps scores
the generator at the validation protocols asked for (`dmfn_tf.evaluation.validation`: `p256`, `p128`,
`p256_free`, `p128_free`, through `evaluation.protocol.evaluate`, the baselines cached beside the
set), appending one row per evaluation to `<out>/validation.csv` (the columns `scripts/validate_run.py`
writes): the step, the CPU time of this process and the training wall-clock (both without the
evaluations, summed over resumed sessions: runs share the CPU, so CPU seconds are the fairer clock),
and per protocol LPIPS (AlexNet) / PSNR / SSIM and the paired LPIPS difference from the best classic
method with its bootstrap interval.

Usage:

```bash
python scripts/recipe_sweep.py --config configs/demo.yaml --data ~/data/photo_corpus/train128 \
    --corpus ~/data/photo_corpus --out ~/runs/sweep_base --steps 3000 --eval-every 250 \
    [--set train.warmup_steps=500] [--set model.init=reference] [--protocols p128 p128_free] [--resume]
python scripts/recipe_sweep.py --baselines-only --corpus ~/data/photo_corpus --protocols p128 p256
```

The sweep of docs/training_on_cpu.md ran before `model.init` existed: its `--init reference` set every
kernel of G and D (transposed convolutions and Dense layers included) to N(0, 0.02) and every bias
to 0 before the first step; `model.init: reference` now does the authors' initialisation exactly.
Its curves are in the older `curve.csv` (`wall_s`, `cpu_s`), which `scripts/plot_curves.py` still reads.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def make_curve_callback(corpus: Path, every: int, csv_path: Path, protocols):
    """A Keras callback that validates the trainer's generator every `every` global steps (counted by
    the generator optimizer's iterations, so a resumed run continues its count) and appends to `csv_path`."""
    import keras

    from dmfn_tf.evaluation import validation

    previous = validation.read_curve(csv_path)
    offsets = (float(previous[-1]["wall_seconds"]), float(previous[-1]["cpu_seconds"])) if previous else (0.0, 0.0)

    class CurveCallback(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.wall, self.cpu = offsets
            self.clock = None

        def on_train_begin(self, logs=None):
            self.clock = (time.perf_counter(), time.process_time())

        def on_train_batch_end(self, batch, logs=None):
            step = int(self.model.g_optimizer.iterations.numpy())
            if step % every:
                return
            wall, cpu = time.perf_counter(), time.process_time()
            self.wall += wall - self.clock[0]
            self.cpu += cpu - self.clock[1]
            scores = validation.validate(self.model.generator, corpus, protocols)
            row = validation.curve_row(step, self.cpu, self.wall, scores)
            validation.append_curve_row(csv_path, row)
            print(f"[curve] {json.dumps(row)}", flush=True)
            self.clock = (time.perf_counter(), time.process_time())

    return CurveCallback()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--data", help="training image folder (data.path)")
    parser.add_argument("--corpus", required=True, help="the corpus root (val128/, val256/)")
    parser.add_argument("--out", help="run folder")
    parser.add_argument("--steps", type=int, help="train.total_steps")
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--protocols", nargs="+", default=["p128"],
                        help="validation protocols among p256, p128, p256_free, p128_free (default p128)")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow intra-op threads (0: default)")
    parser.add_argument("--baselines-only", action="store_true", help="score the baselines, print them, exit")
    args = parser.parse_args(argv)

    import tensorflow as tf

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from dmfn_tf.evaluation import validation

    corpus = Path(args.corpus).expanduser()
    for protocol in validation.protocols_named(args.protocols):
        cached = validation.baseline_scores(corpus, protocol)
        print(json.dumps({"baselines": {protocol.name: validation.baseline_means(corpus, protocol.name)},
                          "routes": cached["routes"]}), flush=True)
    if args.baselines_only:
        return 0

    from dmfn_tf.config import load_config, parse_overrides
    from dmfn_tf.training import run

    overrides = parse_overrides(args.set)
    if args.data:
        overrides["data.path"] = args.data
    if args.steps:
        overrides["train.total_steps"] = args.steps
    cfg = load_config(args.config, overrides)
    out = Path(args.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "sweep_args.json", "w") as handle:
        json.dump(vars(args), handle, indent=1)
    callback = make_curve_callback(corpus, args.eval_every, out / "validation.csv", args.protocols)
    run.train(cfg, out, resume=args.resume, verbose=2, callbacks=[callback])
    return 0


if __name__ == "__main__":
    sys.exit(main())
