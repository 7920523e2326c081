"""The high-resolution options shared by `dmfn inpaint` and `dmfn app` (see `dmfn_tf.inpaint.strategies`).

`--hd-strategy` offers `auto` and every registered strategy, and its help is the strategies' own.

The trained size comes from the model itself (`dmfn_tf.model_io.trained_size`: its file's
description, its run's `config.yaml`, 256 for the authors' checkpoints); `--trained-size` overrides it.
"""

from __future__ import annotations

import sys

from dmfn_tf.inpaint.strategies import (
    AUTO,
    DEFAULT_CROP_MARGIN,
    DEFAULT_CROP_TRIGGER,
    DEFAULT_RESIZE_LIMIT,
    DEFAULT_TRAINED_SIZE,
    HDOptions,
    registered,
    strategy_names,
)
from dmfn_tf.model_io import ModelLoadError, trained_size


def add_arguments(parser) -> None:
    """Adds `--hd-strategy`, `--trained-size`, `--crop-trigger`, `--crop-margin` and `--resize-limit`."""
    group = parser.add_argument_group("large images (see dmfn_tf.inpaint.strategies)")
    helps = "; ".join(f"{strategy.name}: {strategy.help}" for strategy in registered())
    group.add_argument(
        "--hd-strategy", choices=strategy_names(), default=AUTO,
        help=f"{helps}; {AUTO} (default): original up to --crop-trigger pixels on the longer side, crop above",
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


def options_from_args(args, model: str | None, strict: bool = True) -> HDOptions:
    """The `HDOptions` the arguments describe for `model` (its path; None: the shipped one); bad values are UserErrors.

    The trained size is `--trained-size`, else what the model records, else `DEFAULT_TRAINED_SIZE`
    (`announce_assumed_size` says so once the run's checks have passed). With `strict` False, a
    model that cannot be read also gets the default: its error comes when it is loaded, after the
    inputs were checked.
    """
    size = args.trained_size
    if size is None:
        try:
            size = trained_size(model) or DEFAULT_TRAINED_SIZE
        except ModelLoadError:
            if strict:
                raise
            size = DEFAULT_TRAINED_SIZE
    return HDOptions(
        strategy=args.hd_strategy,
        trained_size=size,
        crop_trigger=args.crop_trigger,
        crop_margin=args.crop_margin,
        resize_limit=args.resize_limit,
    )


def announce_assumed_size(args, model: str | None) -> None:
    """One line on stderr when a strategy that uses the trained size falls back to `DEFAULT_TRAINED_SIZE`."""
    if args.trained_size is not None or args.hd_strategy not in (AUTO, "crop"):
        return
    if trained_size(model) is None:
        print(f"{model or 'the shipped model'}: the model does not record the size it was trained on; assuming "
              f"{DEFAULT_TRAINED_SIZE} (pass --trained-size to set it)", file=sys.stderr, flush=True)
