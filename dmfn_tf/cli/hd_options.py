"""The high-resolution options shared by `dmfn inpaint` and `dmfn app` (see `dmfn_tf.high_resolution`).

The trained size comes from the model itself (`dmfn_tf.model_io.trained_size`: its file's
description, its run's `config.yaml`, 256 for the authors' checkpoints); `--trained-size` overrides it.
"""

from __future__ import annotations

import sys

from dmfn_tf.high_resolution import (
    DEFAULT_CROP_MARGIN,
    DEFAULT_CROP_TRIGGER,
    DEFAULT_RESIZE_LIMIT,
    DEFAULT_TRAINED_SIZE,
    STRATEGIES,
    HDOptions,
)
from dmfn_tf.model_io import trained_size


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
                       help="side of the squares the model was trained on (default: what the model records: its "
                       "file's description, its run's config.yaml, 256 for the authors' checkpoints; "
                       f"{DEFAULT_TRAINED_SIZE} where it records nothing)")
    group.add_argument("--crop-trigger", type=int, default=DEFAULT_CROP_TRIGGER,
                       help=f"auto uses crop for images whose longer side exceeds this (default {DEFAULT_CROP_TRIGGER})")
    group.add_argument("--crop-margin", type=int, default=DEFAULT_CROP_MARGIN,
                       help=f"least context around each hole for crop, in pixels (default {DEFAULT_CROP_MARGIN})")
    group.add_argument("--resize-limit", type=int, default=DEFAULT_RESIZE_LIMIT,
                       help=f"longer side of the image the model sees with resize (default {DEFAULT_RESIZE_LIMIT})")


def model_trained_size(model: str | None, announce: bool = True) -> int:
    """The trained size `model` records, or `DEFAULT_TRAINED_SIZE` where it records none (said on stderr with `announce`).

    Args:
        model: a model path as `load_generator` takes it (None: the shipped one).
        announce: print a line when the default stands in (only where a strategy uses the size).
    """
    size = trained_size(model)
    if size is None and announce:
        print(f"{model or 'the shipped model'}: the model does not record the size it was trained on; assuming "
              f"{DEFAULT_TRAINED_SIZE} (pass --trained-size to set it)", file=sys.stderr, flush=True)
    return DEFAULT_TRAINED_SIZE if size is None else size


def options_from_args(args, model: str | None) -> HDOptions:
    """The `HDOptions` the arguments describe for `model` (its path; None: the shipped one); bad values are UserErrors."""
    return HDOptions(
        strategy=args.hd_strategy,
        trained_size=(args.trained_size if args.trained_size is not None
                      else model_trained_size(model, announce=args.hd_strategy in ("auto", "crop"))),
        crop_trigger=args.crop_trigger,
        crop_margin=args.crop_margin,
        resize_limit=args.resize_limit,
    )
