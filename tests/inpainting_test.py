"""The inpainting contract (dmfn_tf.inpainting): conversions, mask rule, padding, composite."""

import numpy as np
import pytest

from dmfn_tf.inpainting import binarise_mask, composite, generator_input, pad_to_multiple, to_model_range, to_uint8


def test_to_uint8_inverts_the_input_scaling_and_clips():
    pixels = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(np.asarray(to_uint8(to_model_range(pixels))), pixels)
    np.testing.assert_array_equal(np.asarray(to_uint8(np.array([-1.5, -1.0, 0.0, 1.0, 1.2]))), [0, 0, 128, 255, 255])


def test_binarise_mask_takes_01_and_0255_masks_per_image():
    masks = np.zeros((3, 2, 2, 1), np.float32)
    masks[0, 0, 0] = 1.0      # 0/1 mask
    masks[1, 0, 0] = 255.0    # 0/255 mask: 100 is below half intensity
    masks[1, 1, 1] = 100.0
    masks[2, 0, 0] = 0.6      # anti-aliased 0/1 mask: split at 0.5
    masks[2, 1, 1] = 0.4
    expected = np.zeros_like(masks)
    expected[:, 0, 0] = 1.0
    np.testing.assert_array_equal(np.asarray(binarise_mask(masks)), expected)


@pytest.mark.parametrize("height, width", [(1, 1), (3, 5), (8, 6), (61, 83)])
def test_pad_to_multiple_is_numpy_reflect_padding(height, width):
    images = np.random.default_rng(0).normal(size=(2, height, width, 3)).astype(np.float32)
    pad = ((0, 0), (0, -height % 4), (0, -width % 4), (0, 0))
    np.testing.assert_array_equal(np.asarray(pad_to_multiple(images)), np.pad(images, pad, mode="reflect" if min(height, width) > 1 else "edge"))


def test_generator_input_and_composite():
    rng = np.random.default_rng(1)
    image, raw = rng.uniform(-1, 1, (2, 1, 4, 3, 3)).astype(np.float32)
    mask = (rng.uniform(size=(1, 4, 3, 1)) > 0.5).astype(np.float32)
    x = np.asarray(generator_input(image, mask))
    np.testing.assert_array_equal(x[..., :3], np.where(mask > 0, 0.0, image))
    np.testing.assert_array_equal(x[..., 3:], mask)
    np.testing.assert_array_equal(np.asarray(composite(raw, image, mask)), np.where(mask > 0, raw, image))
