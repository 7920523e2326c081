"""The high-resolution options shared by `dmfn inpaint` and `dmfn app` (see `dmfn_tf.high_resolution`)."""

from __future__ import annotations

from dmfn_tf.high_resolution import (
    DEFAULT_CROP_MARGIN,
    DEFAULT_CROP_TRIGGER,
    DEFAULT_RESIZE_LIMIT,
    DEFAULT_TRAINED_SIZE,
    STRATEGIES,
    HDOptions,
)
from dmfn_tf.model_io import SHIPPED_MODEL_TRAINED_SIZE, trained_size


def add_arguments(parser) -> None:
    """Adds `--hd-strategy`, `--trained-size`, `--crop-trigger`, `--crop-margin` and `--resize-limit`."""
    group = parser.add_argument_group("large images (see dmfn_tf.high_resolution)")
    group.add_argument(
        "--hd-strategy", choices=STRATEGIES, default="auto",
        help="original: the whole image through the model; crop: a window around each hole, scaled to "
        "--trained-size; resize: the image scaled to --resize-limit, only the hole pasted back; "
        f"auto (default): original up to --crop-trigger pixels on the longer side, crop above",
    )
    group.add_argument("--trained-size", type=int,
                       help=f"side of the squares the model was trained on (default: {SHIPPED_MODEL_TRAINED_SIZE} "
                       f"for the shipped model, {DEFAULT_TRAINED_SIZE} for others)")
    group.add_argument("--crop-trigger", type=int, default=DEFAULT_CROP_TRIGGER,
                       help=f"auto uses crop for images whose longer side exceeds this (default {DEFAULT_CROP_TRIGGER})")
    group.add_argument("--crop-margin", type=int, default=DEFAULT_CROP_MARGIN,
                       help=f"least context around each hole for crop, in pixels (default {DEFAULT_CROP_MARGIN})")
    group.add_argument("--resize-limit", type=int, default=DEFAULT_RESIZE_LIMIT,
                       help=f"longer side of the image the model sees with resize (default {DEFAULT_RESIZE_LIMIT})")


def options_from_args(args, model: str | None) -> HDOptions:
    """The `HDOptions` the arguments describe for `model` (its path; None: the shipped one); bad values are UserErrors."""
    return HDOptions(
        strategy=args.hd_strategy,
        trained_size=args.trained_size if args.trained_size is not None else trained_size(model) or DEFAULT_TRAINED_SIZE,
        crop_trigger=args.crop_trigger,
        crop_margin=args.crop_margin,
        resize_limit=args.resize_limit,
    )
