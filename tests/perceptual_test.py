import keras
import numpy as np
import pytest

from dmfn_tf.errors import UserError
from dmfn_tf.models.perceptual import (
    CAFFE_BGR_MEAN,
    PREPROCESSING_MODES,
    TORCH_RGB_MEAN,
    TORCH_RGB_STD,
    RandomPerceptualWeightsWarning,
    VGGInputConversion,
    build_perceptual_network,
)
from round_trips import assert_config_round_trip


@pytest.fixture(scope="module")
def random_vgg():
    with pytest.warns(RandomPerceptualWeightsWarning, match="RANDOM weights"):
        return build_perceptual_network(weights="none")


def test_taps_and_shapes(random_vgg):
    features = random_vgg(np.zeros((1, 64, 48, 3), "float32"))
    assert [tuple(f.shape) for f in features] == [
        (1, 64, 48, 64), (1, 32, 24, 128), (1, 16, 12, 256), (1, 8, 6, 512), (1, 4, 3, 512)
    ]
    assert all(np.all(f.numpy() >= 0) for f in features)  # post-ReLU taps


def test_parameter_count_and_frozen(random_vgg):
    assert random_vgg.count_params() == 12_944_960  # VGG19 up to relu5_1 (fixtures README)
    assert random_vgg.trainable_weights == []


def test_random_weights_warning_is_loud(caplog):
    with pytest.warns(RandomPerceptualWeightsWarning):
        with caplog.at_level("WARNING", logger="dmfn_tf"):
            build_perceptual_network(weights="none")
    assert "NOT perceptual" in caplog.text


def test_input_conversions_match_numpy():
    x = np.random.default_rng(0).uniform(-1, 1, (2, 4, 4, 3)).astype("float32")
    caffe = VGGInputConversion("caffe")(x).numpy()
    expected_caffe = (x[..., ::-1] + 1) * 127.5 - np.array(CAFFE_BGR_MEAN)
    np.testing.assert_allclose(caffe, expected_caffe, atol=1e-4)
    torch = VGGInputConversion("torch")(x).numpy()
    expected_torch = ((x + 1) / 2 - np.array(TORCH_RGB_MEAN)) / np.array(TORCH_RGB_STD)
    np.testing.assert_allclose(torch, expected_torch, atol=1e-5)
    # The authors' bug (SPEC §4): mean m - 1 and std 2 s applied to [-1, 1] inputs.
    authors = VGGInputConversion("torch_authors_bug")(x).numpy()
    expected_authors = (x - (np.array(TORCH_RGB_MEAN) - 1)) / (2 * np.array(TORCH_RGB_STD))
    np.testing.assert_allclose(authors, expected_authors, atol=1e-5)
    # That is the correct conversion of an image brightened by m / 2: about +1 in normalised units.
    np.testing.assert_allclose(authors - torch, np.broadcast_to(np.array(TORCH_RGB_MEAN) / 2 / np.array(TORCH_RGB_STD), x.shape), atol=1e-5)
    with pytest.raises(ValueError, match="unknown VGG preprocessing 'bgr'"):
        VGGInputConversion("bgr")
    for mode in PREPROCESSING_MODES:
        assert assert_config_round_trip(VGGInputConversion(mode), x).mode == mode


def test_local_weights_file_is_loaded(tmp_path, random_vgg):
    backbone = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    path = tmp_path / "vgg19_notop.weights.h5"
    backbone.save_weights(path)
    vgg = build_perceptual_network(weights=str(path), preprocessing="torch")
    kernel = vgg.get_layer("block3_conv1").kernel.numpy()
    np.testing.assert_array_equal(kernel, backbone.get_layer("block3_conv1").kernel.numpy())
    assert vgg.get_layer("input_conversion").mode == "torch"


def test_missing_or_bad_weights_file(tmp_path):
    with pytest.raises(UserError, match="perceptual weights file not found: .*nope.h5"):
        build_perceptual_network(weights=str(tmp_path / "nope.h5"))
    bad = tmp_path / "bad.weights.h5"
    bad.write_bytes(b"not an h5 file")
    with pytest.raises(UserError, match="cannot load VGG19 weights from .*bad.weights.h5"):
        build_perceptual_network(weights=str(bad))


def test_lpips_vgg16_offline_network_uses_the_lpips_checkpoint():
    from dmfn_tf.models.lpips_weights import LPIPSWeightsError, load_lpips_checkpoint

    try:
        checkpoint = load_lpips_checkpoint("vgg")
    except LPIPSWeightsError as err:  # no cache and no registry: nothing to compare against
        pytest.skip(f"LPIPS VGG16 weights unavailable: {err}")
    vgg = build_perceptual_network(weights="imagenet", network="lpips_vgg16")
    features = vgg(np.zeros((1, 32, 32, 3), "float32"))
    assert [f.shape[-1] for f in features] == [64, 128, 256, 512, 512]
    assert [f.shape[1] for f in features] == [32, 16, 8, 4, 2]  # relu1_1..relu5_1 scales
    assert vgg.trainable_weights == []
    first_kernel = np.asarray(checkpoint["VGG16_0"]["Conv_0"]["kernel"], np.float32)
    np.testing.assert_array_equal(vgg.get_layer("block1_conv1").kernel.numpy(), first_kernel)


def test_unknown_network():
    with pytest.raises(UserError, match="unknown perceptual network 'resnet'"):
        build_perceptual_network(network="resnet")
