"""Mask files: a user's image of a hole turned into a binary mask (1 = hole), by one documented rule.

`mask_from_image` (decoded pixels), `decode_mask_bytes` (a file's bytes, also inside `tf.data`
graphs and the SavedModel's `inpaint_bytes`) and `load_mask_file` (a path, as NumPy) follow it,
in this order:

1. channel: a one-channel image is used as is; grey+alpha uses the grey channel; RGB and RGBA use
   the luminance `0.2989 R + 0.5870 G + 0.1140 B` (the alpha channel is ignored). With
   `from_alpha=True` the alpha channel of a grey+alpha or RGBA file is used instead, and a file
   without alpha is an error.
2. scale to [0, 1]: divide by 255, except for files whose largest value is at most 1, which are
   taken as 0/1 masks already (so 0/255, 0/1 and anti-aliased 8-bit masks all work).
3. resize (when a size is given) with area interpolation, i.e. the fraction of each output pixel
   covered by hole;
4. binarise with `> 0.5`;
5. with `invert=True` (MAT-style files where 0 = hole) swap 0 and 1. Never guessed.

16-bit files are reduced to 8 bits by the decoder first (so a 16-bit file holding 0/1 reads as
empty: save such masks as 8-bit).
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from dmfn_tf.data.image_files import error_summary
from dmfn_tf.data.masks.generators import check_mask_size, random_bbox
from dmfn_tf.errors import UserError

# Luminance weights of ITU-R BT.601, the ones `tf.image.rgb_to_grayscale` and PIL's "L" use.
_LUMA = (0.2989, 0.5870, 0.1140)


def mask_from_image(image, size=None, invert: bool = False, from_alpha: bool = False) -> tf.Tensor:
    """Turns a decoded mask image into a binary hole mask, following the module's documented rule.

    Works eagerly and inside `tf.data` graphs; the channel count may be unknown until run time.

    Args:
        image: uint8 `[H, W, C]` tensor with C in 1–4 (grey, grey+alpha, RGB, RGBA).
        size: output `(height, width)` or an int for a square; `None` keeps the file's size.
        invert: the file marks holes with 0 (MAT style); swap after binarising.
        from_alpha: read the hole from the alpha channel instead of the colour channels.

    Returns:
        float32 `[height, width, 1]` with values exactly 0 or 1, 1 = hole.
    """
    image = tf.convert_to_tensor(image)
    if image.dtype != tf.uint8:
        raise TypeError(f"mask_from_image expects a uint8 image, got {image.dtype.name}")
    pixels = tf.cast(image, tf.float32)
    channels = tf.shape(pixels)[-1]
    if from_alpha:
        tf.debugging.assert_equal(
            channels % 2, 0, message="from_alpha needs a mask image with an alpha channel (grey+alpha or RGBA)"
        )
        plane = pixels[..., -1:]
    else:
        plane = tf.cond(
            channels >= 3,
            lambda: tf.tensordot(pixels[..., :3], tf.constant(_LUMA), axes=1)[..., None],
            lambda: pixels[..., :1],
        )
    # Files whose values never exceed 1 are 0/1 masks already; everything else is 8-bit.
    plane = plane / tf.where(tf.reduce_max(plane) <= 1.0, 1.0, 255.0)
    if size is not None:
        height, width = (size, size) if isinstance(size, (int, np.integer)) else size
        plane = tf.image.resize(plane, [height, width], method="area")
    hole = plane > 0.5
    if invert:
        hole = ~hole
    return tf.cast(hole, tf.float32)


def decode_mask_bytes(contents, size=None, invert: bool = False, from_alpha: bool = False) -> tf.Tensor:
    """Decodes an encoded mask file (PNG, JPEG, BMP, GIF, WebP) and applies `mask_from_image`.

    Args:
        contents: scalar string tensor, the file's bytes.
        size: output `(height, width)`, an int for a square, or `None` for the file's size.
        invert: the file marks holes with 0.
        from_alpha: read the hole from the alpha channel.

    Returns:
        float32 `[height, width, 1]`, 1 = hole.
    """
    image = tf.io.decode_image(contents, channels=0, expand_animations=False)
    return mask_from_image(image, size=size, invert=invert, from_alpha=from_alpha)


def load_mask_file(path, size=None, invert: bool = False, from_alpha: bool = False) -> np.ndarray:
    """Reads a user's mask file into a binary NumPy mask (1 = hole), for training and inference.

    Args:
        path: image file; any format `tf.io.decode_image` reads.
        size: output `(height, width)`, an int for a square, or `None` for the file's own size.
        invert: the file marks holes with 0 (MAT style).
        from_alpha: read the hole from the alpha channel (e.g. a transparent brush layer).

    Returns:
        float32 `[height, width, 1]` array with values exactly 0 or 1.

    Raises:
        UserError: the file is missing, empty, not an image, corrupt, or lacks the alpha channel
            `from_alpha` asks for; the message names the file.

    Example:

    ```python
    mask = load_mask_file("masks/0001.png", size=256)
    result = inpaint(generator, image, mask)  # dmfn_tf.inpaint
    ```
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"mask file not found: {path}")
    with open(path, "rb") as f:
        contents = f.read()
    if not contents:
        raise UserError(f"mask file is empty (0 bytes): {path}")
    try:
        mask = decode_mask_bytes(tf.constant(contents), size=size, invert=invert, from_alpha=from_alpha)
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as err:
        raise UserError(f"cannot read mask file {path}: {error_summary(err)}") from None
    return mask.numpy()


def mask_file_maker(size: int, files, invert: bool = False, from_alpha: bool = False, ordered: bool = False,
                    read=None):
    """`make(index, seed) -> (mask [S, S, 1], bbox [4])` reading mask files (the mask kind "file").

    Args:
        size: image side `S`, a multiple of 4; every file is resized to it.
        files: the mask files' paths (at least one).
        invert: the files mark holes with 0.
        from_alpha: read the holes from the files' alpha channel.
        ordered: example `i` takes file `i % len(files)` (evaluation) instead of one picked with its seed.
        read: `read(path) -> (contents, *status)`, scalar tensors: how a picked file is read (the
            training pipeline passes its `GuardedReader`'s, whose status is `(ok, hopeless)`); then
            `make` returns `(mask, bbox, *status)`. Default: `tf.io.read_file`, no status. The pick
            does not depend on it, so the same seed gives the same mask either way.

    Returns:
        The maker; its bbox is a random S/2 square (`random_bbox`).
    """
    check_mask_size(size)
    if not files:
        raise UserError("mask kind 'file' needs mask files, and none were given")
    table = tf.constant(list(files))
    count = len(files)
    read = read or (lambda path: (tf.io.read_file(path),))

    def make(index, seed):
        pick_seed, bbox_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        if ordered:
            pick = tf.cast(index, tf.int64) % count
        else:
            pick = tf.random.stateless_uniform([], pick_seed, 0, count, dtype=tf.int64)
        contents, *status = read(table[pick])
        mask = decode_mask_bytes(contents, size=size, invert=invert, from_alpha=from_alpha)
        mask.set_shape([size, size, 1])
        return (mask, random_bbox(size, bbox_seed), *status)

    return make
