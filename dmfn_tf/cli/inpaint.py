"""`dmfn inpaint`: fill the holes of one image or a folder of images with a trained generator.

Pairing: `--image` and `--mask` are each a file or a folder. A folder of images is paired with a
folder of masks by file stem (`photo.jpg` <-> `photo.png`); one mask file serves every image.
Masks follow `dmfn_tf.data.load_mask_file` (white/1 = hole, `> 0.5` after scaling to [0, 1]);
`--mask-from-alpha` reads the masks' alpha channel instead (opaque = hole, a brush layer), or,
without `--mask`, takes the holes from the images' own transparent pixels. Outputs are RGB PNGs
of the input's size, `<out>/<stem>.png`.

Every pair is checked before the model is loaded, and one bad pair stops the whole run before any
output is written: a missing, ambiguous or mis-sized mask, an image or mask that declares more than
`MAX_PHOTO_PIXELS` pixels or several frames (`dmfn_tf.input_limits.image_header`, each file's header read once), an
image whose model inputs are over the pixel budget (from that header, before anything is decoded), a file the run's decoders cannot fully
decode, an output folder that cannot be written, or an output that is the same file as an input
(compared by device and inode, so hard links count) ends the run with one line naming the files.

Each request goes one way (`dmfn_tf.inpaint`): its size is checked against the budget once
(`planner.check_size`, from the headers); in the check, the mask is read and binarised once (an
8-bit PNG strip by strip), the registered strategy plans the windows (`planner.plan`), and the
photo is read once, strip by strip, for the windows' pixels (`streamed.gather`; every strip is
decoded, so a corrupt photo stops the run here). The run fills the windows (`streamed.fill_windows`)
and reads the photo again to write it with the filled holes (`streamed.filled_strips`), so the photo
is never held whole: memory is bounded by the hole map and the windows (an 8-bit PNG is decoded a
strip at a time; other formats are decoded whole by Pillow while they are read).
What was read (holes, windows) is kept from the check to the run up to `KEPT_DECODED_BYTES` (the
first one always); a folder's later photos beyond it are read again when they run.
Each output is written to a temporary file in the output folder and renamed over its name, so a
failed write (disk full) never leaves a half-written or truncated PNG; temporary files of a killed
run are removed by the next one.
Large photos go through `--hd-strategy` (`dmfn_tf.inpaint.strategies`); the pixel budget applies to
what the model runs on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import NamedTuple

from dmfn_tf.data.image_files import PILLOW_IMAGE_EXTENSIONS
from dmfn_tf.cli import hd_options, model_option
from dmfn_tf.errors import UserError
from dmfn_tf.inpaint.budget import DEFAULT_MAX_PIXELS
from dmfn_tf.inpaint.planner import CheckedSize
from dmfn_tf.inpaint.streamed import GatheredPhoto
from dmfn_tf.inpaint.strategies import HDOptions, get_strategy
from dmfn_tf.input_limits import MAX_PHOTO_PIXELS, ImageHeader, image_header
from dmfn_tf.output_files import check_outputs_are_not_inputs

# What was read of each request (holes, windows) kept from the check to the run (the first is always kept):
# a folder's photos are read for their windows once up to this many bytes, beyond it once more when they run.
KEPT_DECODED_BYTES = 512 * 1024 * 1024


class PairingError(UserError):
    """Images and masks do not pair up; the message names the files."""


@dataclass(frozen=True)
class InpaintJob:
    """One image to inpaint: its mask file (None: the image's alpha) and the output file."""

    image: str
    mask: str | None
    output: str


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "inpaint",
        help="inpaint images with a trained generator",
        description="Fill the holes (mask 1/white = hole) of an image or a folder of images.",
    )
    model_option.add_argument(parser)
    parser.add_argument("--image", required=True, help="an image file or a folder of images")
    parser.add_argument("--mask", help="a mask file (used for every image) or a folder of masks paired by file stem")
    parser.add_argument("--out", required=True, help="output folder (PNG files named after the images)")
    parser.add_argument("--invert-mask", action="store_true", help="masks mark holes with 0/black (MAT style)")
    parser.add_argument(
        "--mask-from-alpha",
        action="store_true",
        help="with --mask: holes are the opaque pixels of the masks' alpha (a brush layer); "
        "without: holes are the images' transparent pixels",
    )
    parser.add_argument(
        "--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
        help=f"refuse model inputs with more pixels than this (default {DEFAULT_MAX_PIXELS:,}): the image "
        "with --hd-strategy original, each window or the resized image otherwise; bounds memory",
    )
    hd_options.add_arguments(parser)
    parser.set_defaults(func=run)


def _list_images(folder: str) -> list[str]:
    names = sorted(name for name in os.listdir(folder) if name.lower().endswith(PILLOW_IMAGE_EXTENSIONS))
    return [os.path.join(folder, name) for name in names if os.path.isfile(os.path.join(folder, name))]


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _mask_for(image: str, mask_arg: str | None, masks_by_stem: dict[str, list[str]] | None) -> str | None:
    if masks_by_stem is None:
        return mask_arg
    candidates = masks_by_stem.get(_stem(image), [])
    if not candidates:
        raise PairingError(f"{image}: no mask named {_stem(image)}.* in {mask_arg}")
    if len(candidates) > 1:
        raise PairingError(f"{image}: several masks match it: {', '.join(candidates)}")
    return candidates[0]


def plan_jobs(image_arg: str, mask_arg: str | None, out_dir: str, mask_from_alpha: bool = False) -> list[InpaintJob]:
    """Pairs images with masks and outputs, checking that every file exists.

    Args:
        image_arg: an image file or a folder of images.
        mask_arg: a mask file, a folder of masks (paired by stem), or None with `mask_from_alpha`.
        out_dir: the output folder.
        mask_from_alpha: without `mask_arg`, take the holes from each image's alpha channel.

    Returns:
        The jobs, in file name order.
    """
    if not os.path.exists(image_arg):
        raise PairingError(f"{image_arg}: no such image file or folder")
    if mask_arg is None and not mask_from_alpha:
        raise PairingError("no masks: give --mask, or --mask-from-alpha to use the images' transparency")
    if mask_arg is not None and not os.path.exists(mask_arg):
        raise PairingError(f"{mask_arg}: no such mask file or folder")
    images = _list_images(image_arg) if os.path.isdir(image_arg) else [image_arg]
    if not images:
        raise PairingError(f"{image_arg}: no image files ({', '.join(PILLOW_IMAGE_EXTENSIONS)}) in this folder")
    masks_by_stem = None
    if mask_arg is not None and os.path.isdir(mask_arg):
        masks_by_stem = {}
        for mask in _list_images(mask_arg):
            masks_by_stem.setdefault(_stem(mask), []).append(mask)

    jobs, outputs = [], {}
    for image in images:
        output = os.path.join(out_dir, _stem(image) + ".png")
        if output in outputs:
            raise PairingError(f"{outputs[output]} and {image} would both be written to {output}")
        outputs[output] = image
        jobs.append(InpaintJob(image, _mask_for(image, mask_arg, masks_by_stem), output))
    inputs = [path for job in jobs for path in (job.image, job.mask) if path]
    check_outputs_are_not_inputs([job.output for job in jobs], inputs)
    return jobs


class CheckedJob(NamedTuple):
    """A job whose files were checked: its size checked against the budget, and what was read of it if kept."""

    job: InpaintJob
    size: CheckedSize
    orientation: int  # the image's EXIF orientation, as its header said (`check_headers`)
    request: GatheredPhoto | None


def check_jobs(jobs: list[InpaintJob], max_pixels: int, mask_from_alpha: bool = False, hd: HDOptions = HDOptions(),
               invert_mask: bool = False) -> list[CheckedJob]:
    """Checks every pair: from the headers (readable, sizes equal, within the budget), then by decoding it.

    Args:
        jobs: from `plan_jobs`.
        max_pixels: the pixel budget per model input (`dmfn_tf.inpaint.planner.check_size`).
        mask_from_alpha: the holes come from an alpha channel (of the mask, or of the image).
        hd: the high-resolution strategy, which decides what the model runs on.
        invert_mask: the masks mark holes with 0.
    """
    headers = check_headers(jobs, mask_from_alpha)
    sizes = check_budgets(jobs, headers, max_pixels, hd)
    return check_decoding(jobs, headers, sizes, invert_mask=invert_mask, mask_from_alpha=mask_from_alpha)


def _header(path: str, what: str) -> ImageHeader:
    """The file's header, read once (`dmfn_tf.input_limits.image_header`: more than `MAX_PHOTO_PIXELS` or
    several frames are refused)."""
    try:
        return image_header(path, max_pixels=MAX_PHOTO_PIXELS)
    except OSError as err:  # gone or unreadable since it was listed
        raise PairingError(f"{path}: cannot read the {what} file ({err.strerror or err})") from None


def check_headers(jobs: list[InpaintJob], mask_from_alpha: bool = False) -> list[ImageHeader]:
    """From the headers only (each read once): every image and mask readable, not too large, one frame,
    sizes equal (the image upright, the mask as stored, as they are decoded), alpha where needed.

    Returns:
        The image headers, in the order of `jobs`.
    """
    headers = []
    for job in jobs:
        image = _header(job.image, "image")
        headers.append(image)
        if job.mask is None:
            if not image.has_alpha:
                raise PairingError(f"{job.image}: --mask-from-alpha without --mask needs images with an alpha channel")
            continue
        mask = _header(job.mask, "mask")
        if (mask.height, mask.width) != image.upright:
            raise PairingError(
                f"mask {job.mask} is {mask.width}x{mask.height} but image {job.image} is "
                f"{image.upright[1]}x{image.upright[0]}"
            )
        if mask_from_alpha and not mask.has_alpha:
            raise PairingError(f"{job.mask}: --mask-from-alpha needs masks with an alpha channel, this one has none")
    return headers


def check_budgets(jobs: list[InpaintJob], headers: list[ImageHeader], max_pixels: int, hd: HDOptions) -> list[CheckedSize]:
    """The one budget check of each job, from its image header (`dmfn_tf.inpaint.planner.check_size`)."""
    from dmfn_tf.inpaint.planner import check_size

    return [check_size(*header.upright, hd, max_pixels, source=job.image) for job, header in zip(jobs, headers)]


def read_job(job: InpaintJob, size: CheckedSize, orientation: int, invert_mask: bool,
             mask_from_alpha: bool) -> GatheredPhoto:
    """The job's holes read once and planned, and its photo read once for the planned windows' pixels
    (turned as its header said: `orientation`, never read again)."""
    from dmfn_tf.inpaint.planner import plan
    from dmfn_tf.inpaint.request import read_holes_of
    from dmfn_tf.inpaint.streamed import gather

    hole = read_holes_of(job.image, job.mask, invert=invert_mask, from_alpha=mask_from_alpha, orientation=orientation)
    if hole.shape != (size.height, size.width):
        mask = job.mask or job.image
        raise PairingError(f"mask {mask} decodes to {hole.shape[1]}x{hole.shape[0]} but image "
                           f"{job.image} is {size.width}x{size.height}")
    return gather(job.image, hole, plan(size, hole), orientation)


def check_decoding(jobs: list[InpaintJob], headers: list[ImageHeader], sizes: list[CheckedSize],
                   invert_mask: bool = False, mask_from_alpha: bool = False) -> list[CheckedJob]:
    """Reads every pair with the decoders the run uses (the whole photo, strip by strip, and the mask): a
    truncated file or a format one of them cannot read (a .tif mask) stops the run here instead of after
    earlier outputs were written. What was read (holes, windows) is kept for the run up to
    `KEPT_DECODED_BYTES` (the first always)."""
    checked, kept_bytes = [], 0
    for job, header, size in zip(jobs, headers, sizes):
        gathered = read_job(job, size, header.orientation, invert_mask, mask_from_alpha)
        keep = not checked or kept_bytes + gathered.nbytes <= KEPT_DECODED_BYTES
        kept_bytes += gathered.nbytes if keep else 0
        checked.append(CheckedJob(job, size, header.orientation, gathered if keep else None))
    return checked


def _write_png(strips, size: CheckedSize, output: str) -> None:
    from dmfn_tf.atomic_files import atomic_path
    from dmfn_tf.inpaint.files import write_png_strips

    try:
        with atomic_path(output, suffix=".png") as temporary:
            write_png_strips(temporary, strips, size.height, size.width)
    except OSError as err:  # disk full, file-size limit: the earlier outputs are complete, this one untouched
        raise UserError(f"{output}: cannot write the output ({err.strerror or err})") from None


def inpaint_job(generator, checked: CheckedJob, args) -> None:
    """Runs one checked job: its windows (kept, or read now) filled, the photo read again and written with them."""
    from dmfn_tf.inpaint.streamed import fill_windows, filled_strips

    try:
        gathered = checked.request or read_job(checked.job, checked.size, checked.orientation, args.invert_mask,
                                               args.mask_from_alpha)
        order = fill_windows(generator, gathered, args.max_pixels)
    except MemoryError:
        raise UserError(f"{checked.job.image}: ran out of memory ({checked.size.strategy} strategy); "
                        f"{get_strategy(checked.size.strategy).out_of_memory}") from None
    _write_png(filled_strips(gathered, order), checked.size, checked.job.output)


def run(args) -> int:
    from tqdm import tqdm

    from dmfn_tf.model_io import load_generator
    from dmfn_tf.output_files import prepare_output_folder

    if args.max_pixels <= 0:
        raise UserError(f"--max-pixels must be positive, got {args.max_pixels}")
    jobs = plan_jobs(args.image, args.mask, args.out, mask_from_alpha=args.mask_from_alpha)
    # The pairs are checked before the model loads; an unusable model path is reported then.
    hd = hd_options.options_from_args(args, args.model, strict=False)
    checked = check_jobs(jobs, args.max_pixels, mask_from_alpha=args.mask_from_alpha, hd=hd,
                         invert_mask=args.invert_mask)
    prepare_output_folder(args.out)
    hd_options.announce_assumed_size(args, args.model)
    generator = load_generator(model_option.model_or_shipped(args))
    for index in tqdm(range(len(checked)), desc="inpainting", unit="image", disable=len(checked) == 1):
        job, checked[index] = checked[index], None  # what was read is released once its output is written
        inpaint_job(generator, job, args)
    print(f"wrote {len(jobs)} image{'s' if len(jobs) != 1 else ''} to {args.out}")
    return 0
