"""Tests for the `.keras` export and its round trip through `load_generator`."""

import numpy as np
import pytest

from dmfn_tf.models.generator import build_generator
from dmfn_tf.serving.keras_export import export_keras
from dmfn_tf.model_io import load_generator
from round_trips import assert_keras_round_trip


def test_round_trip_keeps_architecture_and_outputs(tmp_path):
    generator = build_generator(nf=4, n_blocks=2, block="official")
    x = np.random.default_rng(0).uniform(-1, 1, (1, 32, 48, 4)).astype(np.float32)
    loaded = assert_keras_round_trip(generator, x, tmp_path / "nested" / "dmfn.keras", load=load_generator,
                                     save=export_keras)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in generator.layers]
    assert loaded.get_layer("block_1").variant == "official"


def test_path_must_end_in_keras(tmp_path):
    with pytest.raises(ValueError, match="must end in .keras"):
        export_keras(build_generator(nf=4, n_blocks=0), str(tmp_path / "dmfn.h5"))
