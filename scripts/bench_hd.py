"""Memory, time and quality of the high-resolution strategies (dmfn_tf/inpaint/strategies.py).

`memory`: a 4000 x 3000 photo (scikit-image's `coffee`, upscaled bicubically) with three holes of
different sizes is inpainted with each strategy, each in its own process, so that the process's
peak resident memory (`ru_maxrss`) is that strategy's alone. Reported per strategy: peak memory,
the memory of the same process before inpainting (Python, TensorFlow, the model, the photo and
the mask read), the inpainting time, the model inputs, and a check that every known pixel is
bit-exact. `original` is expected to refuse the photo (over the pixel budget).

`quality`: the demo's held-out photos (`dmfn_tf.data.demo_photos.EVAL_PHOTOS`) at their own size and
upscaled to 1024 on the longer side, where `original` still runs, with the same three holes:
PSNR (whole image and hole pixels) and LPIPS (AlexNet) of each strategy against the photo, and
how far `crop` and `resize` move them from `original`.

`photos`: `dmfn inpaint` on synthetic photos of any size (issue 19), each case in its own process
(peak resident memory of that process, wall time of the whole command: decoding, planning, the
model, writing the PNG): 1000² with one 200² hole (the baseline), 8000² with one 200² hole (`crop`),
12000² with one 200² hole (`crop`), and 961 one-pixel holes (a 31 x 31 grid) in 8000² (`crop`). Only the command is run in the child, so the
same script measures any checkout: `PYTHONPATH=/other/checkout python scripts/bench_hd.py photos`.

Usage:

    python scripts/bench_hd.py memory --nf 16 --n-blocks 4 --trained-size 256
    python scripts/bench_hd.py memory --model runs/demo           # at the trained size the model records
    python scripts/bench_hd.py quality --model runs/demo --resize-limit 512
    nice -n 19 python scripts/bench_hd.py photos --cases 1000_crop 8000_crop 12000_crop 8000_961_holes
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

STRATEGIES = ("original", "crop", "resize")
# photos mode: case -> (side, hole layout, extra `dmfn inpaint` arguments)
PHOTO_CASES = {
    "1000_crop": (1000, "one", ["--hd-strategy", "crop"]),  # the baseline: a photo of ordinary size
    "8000_crop": (8000, "one", ["--hd-strategy", "crop"]),
    "12000_crop": (12000, "one", ["--hd-strategy", "crop"]),
    "8000_961_holes": (8000, "grid", ["--hd-strategy", "crop"]),
}


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("memory", "quality", "photos", "_child", "_cli"))
    parser.add_argument("--cases", nargs="+", default=list(PHOTO_CASES), choices=list(PHOTO_CASES),
                        help="photos mode: which cases (default: all, one after the other)")
    parser.add_argument("--model", help=".keras generator or run directory (default: random weights)")
    parser.add_argument("--nf", type=int, default=16, help="base width of the random generator (default 16)")
    parser.add_argument("--n-blocks", type=int, default=4, help="DMFBs of the random generator (default 4)")
    parser.add_argument("--trained-size", type=int,
                        help="default: the size --model records (dmfn_tf.model_io.trained_size), else 256")
    parser.add_argument("--crop-margin", type=int, default=64)
    parser.add_argument("--resize-limit", type=int, default=1024)
    parser.add_argument("--max-pixels", type=int, default=1024 * 1024)
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    parser.add_argument("--json", help="also write the results to this JSON file")
    # Internal (the per-strategy child process).
    parser.add_argument("--strategy", help=argparse.SUPPRESS)
    parser.add_argument("--image", help=argparse.SUPPRESS)
    parser.add_argument("--mask", help=argparse.SUPPRESS)
    parser.add_argument("--cli-args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mode in ("_cli", "photos"):  # the command itself reads the model's trained size
        return args
    if args.trained_size is None:
        from dmfn_tf.inpaint.strategies import DEFAULT_TRAINED_SIZE
        from dmfn_tf.model_io import trained_size

        args.trained_size = (trained_size(args.model) if args.model else None) or DEFAULT_TRAINED_SIZE
    return args


def three_holes(height: int, width: int) -> np.ndarray:
    """Small box, medium ellipse, large box, at fixed fractions of the image (bool [H, W])."""
    rows, cols = np.mgrid[0:height, 0:width]
    hole = np.zeros((height, width), bool)
    hole[int(0.10 * height) : int(0.14 * height), int(0.10 * width) : int(0.15 * width)] = True
    hole |= ((rows / height - 0.72) / 0.08) ** 2 + ((cols / width - 0.25) / 0.07) ** 2 <= 1
    hole[int(0.35 * height) : int(0.65 * height), int(0.55 * width) : int(0.85 * width)] = True
    return hole


def _generator(args):
    if args.model:
        from dmfn_tf.model_io import load_generator

        return load_generator(args.model)
    from dmfn_tf.models.generator import build_generator

    return build_generator(nf=args.nf, n_blocks=args.n_blocks)


def _options(args, strategy):
    from dmfn_tf.inpaint.strategies import HDOptions

    return HDOptions(strategy=strategy, trained_size=args.trained_size, crop_margin=args.crop_margin,
                     resize_limit=args.resize_limit)


def _peak_mib() -> float:
    """This process's peak resident memory. `VmHWM` belongs to the process's own memory map: `ru_maxrss`
    keeps the parent's resident size at the fork across the exec (the parent that wrote a 12000² photo)."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _child(args) -> None:
    """One strategy on one photo, in this process; prints one JSON line."""
    from dmfn_tf.errors import UserError
    from dmfn_tf.inpaint.files import read_image, read_mask
    from dmfn_tf.inpaint.planner import check_size, plan
    from dmfn_tf.inpaint.runner import inpaint_hd

    generator = _generator(args)
    image, _ = read_image(args.image)
    mask = read_mask(args.mask)
    options = _options(args, args.strategy)
    before_mib = _peak_mib()
    row = {"strategy": args.strategy, "before_inpainting_mib": round(before_mib)}
    start = time.perf_counter()
    try:
        result = inpaint_hd(generator, image, mask, options, max_pixels=args.max_pixels, source=os.path.basename(args.image))
    except UserError as err:
        row.update(refused=str(err), peak_mib=round(_peak_mib()))
    else:
        row["seconds"] = round(time.perf_counter() - start, 2)
        row["peak_mib"] = round(_peak_mib())
        hole = mask[..., 0] > 0.5
        row["known_pixels_bit_exact"] = bool(np.array_equal(result[~hole], image[~hole]))
        row["hole_pixels_changed"] = round(float(np.mean(np.any(result[hole] != image[hole], axis=-1))), 3)
        _, windows = plan(check_size(*hole.shape, options, args.max_pixels), hole)
        row["model_inputs"] = [f"{w.model_width}x{w.model_height}" for w in windows]
    print(json.dumps(row), flush=True)


def _memory(args) -> list[dict]:
    from PIL import Image
    from skimage import data

    rows = []
    with tempfile.TemporaryDirectory() as directory:
        image_path, mask_path = os.path.join(directory, "photo.png"), os.path.join(directory, "mask.png")
        Image.fromarray(data.coffee()).resize((4000, 3000), Image.BICUBIC).save(image_path)
        hole = three_holes(3000, 4000)
        Image.fromarray((hole * 255).astype(np.uint8)).save(mask_path)
        print(f"4000x3000 photo, three holes: {hole.sum():,} hole pixels", file=sys.stderr)
        common = [f"--{name.replace('_', '-')}={getattr(args, name)}"
                  for name in ("nf", "n_blocks", "trained_size", "crop_margin", "resize_limit", "max_pixels")]
        common += [f"--model={args.model}"] if args.model else []
        for strategy in args.strategies:
            command = [sys.executable, os.path.abspath(__file__), "_child", *common, "--strategy", strategy,
                       "--image", image_path, "--mask", mask_path]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            row = json.loads(output.strip().splitlines()[-1])
            print(json.dumps(row), flush=True)
            rows.append(row)
    print("\n| strategy | peak memory | before inpainting | time | model inputs |\n|---|---|---|---|---|")
    for row in rows:
        if "refused" in row:
            print(f"| {row['strategy']} | {row['peak_mib'] / 1024:.2f} GiB | {row['before_inpainting_mib'] / 1024:.2f} GiB | "
                  f"refused: {row['refused']} | – |")
        else:
            print(f"| {row['strategy']} | {row['peak_mib'] / 1024:.2f} GiB | {row['before_inpainting_mib'] / 1024:.2f} GiB | "
                  f"{row['seconds']:.1f} s | {', '.join(row['model_inputs'])} |")
    return rows


def _quality(args) -> list[dict]:
    from PIL import Image

    from dmfn_tf.data.demo_photos import EVAL_PHOTOS, load_photo
    from dmfn_tf.evaluation.lpips import LPIPS
    from dmfn_tf.evaluation.metrics import psnr
    from dmfn_tf.inpaint.runner import inpaint_hd

    generator = _generator(args)
    lpips = LPIPS("alex")
    rows = []
    for name in EVAL_PHOTOS:
        photo = load_photo(name)
        height, width = photo.shape[:2]
        scale = 1024 / max(height, width)
        upscaled = np.asarray(Image.fromarray(photo).resize((round(width * scale), round(height * scale)), Image.BICUBIC))
        for size_name, image in (("own size", photo), ("1024 long side", upscaled)):
            hole = three_holes(*image.shape[:2])
            for strategy in args.strategies:
                result = inpaint_hd(generator, image, hole, _options(args, strategy), max_pixels=args.max_pixels)
                assert np.array_equal(result[~hole], image[~hole])
                hole_mse = np.mean((result[hole].astype(np.float64) - image[hole]) ** 2)
                rows.append({
                    "photo": name, "size": size_name, "shape": list(image.shape[:2]), "strategy": strategy,
                    "psnr": float(psnr(result[None], image[None])[0]),
                    "psnr_hole": float(10 * np.log10(255.0**2 / hole_mse)),
                    "lpips": float(lpips.from_uint8(result[None], image[None])[0]),
                })
                print(json.dumps(rows[-1]), flush=True)
    print("\n| photos | strategy | LPIPS | PSNR (image) | PSNR (hole) | LPIPS vs original | PSNR vs original |\n|---|---|---|---|---|---|---|")
    for size_name in ("own size", "1024 long side"):
        original = {(r["photo"]): r for r in rows if r["size"] == size_name and r["strategy"] == "original"}
        for strategy in args.strategies:
            chosen = [r for r in rows if r["size"] == size_name and r["strategy"] == strategy]
            mean = {key: np.mean([r[key] for r in chosen]) for key in ("lpips", "psnr", "psnr_hole")}
            if original:
                move_lpips = np.mean([r["lpips"] - original[r["photo"]]["lpips"] for r in chosen])
                move_psnr = np.mean([r["psnr"] - original[r["photo"]]["psnr"] for r in chosen])
                moves = f"{move_lpips:+.4f} | {move_psnr:+.2f} dB"
            else:
                moves = "– | –"
            print(f"| {len(chosen)} at {size_name} | {strategy} | {mean['lpips']:.4f} | {mean['psnr']:.2f} | "
                  f"{mean['psnr_hole']:.2f} | {moves} |")
    return rows


def _photo_files(directory: str, side: int, layout: str) -> tuple[str, str]:
    """A smooth synthetic photo (gradients: small PNG, quick to decode) and its mask, written once per side."""
    from PIL import Image

    image_path = os.path.join(directory, f"photo_{side}.png")
    if not os.path.exists(image_path):
        rows = (np.arange(side, dtype=np.uint32) * 255 // side).astype(np.uint8)
        image = np.empty((side, side, 3), np.uint8)
        image[..., 0], image[..., 1], image[..., 2] = rows[:, None], rows[None, :], 128
        Image.fromarray(image).save(image_path, compress_level=1)
        del image
    mask_path = os.path.join(directory, f"mask_{side}_{layout}.png")
    mask = np.zeros((side, side), np.uint8)
    if layout == "one":
        mask[side // 2 - 100:side // 2 + 100, side // 2 - 100:side // 2 + 100] = 255
    else:  # 31 x 31 one-pixel holes, evenly spread
        spots = (np.arange(31) * side // 31 + side // 62)
        mask[np.ix_(spots, spots)] = 255
    Image.fromarray(mask).save(mask_path)
    return image_path, mask_path


def _cli_child(args) -> None:
    """`dmfn inpaint` in this process; prints one JSON line with its peak memory and time."""
    from dmfn_tf.cli import main as cli_main

    start = time.perf_counter()
    code = cli_main(args.cli_args)
    print(json.dumps({"exit": code, "seconds": round(time.perf_counter() - start, 1), "peak_mib": round(_peak_mib())}),
          flush=True)


def _photos(args) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for case in args.cases:
            side, layout, extra = PHOTO_CASES[case]
            image_path, mask_path = _photo_files(directory, side, layout)
            model = ["--model", args.model] if args.model else []
            cli = ["inpaint", *model, "--image", image_path, "--mask", mask_path, "--out", os.path.join(directory, case),
                   *extra]
            command = [sys.executable, os.path.abspath(__file__), "_cli", "--cli-args", *cli]
            completed = subprocess.run(command, capture_output=True, text=True)
            lines = completed.stdout.strip().splitlines()
            row = {"case": case, **(json.loads(lines[-1]) if lines else {"error": completed.stderr.strip()[-300:]})}
            if completed.returncode != 0 or row.get("exit") != 0:
                row["stderr"] = completed.stderr.strip()[-300:]
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def main(argv=None) -> None:
    args = _parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.mode in ("_child", "_cli"):
        _child(args) if args.mode == "_child" else _cli_child(args)
        return
    rows = {"memory": _memory, "quality": _quality, "photos": _photos}[args.mode](args)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
