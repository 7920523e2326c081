"""PSNR / SSIM / L1 against scikit-image on real photos with distortions, and hand-computed values."""

import io

import numpy as np
import pytest
from PIL import Image, ImageFilter
from scipy import ndimage
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from dmfn_tf.evaluation.metrics import MetricInputError, gaussian_window, image_metrics, l1, psnr, ssim


def _photos():
    """Three scikit-image sample photos cropped to a common 96 x 128 size."""
    return [photo()[:96, :128] for photo in (data.astronaut, data.coffee, data.chelsea)]


def _distortions(photo: np.ndarray) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    image = Image.fromarray(photo)
    jpeg = io.BytesIO()
    image.save(jpeg, format="JPEG", quality=20)
    hole = photo.copy()
    hole[24:72, 32:96] = 127
    return {
        "noise": np.clip(photo + rng.normal(0, 15, photo.shape), 0, 255).astype(np.uint8),
        "blur": np.asarray(image.filter(ImageFilter.GaussianBlur(2))),
        "jpeg": np.asarray(Image.open(jpeg)),
        "hole": hole,
        "brighter": np.clip(photo.astype(int) + 20, 0, 255).astype(np.uint8),
    }


CASES = [(index, name) for index in range(3) for name in ("noise", "blur", "jpeg", "hole", "brighter")]


@pytest.mark.parametrize("index, distortion", CASES)
def test_psnr_and_ssim_match_scikit_image(index, distortion):
    target = _photos()[index]
    output = _distortions(target)[distortion]
    expected_psnr = peak_signal_noise_ratio(target, output, data_range=255)
    expected_ssim = structural_similarity(target, output, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                          use_sample_covariance=False, data_range=255)
    assert psnr(output[None], target[None])[0] == pytest.approx(expected_psnr, abs=1e-4)
    assert ssim(output[None], target[None])[0] == pytest.approx(expected_ssim, abs=1e-4)


def test_batches_give_one_value_per_image():
    targets = np.stack(_photos())
    outputs = np.stack([_distortions(photo)["noise"] for photo in _photos()])
    batch_ssim = ssim(outputs, targets)
    assert batch_ssim.shape == (3,)
    for index in range(3):
        assert batch_ssim[index] == pytest.approx(ssim(outputs[index:index + 1], targets[index:index + 1])[0])


def test_hand_computed_values():
    target = np.full((1, 16, 16, 3), 100, np.uint8)
    output = target + np.uint8(5)
    assert psnr(output, target)[0] == pytest.approx(10 * np.log10(255**2 / 25))
    assert psnr(target, target)[0] == np.inf
    assert ssim(target, target)[0] == pytest.approx(1.0)
    # Flat images: SSIM reduces to the luminance term (2 * 100 * 105 + C1) / (100^2 + 105^2 + C1).
    c1 = (0.01 * 255) ** 2
    assert ssim(output, target)[0] == pytest.approx((2 * 100 * 105 + c1) / (100**2 + 105**2 + c1))
    assert l1(np.full((2, 4, 4, 3), 0.25), np.zeros((2, 4, 4, 3))) == pytest.approx([0.25, 0.25])


def test_gaussian_window_is_scipys_truncated_kernel():
    impulse = np.zeros(21)
    impulse[10] = 1.0
    kernel = ndimage.gaussian_filter1d(impulse, sigma=1.5, truncate=3.5, mode="constant")
    window = gaussian_window()
    assert window.shape == (11,)
    np.testing.assert_allclose(window, kernel[5:16], atol=1e-12)


def test_image_metrics_quantise_for_psnr_ssim_but_not_l1():
    target = _photos()[0][None]
    output = _distortions(target[0])["blur"][None]
    targets_float = target.astype(np.float32) / 127.5 - 1.0
    # A sub-quantum offset changes L1 but not the 8-bit images.
    outputs_float = output.astype(np.float32) / 127.5 - 1.0 + 0.001
    scores = image_metrics(outputs_float, targets_float)
    assert scores["psnr"][0] == pytest.approx(peak_signal_noise_ratio(target[0], output[0], data_range=255), abs=1e-4)
    assert scores["l1"][0] == pytest.approx(np.abs(outputs_float - targets_float).mean(), rel=1e-6)


def test_rejects_wrong_inputs():
    with pytest.raises(MetricInputError, match="uint8"):
        psnr(np.zeros((1, 16, 16, 3)), np.zeros((1, 16, 16, 3)))
    with pytest.raises(MetricInputError, match="same shape"):
        ssim(np.zeros((1, 16, 16, 3), np.uint8), np.zeros((1, 16, 12, 3), np.uint8))
    with pytest.raises(MetricInputError, match="at least 11"):
        ssim(np.zeros((1, 8, 8, 3), np.uint8), np.zeros((1, 8, 8, 3), np.uint8))


def test_hole_colour_error_is_the_mean_shift_inside_the_hole_in_8_bit_levels():
    from dmfn_tf.evaluation.metrics import hole_colour_error

    rng = np.random.default_rng(3)
    targets = rng.uniform(-1, 1, (3, 16, 20, 3))
    holes = np.zeros((3, 16, 20, 1))
    holes[0, 4:12, 5:15] = 1
    holes[1, :, :7] = 1  # image 2 has no hole
    outputs = targets.copy()
    outputs[0] += np.where(holes[0] > 0, [0.2, -0.1, 0.0], 0.0)  # shifted inside the hole only
    outputs[1] += rng.normal(0, 0.3, (16, 20, 3)) * holes[1]
    expected = []
    for i in range(3):
        inside = holes[i, ..., 0] > 0
        shift = [(outputs[i][inside][:, c] - targets[i][inside][:, c]).mean() if inside.any() else 0.0 for c in range(3)]
        expected.append(np.mean(np.abs(shift)) * 127.5)
    np.testing.assert_allclose(hole_colour_error(outputs, targets, holes), expected, rtol=1e-12, atol=1e-12)
    assert hole_colour_error(outputs, targets, holes)[0] == pytest.approx(0.1 * 127.5)
