"""Checks the SavedModel's graph runs on a request before doing any work for it.

Encoded images (`check_encoded_request`). A few bytes can declare a huge image (a 31 KB PNG mask
of 16000 x 16000 decodes to 256 MB), so every image *and* mask of an `inpaint_bytes` request is
sized from its header before anything is decoded:

- PNG: width and height of the IHDR chunk; JPEG: `tf.io.extract_jpeg_shape` (the SOF marker);
  BMP: the int32 width and height of the info header (negative height: top-down rows);
  WebP: the VP8 frame header, the VP8L bitstream header, or the VP8X canvas.
- GIF and animated WebP are refused: TensorFlow's decoders decode every frame, and the number of
  frames is not in the header. Any other format is refused too, as is a header cut short.
- Each mask must declare its image's size, and the whole request (the sum of the images' height x
  width) must fit `max_pixels`. Sizes are int64, each side clamped to `max_pixels + 1` before
  multiplying, so no product or sum can wrap around into a small number that passes.

Messages are `InvalidArgumentError`s naming the input (`image_bytes[2]`), one line, without
echoing the request's bytes.

Float images (`image_for_generator`): hole pixels are the generator's to fill, so a NaN or inf
there is replaced by 0 before the generator sees it (a NaN would otherwise spread over the whole
output through the convolutions); a non-finite known pixel, or a non-finite mask value, is an
`InvalidArgumentError`.

Example:

```python
checks = check_encoded_request(image_bytes, mask_bytes, max_pixels=1024 * 1024)
with tf.control_dependencies(checks):
    images = tf.map_fn(decode, image_bytes, ...)
```
"""

from __future__ import annotations

import tensorflow as tf

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Format codes of `_declared_size`.
_UNKNOWN, _TRUNCATED, _PNG, _JPEG, _BMP, _WEBP, _GIF, _ANIMATED_WEBP = range(8)
# Bytes each header needs (PNG: IHDR up to its height; BMP: up to the height; WebP: 30 for every kind).
_HEADER_BYTES = {_PNG: 24, _BMP: 26, _WEBP: 30}
_PADDING = b"\0" * 32
_LARGEST_BUDGET = 2**31  # sides clamped to max_pixels + 1 multiply to less than 2^63


def _unsigned(padded, offset: int, n_bytes: int, big_endian: bool):
    """The unsigned integer of `n_bytes` bytes at `offset` of a scalar string, as int64."""
    digits = tf.cast(tf.io.decode_raw(tf.strings.substr(padded, offset, n_bytes), tf.uint8), tf.int64)
    weights = [256**i for i in range(n_bytes)]
    return tf.reduce_sum(digits * tf.constant(weights[::-1] if big_endian else weights, tf.int64))


def _signed32(padded, offset: int):
    value = _unsigned(padded, offset, 4, big_endian=False)
    return tf.where(value >= 2**31, value - 2**32, value)


def _declared_size(contents):
    """`[format code, height, width]` (int64) that a scalar encoded image declares in its header."""
    length = tf.strings.length(contents)
    # Padding makes every read below in range, so a short string never fails inside substr
    # (whose error message would echo the raw bytes).
    padded = tf.strings.join([contents, _PADDING])

    def at(offset, n_bytes):
        return tf.strings.substr(padded, offset, n_bytes)

    def sized(code, height, width):
        complete = length >= _HEADER_BYTES.get(code, 0)
        return tf.stack([tf.where(complete, tf.constant(code, tf.int64), _TRUNCATED), height, width])

    def png():
        return sized(_PNG, _unsigned(padded, 20, 4, True), _unsigned(padded, 16, 4, True))

    def jpeg():
        shape = tf.cast(tf.io.extract_jpeg_shape(contents), tf.int64)
        return tf.stack([tf.constant(_JPEG, tf.int64), shape[0], shape[1]])

    def bmp():
        return sized(_BMP, tf.abs(_signed32(padded, 22)), tf.abs(_signed32(padded, 18)))

    def webp():
        chunk = at(12, 4)
        lossy = (_unsigned(padded, 28, 2, False) % 2**14, _unsigned(padded, 26, 2, False) % 2**14)
        bits = _unsigned(padded, 21, 4, False)
        lossless = (bits // 2**14 % 2**14 + 1, bits % 2**14 + 1)
        canvas = (_unsigned(padded, 27, 3, False) + 1, _unsigned(padded, 24, 3, False) + 1)
        animated = tf.logical_and(tf.equal(chunk, "VP8X"), _unsigned(padded, 20, 1, False) // 2 % 2 == 1)
        size = tf.case(
            [(tf.equal(chunk, "VP8 "), lambda: tf.stack(lossy)), (tf.equal(chunk, "VP8L"), lambda: tf.stack(lossless)),
             (tf.equal(chunk, "VP8X"), lambda: tf.stack(canvas))],
            default=lambda: tf.constant([0, 0], tf.int64),
        )
        known = tf.reduce_any(tf.equal(chunk, ["VP8 ", "VP8L", "VP8X"]))
        code = tf.where(animated, _ANIMATED_WEBP, tf.where(known, _WEBP, _UNKNOWN))
        result = sized(_WEBP, size[0], size[1])
        return tf.concat([tf.where(result[0] == _TRUNCATED, result[:1], [code]), result[1:]], axis=0)

    def other():
        is_gif = tf.logical_or(tf.equal(at(0, 6), "GIF87a"), tf.equal(at(0, 6), "GIF89a"))
        return tf.stack([tf.where(is_gif, tf.constant(_GIF, tf.int64), _UNKNOWN), tf.constant(0, tf.int64),
                         tf.constant(0, tf.int64)])

    return tf.case(
        [
            (tf.equal(at(0, 8), _PNG_SIGNATURE), png),
            (tf.logical_and(length >= 3, tf.io.is_jpeg(contents)), jpeg),
            (tf.equal(at(0, 2), "BM"), bmp),
            (tf.logical_and(tf.equal(at(0, 4), "RIFF"), tf.equal(at(8, 4), "WEBP")), webp),
        ],
        default=other,
        exclusive=True,
    )


def _first(bad):
    """Index of the first True of a `[B]` bool tensor (0 when there is none, also for B = 0)."""
    return tf.argmax(tf.concat([tf.cast(bad, tf.int32), [0]], axis=0), output_type=tf.int64)


def _row(sizes, index):
    """`sizes[index]` of a `[B, 2]` tensor, `[0, 0]` past its end (messages are formatted even when unused)."""
    return tf.gather(tf.concat([sizes, tf.zeros([1, 2], tf.int64)], axis=0), index)


def _assert(condition, message_format: str, *values):
    """An assertion whose message is formatted from `values`, e.g. the index of the first bad input."""
    return tf.debugging.Assert(condition, [tf.strings.format(message_format, values)])


def _declared_sizes(encoded, name: str):
    """`[B, 3]` format code, height, width of a batch of encoded images, checked for a usable format."""
    sizes = tf.map_fn(_declared_size, encoded, fn_output_signature=tf.TensorSpec([3], tf.int64))
    codes = sizes[:, 0]
    checks = [
        lambda: _assert(tf.reduce_all(codes != _TRUNCATED), f"{name}[{{}}] is truncated: too short for its image "
                        "header", _first(codes == _TRUNCATED)),
        lambda: _assert(tf.reduce_all(codes != _GIF), f"{name}[{{}}] is a GIF: GIF is not accepted (its frames "
                        "cannot be sized from the header); send PNG, JPEG, BMP or WebP", _first(codes == _GIF)),
        lambda: _assert(tf.reduce_all(codes != _ANIMATED_WEBP), f"{name}[{{}}] is an animated WebP, which is not "
                        "accepted", _first(codes == _ANIMATED_WEBP)),
        lambda: _assert(tf.reduce_all(codes != _UNKNOWN), f"{name}[{{}}] is not a PNG, JPEG, BMP or WebP image",
                        _first(codes == _UNKNOWN)),
    ]
    with tf.control_dependencies(_chain(checks)):
        return tf.identity(sizes[:, 1:])


def _chain(checks) -> list:
    """Builds the assertions one after the other, so that the first failing one is the one reported."""
    done = []
    for check in checks:
        with tf.control_dependencies(done):
            done = [check()]
    return done


def check_encoded_request(image_bytes, mask_bytes, max_pixels: int) -> list:
    """Assertions on a batch of encoded images and masks, to run before decoding any of them.

    Args:
        image_bytes: string `[B]`, encoded images.
        mask_bytes: string `[B]`, encoded masks.
        max_pixels: the budget of the whole request (sum over the batch of height x width), below 2^31.

    Returns:
        A list of ops to use as control dependencies of the decoding; each raises
        `InvalidArgumentError` with a one-line message when its check fails.
    """
    if not 0 < max_pixels < _LARGEST_BUDGET:
        raise ValueError(f"max_pixels must be in [1, 2^31), got {max_pixels}")
    same_length = tf.debugging.assert_equal(
        tf.size(image_bytes), tf.size(mask_bytes), message="image_bytes and mask_bytes must have the same length"
    )
    with tf.control_dependencies([same_length]):
        image_sizes = _declared_sizes(image_bytes, "image_bytes")
        mask_sizes = _declared_sizes(mask_bytes, "mask_bytes")
    empty = tf.reduce_any(image_sizes < 1, axis=1)
    mismatch = tf.reduce_any(tf.not_equal(image_sizes, mask_sizes), axis=1)
    index = _first(mismatch)
    mask_size, image_size = _row(mask_sizes, index), _row(image_sizes, index)
    ceiling = max_pixels + 1
    clamped = tf.minimum(image_sizes, ceiling)
    pixels = tf.reduce_sum(tf.minimum(clamped[:, 0] * clamped[:, 1], ceiling))
    return _chain([
        lambda: _assert(tf.logical_not(tf.reduce_any(empty)), "image_bytes[{}] declares an empty image", _first(empty)),
        lambda: _assert(
            pixels <= max_pixels,
            f"this request declares more than the budget of {max_pixels} pixels in all "
            "(sum over its images of height x width)",
        ),
        lambda: _assert(
            tf.logical_not(tf.reduce_any(mismatch)),
            "mask_bytes[{}] is {}x{} but image_bytes[{}] is {}x{}: "
            "image and mask must have the same batch size, height and width",
            index, mask_size[1], mask_size[0], index, image_size[1], image_size[0],
        ),
    ])


def image_for_generator(image, hole):
    """A float image with its hole pixels set to 0, after checking that every other value is finite.

    Args:
        image: float32 `[B, H, W, 3]`.
        hole: float32 {0, 1} `[B, H, W, 1]` (from a mask whose values were checked to be finite).

    Returns:
        `image` with 0 wherever `hole` is 1.
    """
    in_hole = tf.broadcast_to(hole > 0.5, tf.shape(image))
    known_finite = tf.reduce_all(tf.logical_or(in_hole, tf.math.is_finite(image)))
    check = tf.debugging.Assert(known_finite, ["image has NaN or infinite values at known (non-hole) pixels"])
    with tf.control_dependencies([check]):
        return tf.where(in_hole, tf.zeros_like(image), image)


def check_finite_mask(mask):
    """`mask` after checking that it holds no NaN or infinite value."""
    check = tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(mask)), ["mask has NaN or infinite values"])
    with tf.control_dependencies([check]):
        return tf.identity(mask)
