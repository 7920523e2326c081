"""`TorchAdam` against a NumPy transcription of PyTorch's documented Adam update."""

import keras
import numpy as np
import pytest

from dmfn_tf.training.optimizers import TorchAdam, make_adam

LR, BETA_1, BETA_2, EPSILON = 2e-4, 0.5, 0.999, 1e-8


def numpy_torch_adam(gradients, start, amsgrad=False):
    """PyTorch's Adam (torch.optim.Adam docs): v_hat = v / (1 - b2^t), step lr * m_hat / (sqrt(v_hat) + eps)."""
    theta = start.astype(np.float64)
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    v_max = np.zeros_like(theta)
    for t, g in enumerate(gradients, start=1):
        m = BETA_1 * m + (1 - BETA_1) * g
        v = BETA_2 * v + (1 - BETA_2) * g * g
        v_max = np.maximum(v_max, v)
        v_used = v_max if amsgrad else v
        theta = theta - LR * (m / (1 - BETA_1**t)) / (np.sqrt(v_used / (1 - BETA_2**t)) + EPSILON)
    return theta


def _gradients():
    rng = np.random.default_rng(0)
    # Magnitudes from 1e-10 to 1: the small ones are where epsilon's placement matters.
    scales = 10.0 ** rng.uniform(-10, 0, 64)
    return [(rng.normal(size=64) * scales).astype(np.float32) for _ in range(3)]


def _run(optimizer, gradients, start):
    variable = keras.Variable(start)
    for g in gradients:
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(g), variable)])
    return variable.numpy()


@pytest.mark.parametrize("amsgrad", [False, True])
def test_torch_adam_matches_pytorchs_update(amsgrad):
    start = np.linspace(-1, 1, 64).astype(np.float32)
    gradients = _gradients()
    ours = _run(TorchAdam(LR, BETA_1, BETA_2, EPSILON, amsgrad=amsgrad), gradients, start)
    expected = numpy_torch_adam(gradients, start, amsgrad=amsgrad)
    # float32 rounding of values near 1: far below the 2e-4-per-step updates being checked.
    np.testing.assert_allclose(ours, expected, rtol=0, atol=3e-7)


def test_keras_convention_differs_where_gradients_are_small():
    start = np.zeros(64, np.float32)
    gradients = _gradients()
    expected = numpy_torch_adam(gradients, start)
    keras_placed = _run(make_adam(LR, BETA_1, BETA_2, EPSILON, convention="keras"), gradients, start)
    difference = np.abs(keras_placed - expected)
    # Keras' eps acts 1/sqrt(1 - 0.999) = 32x larger at step 1: gradients below ~1e-7 move less.
    assert difference.max() > 0.1 * LR
    assert isinstance(make_adam(LR, BETA_1, BETA_2, EPSILON), TorchAdam)
    with pytest.raises(ValueError, match="unknown Adam epsilon convention"):
        make_adam(LR, BETA_1, BETA_2, EPSILON, convention="jax")


def test_loss_scaling_unscales_before_the_torch_update():
    start = np.linspace(-1, 1, 64).astype(np.float32)
    gradients = _gradients()
    scaled = keras.optimizers.LossScaleOptimizer(TorchAdam(LR, BETA_1, BETA_2, EPSILON), initial_scale=1024.0, dynamic_growth_steps=1000)
    ours = _run(scaled, [g * np.float32(1024.0) for g in gradients], start)
    np.testing.assert_allclose(ours, numpy_torch_adam(gradients, start), rtol=0, atol=3e-7)


def test_config_round_trip():
    optimizer = TorchAdam(LR, BETA_1, BETA_2, EPSILON, name="generator_adam")
    clone = TorchAdam.from_config(optimizer.get_config())
    assert isinstance(clone, TorchAdam) and clone.epsilon == EPSILON and clone.beta_1 == BETA_1
