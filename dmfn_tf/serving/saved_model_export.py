"""Self-contained SavedModel of the generator for TensorFlow Serving.

The exported `tf.Module` holds the generator's weights and does all pre- and post-processing in
the graph, so it loads with plain TensorFlow (`tf.saved_model.load`, TF Serving, `saved_model_cli`)
without this package. Signatures:

- `serving_default(image: uint8 [B, H, W, 3], mask: float32 [B, H, W, 1])` ->
  `{"inpainted": uint8 [B, H, W, 3]}`, any H and W.
- `inpaint_bytes(image_bytes: string [B], mask_bytes: string [B])` ->
  `{"inpainted_png_bytes": string [B]}`: PNG/JPEG/BMP/WebP in, PNG out, each image at its own size.
  TF Serving's REST API takes and returns these as `{"b64": "..."}` values.
- `inpaint_float(image: float32 [B, H, W, 3] in [-1, 1], mask: float32 [B, H, W, 1])` ->
  `{"inpainted": float32 [B, H, W, 3]}`: the composite in [-1, 1] before rounding.

The graph applies the package's inpainting contract (`dmfn_tf.inpaint.contract`): masks 1 = hole, 0/255
masks divided by 255 per image, then > 0.5; reflection padding to multiples of 4 and crop; the
composite. Encoded mask images follow `dmfn_tf.data.masks.mask_from_image`, the package's rule for
mask files (luma of colour masks, alpha ignored, 0/1 and 0/255 files). Known pixels of the uint8
and PNG outputs are the input's, bit for bit.

The model's description (`dmfn_tf.model_metadata`: trained size, architecture, input convention,
provenance) is `assets.extra/dmfn_model.json` (`METADATA_FILE`), the folder SavedModel leaves to
files that travel with the model without being part of its graph: plain JSON, readable without
TensorFlow.

Errors are `InvalidArgumentError`s (HTTP 400 in TF Serving): undecodable bytes, an image and mask
of different sizes or batch sizes, an empty image, or a request of more than `max_pixels` pixels
in all (batch x height x width; encoded images and masks are all sized from their headers before
any is decoded, see `dmfn_tf.serving.request_checks`), NaN or inf at known pixels of
`inpaint_float` (NaN in its holes is ignored: hole pixels come from the generator).
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from dmfn_tf.atomic_files import atomic_directory
from dmfn_tf.data.masks import mask_from_image
from dmfn_tf.inpaint.budget import DEFAULT_MAX_PIXELS
from dmfn_tf.inpaint.contract import binarise_mask, inpaint_float, inpaint_uint8
from dmfn_tf.serving.request_checks import check_encoded_request, check_finite_mask, image_for_generator

SIGNATURE_NAMES = ("serving_default", "inpaint_bytes", "inpaint_float")
# The model's description inside a SavedModel folder (`assets.extra`: files beside the graph, not in it).
METADATA_FILE = os.path.join("assets.extra", "dmfn_model.json")




class InpaintingModule(tf.Module):
    """The generator with in-graph pre/post-processing; its `tf.function`s are the signatures.

    Args:
        generator: a DMFN generator (`[B, H, W, 4]` -> `[B, H, W, 3]`).
        max_pixels: the largest batch x height x width a request may have.
    """

    def __init__(self, generator, max_pixels: int = DEFAULT_MAX_PIXELS):
        super().__init__(name="dmfn_inpainting")
        # Save the weights as the plain tf.Variables under the Keras variables and keep the Keras
        # objects out of the saved object graph (hence `object.__setattr__`, which tf.Module does not
        # track): with Keras variables tracked, TF1-style loaders (TF Serving, `saved_model_cli run`)
        # fail with "Could not find variable ..." (keras-team/keras#19274).
        self.generator_weights = [weight.value for weight in generator.weights]
        object.__setattr__(self, "generator", generator)
        self.max_pixels = max_pixels

    def _check(self, image, mask):
        image_shape, mask_shape = tf.shape(image), tf.shape(mask)
        checks = [
            tf.debugging.assert_equal(
                image_shape[:3], mask_shape[:3],
                message="image and mask must have the same batch size, height and width",
            ),
            tf.debugging.assert_positive(image_shape[1:3], message="image height and width must be at least 1"),
            tf.debugging.assert_less_equal(
                tf.reduce_prod(tf.cast(image_shape[:3], tf.int64)), tf.constant(self.max_pixels, tf.int64),
                message=f"batch x height x width exceeds the budget of {self.max_pixels} pixels",
            ),
        ]
        with tf.control_dependencies(checks):
            return tf.identity(image), tf.identity(mask)

    def _inpaint_uint8(self, image, mask):
        image, mask = self._check(image, mask)
        return inpaint_uint8(self.generator, image, mask)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None, None, 3], tf.uint8, name="image"),
            tf.TensorSpec([None, None, None, 1], tf.float32, name="mask"),
        ]
    )
    def serve(self, image, mask):
        return {"inpainted": self._inpaint_uint8(image, mask)}

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None, None, 3], tf.float32, name="image"),
            tf.TensorSpec([None, None, None, 1], tf.float32, name="mask"),
        ]
    )
    def serve_float(self, image, mask):
        image, mask = self._check(image, check_finite_mask(mask))
        hole = binarise_mask(mask)
        return {"inpainted": inpaint_float(self.generator, image_for_generator(image, hole), hole)}

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="image_bytes"),
            tf.TensorSpec([None], tf.string, name="mask_bytes"),
        ]
    )
    def serve_bytes(self, image_bytes, mask_bytes):
        checks = check_encoded_request(image_bytes, mask_bytes, self.max_pixels)

        def inpaint_one(pair):
            image = tf.io.decode_image(pair[0], channels=3, dtype=tf.uint8, expand_animations=False)
            mask = mask_from_image(tf.io.decode_image(pair[1], channels=0, dtype=tf.uint8, expand_animations=False))
            inpainted = self._inpaint_uint8(image[None], mask[None])
            return tf.io.encode_png(inpainted[0])

        with tf.control_dependencies(checks):
            encoded = tf.map_fn(inpaint_one, (image_bytes, mask_bytes), fn_output_signature=tf.string)
        return {"inpainted_png_bytes": encoded}

    def signatures(self) -> dict:
        """The concrete functions to save, keyed by signature name."""
        return {
            "serving_default": self.serve.get_concrete_function(),
            "inpaint_bytes": self.serve_bytes.get_concrete_function(),
            "inpaint_float": self.serve_float.get_concrete_function(),
        }


def export_saved_model(generator, directory: str, max_pixels: int = DEFAULT_MAX_PIXELS, metadata=None) -> str:
    """Writes the generator as a self-contained SavedModel.

    For TF Serving, point `directory` at `<model_base_path>/<version>` (e.g. `saved_models/dmfn/1`).

    Args:
        generator: a DMFN generator.
        directory: the SavedModel folder to write (created if missing). It is written under a
            temporary name beside it and renamed into place: an existing folder is replaced whole
            (no old file survives), and a failure leaves it as it was (`atomic_directory`).
        max_pixels: the largest batch x height x width a request may have.
        metadata: the generator's `dmfn_tf.model_metadata.ModelMetadata`, written to `METADATA_FILE`; or None.

    Returns:
        `directory`.

    Example:

    ```python
    export_saved_model(load_generator("runs/celeba_hq"), "saved_models/dmfn/1")
    served = tf.saved_model.load("saved_models/dmfn/1")
    served.signatures["serving_default"](image=image_uint8, mask=mask)["inpainted"]
    ```
    """
    module = InpaintingModule(generator, max_pixels=max_pixels)
    with atomic_directory(directory) as temporary:  # an old folder is replaced whole, or kept on failure
        tf.saved_model.save(module, temporary, signatures=module.signatures())
        if metadata is not None:
            os.makedirs(os.path.join(temporary, os.path.dirname(METADATA_FILE)), exist_ok=True)
            with open(os.path.join(temporary, METADATA_FILE), "w", encoding="utf-8") as file:
                json.dump(metadata.to_dict(), file, indent=1)
    return directory
