"""Throughput of the training input pipeline: decode + crop + resize + mask, in images per second.

Prints one JSON line. Without `--folder` it writes `--images` JPEGs (crops of the photos bundled
with scikit-image, ~0.2–0.5 MP each) into a temporary folder first.

Example:

```
python scripts/bench_data.py --size 256 --batch 16 --mask free_form
{"images_per_s": ..., "check_files_per_s": ..., "size": 256, "batch": 16, ...}
```
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np


def write_sample_jpegs(folder: str, count: int) -> None:
    """Writes `count` JPEGs of varied sizes cropped from scikit-image's bundled photos.

    Args:
        folder: an existing directory.
        count: number of files.
    """
    from PIL import Image
    from skimage import data

    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), data.hubble_deep_field(), data.camera()]
    rng = np.random.default_rng(0)
    for n in range(count):
        photo = photos[n % len(photos)]
        height, width = photo.shape[:2]
        crop_h, crop_w = rng.integers(height // 2, height + 1), rng.integers(width // 2, width + 1)
        top, left = rng.integers(0, height - crop_h + 1), rng.integers(0, width - crop_w + 1)
        Image.fromarray(photo[top : top + crop_h, left : left + crop_w]).save(
            os.path.join(folder, f"{n:05d}.jpg"), quality=90
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", help="images to read; default: generated JPEGs in a temporary folder")
    parser.add_argument("--images", type=int, default=64, help="how many JPEGs to generate without --folder")
    parser.add_argument("--size", type=int, default=256, help="image side after resizing")
    parser.add_argument("--batch", type=int, default=16, help="batch size")
    parser.add_argument("--steps", type=int, default=20, help="batches timed, after 3 warm-up batches")
    parser.add_argument("--mask", default="random_box", help="a mask kind of dmfn_tf.data.masks.MASK_KINDS (not file)")
    args = parser.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from dmfn_tf.config import DataConfig
    from dmfn_tf.data import build_dataset, check_files, decode_image, list_source_files

    with tempfile.TemporaryDirectory() as scratch:
        folder = args.folder
        if folder is None:
            folder = scratch
            write_sample_jpegs(folder, args.images)
        cfg = DataConfig(path=folder, mask=args.mask, mask_delta=args.size // 8)

        # Checking every file once is the pipeline's start-up cost; timed on its own, then cached.
        paths = list_source_files(folder)
        start = time.perf_counter()
        check_files(paths, lambda contents: decode_image(tf.constant(contents)), "image")
        check_seconds = time.perf_counter() - start
        dataset = build_dataset(cfg, args.size, args.batch, seed=0)

        batches = iter(dataset)
        for _ in range(3):
            next(batches)
        start = time.perf_counter()
        for _ in range(args.steps):
            next(batches)["image"].numpy()
        seconds = time.perf_counter() - start

    print(
        json.dumps(
            {
                "images_per_s": round(args.steps * args.batch / seconds, 1),
                "check_files_per_s": round(len(paths) / check_seconds, 1),
                "files": len(paths),
                "size": args.size,
                "batch": args.batch,
                "mask": args.mask,
                "steps": args.steps,
                "cpu_count": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
