"""A training recipe's learning curve: train, and every N steps score the generator on validation photos.

Trains with `dmfn_tf.training.run.train` (checkpoints, resume) and appends one row per evaluation to
`<out>/curve.csv`: the step, the training wall-clock and the CPU time of this process (both without
the evaluations, summed over resumed sessions: runs share the CPU, so CPU seconds are the fairer
clock), and LPIPS (AlexNet) / PSNR / SSIM / L1 of the composite at each protocol asked for:

- `p128`: 128² images with a centred 64² hole (`<corpus>/val128`),
- `p256`: 256² images with a centred 128² hole (`<corpus>/val256`, the paper's protocol).

The classic baselines (Telea, Navier–Stokes, biharmonic) are scored once per protocol and cached in
`<corpus>/baselines_<protocol>.json`.

Usage:

```bash
python scripts/recipe_sweep.py --config configs/demo.yaml --data ~/data/photo_corpus/train128 \
    --corpus ~/data/photo_corpus --out ~/runs/sweep_base --steps 3000 --eval-every 250 \
    [--set train.warmup_steps=500] [--set model.init=reference] [--protocols p128 p256] [--resume]
python scripts/recipe_sweep.py --baselines-only --corpus ~/data/photo_corpus --protocols p128 p256
```

The sweep of docs/training_on_cpu.md ran before `model.init` existed: its `--init reference` set every
kernel of G and D (transposed convolutions and Dense layers included) to N(0, 0.02) and every bias
to 0 before the first step; `model.init: reference` now does the authors' initialisation exactly.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

# Protocol -> (validation folder, image side, hole side); the hole is centred, half the side.
PROTOCOLS = {"p128": ("val128", 128, 64), "p256": ("val256", 256, 128)}
METRICS = ("lpips", "psnr", "ssim", "l1")
BASELINES = ("telea", "ns", "biharmonic")


def load_folder(folder: Path) -> tuple[list[str], np.ndarray]:
    """The PNG files of `folder`, sorted, as names and an (N, H, W, 3) uint8 array."""
    from PIL import Image

    files = sorted(folder.glob("*.png"))
    if not files:
        raise SystemExit(f"{folder}: no PNG images (build the corpus with scripts/build_photo_corpus.py)")
    return [file.name for file in files], np.stack([np.asarray(Image.open(file).convert("RGB")) for file in files])


class Validator:
    """Scores inpainting functions on the validation protocols (composite, centred hole)."""

    def __init__(self, corpus: Path, protocols):
        from dmfn_tf.data.masks import center_box
        from dmfn_tf.evaluation.lpips import LPIPS

        self.corpus = corpus
        self.lpips = LPIPS("alex")
        self.sets = {}
        for name in protocols:
            folder, size, hole = PROTOCOLS[name]
            files, images = load_folder(corpus / folder)
            self.sets[name] = (files, images, center_box(size)[0].numpy())

    def score(self, inpaint_fn) -> dict[str, dict[str, np.ndarray]]:
        """protocol -> metric -> per-image values."""
        from dmfn_tf.evaluation.report import score

        return {name: score(inpaint_fn, images, mask, lpips_metric=self.lpips)
                for name, (_, images, mask) in self.sets.items()}

    def score_generator(self, generator) -> dict[str, dict[str, float]]:
        from dmfn_tf.evaluation.report import generator_inpaint_fn

        return {name: {metric: float(np.mean(values[metric])) for metric in METRICS}
                for name, values in self.score(generator_inpaint_fn(generator)).items()}

    def baselines(self) -> dict[str, dict[str, dict[str, float]]]:
        """protocol -> baseline -> metric -> mean, cached beside the corpus."""
        from dmfn_tf.evaluation.baselines import BASELINES as FUNCTIONS
        from dmfn_tf.evaluation.report import baseline_inpaint_fn, score

        result = {}
        for name, (files, images, mask) in self.sets.items():
            cache = self.corpus / f"baselines_{name}.json"
            if cache.is_file() and json.loads(cache.read_text()).get("files") == files:
                result[name] = json.loads(cache.read_text())["means"]
                continue
            means = {}
            for baseline in BASELINES:
                scores = score(baseline_inpaint_fn(FUNCTIONS[baseline]), images, mask, lpips_metric=self.lpips)
                means[baseline] = {metric: float(np.mean(scores[metric])) for metric in METRICS}
            cache.write_text(json.dumps({"files": files, "means": means}, indent=1))
            result[name] = means
        return result


def curve_columns(protocols) -> list[str]:
    return ["step", "wall_s", "cpu_s"] + [f"{p}_{m}" for p in protocols for m in METRICS]


def last_row(path: Path) -> dict | None:
    if not path.is_file():
        return None
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    return rows[-1] if rows else None


def make_curve_callback(validator, every: int, csv_path: Path, protocols):
    """A Keras callback that scores the trainer's generator every `every` global steps (counted by
    the generator optimizer's iterations, so a resumed run continues its count) and appends to `csv_path`."""
    import keras

    previous = last_row(csv_path)
    offsets = (float(previous["wall_s"]), float(previous["cpu_s"])) if previous else (0.0, 0.0)
    columns = curve_columns(protocols)

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
            means = validator.score_generator(self.model.generator)
            row = {"step": step, "wall_s": round(self.wall, 1), "cpu_s": round(self.cpu, 1)}
            row.update({f"{p}_{m}": round(means[p][m], 5) for p in protocols for m in METRICS})
            new = not csv_path.is_file()
            with open(csv_path, "a", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=columns)
                if new:
                    writer.writeheader()
                writer.writerow(row)
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
    parser.add_argument("--protocols", nargs="+", default=["p128"], choices=sorted(PROTOCOLS))
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow intra-op threads (0: default)")
    parser.add_argument("--baselines-only", action="store_true", help="score the baselines, print them, exit")
    args = parser.parse_args(argv)

    import tensorflow as tf

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    validator = Validator(Path(args.corpus).expanduser(), args.protocols)
    baselines = validator.baselines()
    print(json.dumps({"baselines": baselines}), flush=True)
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
    callback = make_curve_callback(validator, args.eval_every, out / "curve.csv", args.protocols)
    run.train(cfg, out, resume=args.resume, verbose=2, callbacks=[callback])
    return 0


if __name__ == "__main__":
    sys.exit(main())
