"""Adam with PyTorch's placement of epsilon (docs/design.md §6).

Keras' Adam divides by `sqrt(v) + eps` with the bias correction folded into the step size, which
puts epsilon on the scale of the uncorrected `sqrt(v)`; PyTorch divides by `sqrt(v_hat) + eps`
with `v_hat = v / (1 - beta_2^t)`. The same number therefore means different things: Keras' eps
equals PyTorch's `eps / sqrt(1 - beta_2^t)`, 32 times larger at step 1 with beta_2 = 0.999. The
authors trained with PyTorch's default 1e-8; `TorchAdam` reproduces that exactly.
"""

from __future__ import annotations

import keras
from keras import ops

from dmfn_tf.config import ADAM_EPSILON_CONVENTIONS


@keras.saving.register_keras_serializable(package="dmfn_tf")
class TorchAdam(keras.optimizers.Adam):
    """Adam whose update is PyTorch's: `lr * m_hat / (sqrt(v_hat) + epsilon)`.

    `m_hat = m / (1 - beta_1^t)` and `v_hat = v / (1 - beta_2^t)` at update `t` (1 for the first);
    everything else (moments, amsgrad, weight decay, clipping, schedules, EMA) is Keras' Adam.

    Loss scaling: `keras.optimizers.LossScaleOptimizer` wraps it and unscales the gradients before
    they reach `update_step`, so epsilon is compared with the true gradient's scale, as in PyTorch
    with a `GradScaler`; an update skipped for overflowing gradients advances neither `t` nor the
    moments in either framework. `tf.distribute`: the replicas' gradients are summed before
    `update_step` runs on each copy of a mirrored variable with the same values, and the update is
    elementwise, so the placement of epsilon is the same with any number of replicas.

    Args:
        learning_rate: a float or a `keras.optimizers.schedules.LearningRateSchedule`.
        beta_1: decay of the first moment.
        beta_2: decay of the second moment.
        epsilon: added to `sqrt(v_hat)`; PyTorch's default 1e-8 (Keras' Adam defaults to 1e-7,
            added to `sqrt(v)`).
        **kwargs: any other `keras.optimizers.Adam` argument (`amsgrad`, `name`, `weight_decay`, ...).

    Example:

    ```python
    optimizer = TorchAdam(learning_rate=2e-4, beta_1=0.5, beta_2=0.999, epsilon=1e-8)
    variable = keras.Variable([1.0, -1.0])
    _ = optimizer.apply_gradients([(keras.ops.convert_to_tensor([0.5, -1e-9]), variable)])
    [round(float(v), 6) for v in variable.numpy()]  # 1 - lr, and -1 + lr * 1e-9 / (1e-9 + 1e-8)
    # -> [0.9998, -0.999982]
    ```
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8, **kwargs):
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        step = ops.cast(self.iterations + 1, dtype)
        first_correction = 1 - ops.power(ops.cast(self.beta_1, dtype), step)
        second_correction = 1 - ops.power(ops.cast(self.beta_2, dtype), step)
        index = self._get_variable_index(variable)
        m = self._momentums[index]
        v = self._velocities[index]
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
        if self.amsgrad:
            v_hat = self._velocity_hats[index]
            self.assign(v_hat, ops.maximum(v_hat, v))
            v = v_hat
        denominator = ops.sqrt(v) / ops.sqrt(second_correction) + self.epsilon
        self.assign_sub(variable, ops.divide(ops.multiply(m, lr / first_correction), denominator))


def make_adam(
    learning_rate,
    beta_1: float,
    beta_2: float,
    epsilon: float,
    convention: str = "pytorch",
    name=None,
    ema_momentum: float = 0.0,
):
    """Adam with `epsilon` placed by `convention`: "pytorch" (`TorchAdam`) or "keras" (`keras.optimizers.Adam`).

    Args:
        learning_rate: a float or a learning-rate schedule.
        beta_1: decay of the first moment.
        beta_2: decay of the second moment.
        epsilon: the stability constant, on the scale that `convention` names.
        convention: one of `dmfn_tf.config.ADAM_EPSILON_CONVENTIONS`.
        name: the optimizer's name (names its variables in checkpoints).
        ema_momentum: with a value above 0, Keras' `use_ema`: the optimizer keeps a moving average
            of every variable it updates (`ema_weights` reads it).

    Example:

    ```python
    type(make_adam(2e-4, 0.5, 0.999, 1e-8)).__name__
    # -> 'TorchAdam'
    ```
    """
    if convention not in ADAM_EPSILON_CONVENTIONS:
        raise ValueError(f"unknown Adam epsilon convention {convention!r}; expected one of {ADAM_EPSILON_CONVENTIONS}")
    adam = TorchAdam if convention == "pytorch" else keras.optimizers.Adam
    ema = {"use_ema": True, "ema_momentum": ema_momentum} if ema_momentum > 0 else {}
    return adam(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, name=name, **ema)


def ema_weights(optimizer, variables) -> list | None:
    """The moving averages an EMA optimizer keeps of `variables` (in their order), or None without EMA."""
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    if not getattr(optimizer, "use_ema", False):
        return None
    averages = optimizer._model_variables_moving_average  # Keras keeps them in the built variables' order
    index = {optimizer._var_key(variable): i for i, variable in enumerate(optimizer._trainable_variables)}
    return [averages[index[optimizer._var_key(variable)]] for variable in variables]
