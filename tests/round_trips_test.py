"""The shared round trips fail when a round trip loses something (so a test that uses them can fail)."""

import keras
import numpy as np
import pytest

from round_trips import assert_config_round_trip, assert_keras_round_trip


class _Scale(keras.layers.Layer):
    """`x * factor`; with `forget=True` its config leaves `factor` out, as a careless `get_config` would."""

    def __init__(self, factor=1.0, forget=False, **kwargs):
        super().__init__(**kwargs)
        self.factor, self.forget = factor, forget

    def call(self, x):
        return x * self.factor

    def get_config(self):
        config = {**super().get_config(), "forget": self.forget}
        return config if self.forget else {**config, "factor": self.factor}


X = np.arange(6, dtype=np.float32).reshape(1, 2, 3, 1)


def test_a_config_round_trip_passes_when_nothing_is_lost():
    assert assert_config_round_trip(_Scale(3.0), X).factor == 3.0


def test_a_config_round_trip_catches_a_forgotten_argument():
    with pytest.raises(AssertionError, match="_Scale from_config"):
        assert_config_round_trip(_Scale(3.0, forget=True), X)


def test_a_keras_round_trip_catches_a_model_that_loads_different(tmp_path):
    inputs = keras.Input((2, 3, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 1, name="conv")(inputs), name="tiny")
    assert_keras_round_trip(model, X, tmp_path / "same.keras")

    def load_and_change(path):
        loaded = keras.saving.load_model(path)
        loaded.get_layer("conv").bias.assign([0.5])
        return loaded

    with pytest.raises(AssertionError, match="tiny .keras round trip"):
        assert_keras_round_trip(model, X, tmp_path / "changed.keras", load=load_and_change)
