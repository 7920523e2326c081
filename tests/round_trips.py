"""The three round trips every layer and model test runs, written once (as keras-hub's `TestCase` does).

- `assert_config_round_trip(layer, inputs)`: `get_config` -> `from_config`, weights copied -> the same
  config and the same output, bit for bit. A functional model is a layer too.
- `assert_keras_round_trip(model, inputs, path)`: save a `.keras` file, load it -> the same output.
- `assert_saved_model_round_trip(generator, export_dir)`: the generator's SavedModel export, loaded
  by plain TensorFlow -> the composite the Keras generator gives (`keras_composite`).

Each returns what it rebuilt, for the test's own further checks.
"""

from __future__ import annotations

import keras
import numpy as np


def _outputs(model, inputs, call_kwargs) -> list[np.ndarray]:
    """`model(*inputs, **call_kwargs)`'s outputs as NumPy arrays, flattened."""
    return [np.asarray(keras.ops.convert_to_numpy(out)) for out in keras.tree.flatten(model(*inputs, **call_kwargs))]


def _assert_same_outputs(got, expected, atol: float, what: str) -> None:
    assert len(got) == len(expected), f"{what}: {len(got)} outputs, expected {len(expected)}"
    for index, (a, b) in enumerate(zip(got, expected)):
        assert a.shape == b.shape, f"{what}: output {index} has shape {a.shape}, expected {b.shape}"
        if atol:
            np.testing.assert_allclose(a, b, atol=atol, rtol=0, err_msg=f"{what}: output {index}")
        else:
            np.testing.assert_array_equal(a, b, err_msg=f"{what}: output {index}")


def assert_config_round_trip(layer, *inputs, **call_kwargs):
    """Rebuilds `layer` from its config, copies its weights, and checks the config and the output are the same.

    Args:
        layer: a layer or functional model (built by calling it on `inputs` if it is not yet).
        *inputs: what the layer is called with (one argument, or several for a layer such as
            `LPIPSTapDistance(features0, features1)`).
        **call_kwargs: passed to both calls (e.g. `training=False`).

    Returns:
        The clone.
    """
    expected = _outputs(layer, inputs, call_kwargs)
    clone = type(layer).from_config(layer.get_config())
    clone(*inputs, **call_kwargs)  # builds the clone's weights
    clone.set_weights(layer.get_weights())
    assert clone.get_config() == layer.get_config(), f"{type(layer).__name__}: the config changed in the round trip"
    _assert_same_outputs(_outputs(clone, inputs, call_kwargs), expected, 0, f"{type(layer).__name__} from_config")
    return clone


def assert_keras_round_trip(model, inputs, path, load=keras.saving.load_model, save=None, atol: float = 0,
                            **call_kwargs):
    """Saves `model` as a `.keras` file, loads it, and checks the output is the same (bit for bit unless `atol`).

    Args:
        model: the model (or layer) to save.
        inputs: what it is called with.
        path: the `.keras` file to write.
        load: `path -> model` (Keras' loader by default; `model_io.load_generator` for generators).
        save: `(model, path) -> path written` (`model.save` by default; e.g. `serving.keras_export.export_keras`).
        atol: allowed absolute difference (0: exact).
        **call_kwargs: passed to both calls (e.g. `training=False`).

    Returns:
        The loaded model.
    """
    expected = _outputs(model, [inputs], call_kwargs)
    if save is None:
        model.save(path)
    else:
        path = save(model, str(path))
    loaded = load(str(path))
    _assert_same_outputs(_outputs(loaded, [inputs], call_kwargs), expected, atol, f"{model.name} .keras round trip")
    return loaded


def keras_composite(generator, image_uint8: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """An independent reference of the composite: NumPy reflect padding to multiples of 4, the Keras generator, crop,
    composite, in [-1, 1] (batches `[N, H, W, 3]` uint8 and `[N, H, W, 1]` binary)."""
    height, width = image_uint8.shape[1:3]
    pad = ((0, 0), (0, -height % 4), (0, -width % 4), (0, 0))
    image = image_uint8.astype(np.float32) / 127.5 - 1
    padded_image, padded_mask = np.pad(image, pad, mode="reflect"), np.pad(mask, pad, mode="reflect")
    raw = generator(np.concatenate([padded_image * (1 - padded_mask), padded_mask], -1)).numpy()[:, :height, :width]
    return mask * raw + (1 - mask) * image


def round_trip_batch(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two random uint8 images of 30 × 45 (not multiples of 4) and their binary masks, each with one box of holes."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (2, 30, 45, 3), dtype=np.uint8)
    mask = np.zeros((2, 30, 45, 1), np.float32)
    mask[0, 5:20, 10:30] = 1
    mask[1, 12:29, 3:17] = 1
    return image, mask


def assert_saved_model_round_trip(generator, export_dir, batch=None, atol: float = 1e-5, **export_options):
    """Exports `generator` as the project's SavedModel, loads it with plain TensorFlow and checks its `inpaint_float`
    composite against `keras_composite`.

    Args:
        generator: a DMFN generator.
        export_dir: the SavedModel folder to write.
        batch: `(image uint8 [N, H, W, 3], mask [N, H, W, 1])`; `round_trip_batch()` by default.
        atol: allowed absolute difference in [-1, 1].
        **export_options: passed to `serving.saved_model_export.export_saved_model` (e.g. `max_pixels`).

    Returns:
        The loaded SavedModel (`tf.saved_model.load`).
    """
    import tensorflow as tf

    from dmfn_tf.serving.saved_model_export import export_saved_model

    image, mask = round_trip_batch() if batch is None else batch
    served = tf.saved_model.load(export_saved_model(generator, str(export_dir), **export_options))
    as_float = image.astype(np.float32) / 127.5 - 1
    out = served.signatures["inpaint_float"](image=tf.constant(as_float), mask=tf.constant(mask))["inpainted"].numpy()
    np.testing.assert_allclose(out, keras_composite(generator, image, mask), atol=atol, rtol=0,
                               err_msg="SavedModel round trip")
    return served
