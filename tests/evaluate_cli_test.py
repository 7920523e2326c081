"""The evaluation core (`evaluate`, report writing) and `dmfn evaluate` end to end."""

import csv
import io
import json
import os

import cv2
import keras
import numpy as np
import pytest
from PIL import Image
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from dmfn_tf import build_generator
from dmfn_tf.cli import main
from dmfn_tf.cli.evaluate import ProgressReport
from dmfn_tf.data.pipeline import crop_and_resize
from dmfn_tf.inpaint.contract import to_uint8
from dmfn_tf.evaluation.baselines import BASELINES
from dmfn_tf.models.lpips_weights import LPIPSWeightsError, load_lpips_checkpoint
from dmfn_tf.evaluation.report import (
    EvaluationInputError,
    baseline_inpaint_fn,
    case_grid,
    generator_inpaint_fn,
    markdown_table,
    score,
    select_cases,
    summarize,
)

SAMPLE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def _photos(size: int = 64) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(getattr(data, name)()).resize((size, size), Image.BICUBIC))
                     for name in SAMPLE_PHOTOS])


def center_mask(size, hole=None):
    """A centred square hole of side `hole` (default half the side), 1 = hole."""
    hole = size // 2 if hole is None else hole
    start = (size - hole) // 2
    mask = np.zeros((size, size, 1), np.float32)
    mask[start:start + hole, start:start + hole] = 1.0
    return mask


def test_scores_are_taken_on_the_composite():
    images = _photos()
    mask = center_mask(64)
    rng = np.random.default_rng(0)
    noise = rng.uniform(-1, 1, images.shape).astype(np.float32)
    # The function returns noise everywhere; only the hole may count.
    scores = score(lambda batch, masks: noise, images, mask, batch_size=4)
    hole = mask[..., 0] > 0.5
    for index, image in enumerate(images):
        composite = image.copy()
        composite[hole] = np.clip(np.round((noise[index][hole] + 1) * 127.5), 0, 255).astype(np.uint8)
        expected_psnr = peak_signal_noise_ratio(image, composite, data_range=255)
        assert scores["psnr"][index] == pytest.approx(expected_psnr, abs=1e-4)
        expected_ssim = structural_similarity(image, composite, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                              use_sample_covariance=False, data_range=255)
        assert scores["ssim"][index] == pytest.approx(expected_ssim, abs=1e-4)
        in_units = image.astype(np.float64) / 127.5 - 1
        expected_l1 = np.abs(np.where(hole[..., None], noise[index], in_units) - in_units).mean()
        assert scores["l1"][index] == pytest.approx(expected_l1, rel=1e-5)
    assert np.isnan(scores["lpips"]).all()


def test_perfect_inpainting_and_per_image_masks():
    images = _photos()
    masks = [center_mask(64), np.zeros((64, 64), np.float32), center_mask(64, 16), center_mask(64)]
    scores = score(lambda batch, _: batch, images, masks, batch_size=3)
    assert np.isinf(scores["psnr"]).all()
    np.testing.assert_allclose(scores["ssim"], 1.0)
    np.testing.assert_allclose(scores["l1"], 0.0)


def test_baseline_wrapper_matches_direct_call():
    images = _photos()[:2]
    mask = center_mask(64)
    composites = baseline_inpaint_fn(BASELINES["ns"])(images.astype(np.float32) / 127.5 - 1, np.stack([mask] * 2))
    direct = BASELINES["ns"](images[1], mask[..., 0] > 0.5)
    np.testing.assert_array_equal(np.round((composites[1] + 1) * 127.5).astype(np.uint8), direct)


def test_generator_wrapper_composites_and_pads():
    generator = build_generator(nf=4, n_blocks=1)
    rng = np.random.default_rng(1)
    images = rng.uniform(-1, 1, (1, 30, 34, 3)).astype(np.float32)
    masks = np.zeros((1, 30, 34, 1), np.float32)
    masks[:, 8:20, 10:24] = 1.0
    composites = generator_inpaint_fn(generator)(images, masks)
    assert composites.shape == images.shape
    np.testing.assert_array_equal(composites[masks[..., 0] == 0], images[masks[..., 0] == 0])

    square = rng.uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
    square_masks = np.zeros((1, 32, 32, 1), np.float32)
    square_masks[:, 8:24, 8:24] = 1.0
    raw = np.asarray(generator(np.concatenate([square * (1 - square_masks), square_masks], -1)))
    np.testing.assert_allclose(generator_inpaint_fn(generator)(square, square_masks),
                               square_masks * raw + (1 - square_masks) * square, atol=1e-6)


def test_evaluate_rejects_mismatches():
    images = _photos()
    with pytest.raises(EvaluationInputError, match="3 masks for 4 images"):
        score(lambda batch, _: batch, images, [center_mask(64)] * 3)
    with pytest.raises(EvaluationInputError, match="returned"):
        score(lambda batch, _: batch[:, :32], images, center_mask(64))
    with pytest.raises(EvaluationInputError, match="uint8"):
        score(lambda batch, _: batch, images.astype(np.float32), center_mask(64))


def test_cases_table_and_grid():
    scores = {"psnr": np.array([20.0, 30.0, 10.0, 25.0, 15.0]), "ssim": np.ones(5), "l1": np.zeros(5),
              "lpips": np.array([0.3, 0.1, 0.5, 0.2, 0.4]), "colour": np.arange(5.0)}
    assert select_cases(scores, 2) == ([2, 4], [1, 3])
    without_lpips = dict(scores, lpips=np.full(5, np.nan))
    assert select_cases(without_lpips, 1) == ([2], [1])
    assert select_cases({**scores, "lpips": scores["lpips"][:1], "psnr": scores["psnr"][:1]}, 4) == ([0], [])

    summary = summarize({"dmfn": scores, "telea": without_lpips})
    assert summary["dmfn"]["lpips"] == pytest.approx(0.3) and summary["telea"]["lpips"] is None
    table = markdown_table(summary, "CelebA-HQ", paper_row="celeba_hq")
    lines = table.splitlines()
    assert lines[0] == "| Method | CelebA-HQ (5 images): LPIPS ↓ / PSNR ↑ / SSIM ↑ |"
    assert lines[2] == "| DMFN (paper, CelebA-HQ, 2,000 images) | 0.0460 / 26.50 / 0.8932 |"
    assert lines[3] == "| dmfn | 0.3000 / 20.00 / 1.0000 |"
    assert lines[4] == "| telea | – / 20.00 / 1.0000 |"
    with pytest.raises(EvaluationInputError, match="unknown paper row"):
        markdown_table(summary, "x", paper_row="imagenet")

    images = np.zeros((2, 8, 10, 3), np.float32)
    masks = np.ones((2, 8, 10, 1), np.float32)
    grid = case_grid(images, masks, -np.ones_like(images), spacing=2)
    assert grid.shape == (2 * 8 + 2, 3 * 10 + 2 * 2, 3)
    assert (grid[:8, :10] == 255).all() and (grid[:8, 12:22] == 0).all() and (grid[:8, 24:34] == 128).all()


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for name in SAMPLE_PHOTOS:
        Image.fromarray(getattr(data, name)()).save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "generator.keras"
    keras.utils.set_random_seed(0)
    build_generator(nf=4, n_blocks=1).save(path)
    return path


def test_the_evaluation_plans_with_the_inpainting_planner_and_scores_the_same(photo_folder, generator_file,
                                                                            monkeypatch):
    """`dmfn evaluate`, `dmfn inpaint` and `dmfn app` call one planner; the scores are the contract's own composites."""
    from dmfn_tf.evaluation.protocol import EvaluationSettings, evaluate
    from dmfn_tf.evaluation.report import score
    from dmfn_tf.inpaint import planner, runner
    from dmfn_tf.inpaint.contract import inpaint_float
    from dmfn_tf.model_io import load_generator

    generator = load_generator(str(generator_file))
    calls = {"check_size": [], "plan": []}
    for name in calls:
        original = getattr(planner, name)
        monkeypatch.setattr(runner, name, lambda *a, _original=original, _name=name, **k: calls[_name].append(a)
                            or _original(*a, **k))
    settings = EvaluationSettings(image_size=64, baselines=(), lpips="none", limit=3, batch_size=2, grid_cases=0)
    result = evaluate(photo_folder, settings, generator=generator)
    assert [args[:2] for args in calls["check_size"]] == [(64, 64)] * 2  # one check per batch of images
    assert len(calls["plan"]) == 3 and all(args[0].strategy == "original" for args in calls["plan"])
    # The scores of the contract's composite as it is (before the planner): the same values, bit for bit.
    photos = _photos(64)[:3]
    direct = score(lambda images, masks: np.asarray(inpaint_float(generator, images, masks)), photos,
                   center_mask(64), batch_size=2)
    planned = score(generator_inpaint_fn(generator), photos, center_mask(64), batch_size=2)
    for metric in ("psnr", "ssim", "l1"):
        np.testing.assert_array_equal(planned[metric], direct[metric])
    assert result.summary["dmfn"]["psnr"] > 0


def test_an_image_size_over_the_pixel_budget_is_one_line():
    from dmfn_tf.inpaint.budget import PixelBudgetError

    generator = build_generator(nf=4, n_blocks=1)
    with pytest.raises(PixelBudgetError, match="^evaluation image: 64x64 = 4,096 pixels exceeds the budget of 4,000 "
                                               r"pixels \(evaluate at a smaller image size"):
        generator_inpaint_fn(generator, max_pixels=4000)(np.zeros((1, 64, 64, 3), np.float32), center_mask(64)[None])


def _read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _run_cli(args):
    return main(["evaluate", *map(str, args)])


def test_cli_end_to_end(photo_folder, generator_file, tmp_path):
    try:
        load_lpips_checkpoint("alex")
        lpips = "alex"
    except LPIPSWeightsError:
        lpips = "none"  # the LPIPS column is then checked empty instead
    out = tmp_path / "report"
    code = _run_cli(["--model", generator_file, "--data", photo_folder, "--image-size", 64, "--limit", 3,
                     "--lpips", lpips, "--baselines", "telea,ns,biharmonic,patchmatch", "--paper-row", "ffhq",
                     "--grid-cases", 1, "--out", out])
    assert code == 0
    for name in ("per_image.csv", "summary.json", "table.md", "cases.png"):
        assert (out / name).is_file(), name

    rows = _read_csv(out / "per_image.csv")
    assert list(rows[0]) == ["file", "method", "psnr", "ssim", "l1", "lpips", "colour"]
    methods = ["dmfn", "telea", "ns", "biharmonic", "patchmatch"]
    expected_files = sorted(f"{name}.png" for name in SAMPLE_PHOTOS)[:3]
    assert [(row["method"], row["file"]) for row in rows] == [(m, f) for m in methods for f in expected_files]

    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset"] == "FFHQ" and summary["settings"]["n_images"] == 3
    for method in methods:
        method_rows = [row for row in rows if row["method"] == method]
        for metric in ("psnr", "ssim", "l1") + (("lpips",) if lpips != "none" else ()):
            mean = np.mean([float(row[metric]) for row in method_rows])
            assert summary["methods"][method][metric] == pytest.approx(mean, rel=1e-12), (method, metric)
        if lpips == "none":
            assert summary["methods"][method]["lpips"] is None
            assert all(row["lpips"] == "" for row in method_rows)
    # The random generator is far worse than the classic baselines.
    assert summary["methods"]["dmfn"]["psnr"] < summary["methods"]["telea"]["psnr"]

    # Each baseline against the model: the mean of the per-image differences, inside its interval.
    for baseline in methods[1:]:
        difference = summary["comparisons"]["dmfn"][baseline]["psnr"]
        per_image = [float(a["psnr"]) - float(b["psnr"]) for a, b in zip(
            [row for row in rows if row["method"] == "dmfn"], [row for row in rows if row["method"] == baseline])]
        assert difference["mean"] == pytest.approx(np.mean(per_image), rel=1e-12)
        assert min(per_image) <= difference["low"] <= difference["mean"] <= difference["high"] <= max(per_image)
        assert difference["n"] == 3 and difference["resamples"] == 2000
    assert summary["settings"]["baseline_routes"]["patchmatch"] == {"routes": {"pyramid": 3}, "fallbacks": 0}

    table = (out / "table.md").read_text()
    assert "\n| dmfn − patchmatch | " in table
    assert "| DMFN (paper, FFHQ, 10,000 images) | 0.0457 / 26.49 / 0.8985 |" in table
    for method in methods:
        assert f"\n| {method} | " in table
    with Image.open(out / "cases.png") as grid:
        assert grid.size == (3 * 64 + 2 * 4, 2 * 64 + 4)
    assert summary["cases"]["method"] == "dmfn" and len(summary["cases"]["worst"]) == 1


def test_cli_list_file_baselines_only(photo_folder, tmp_path):
    listing = tmp_path / "test.txt"
    listing.write_text(f"# two of the photos\n{photo_folder / 'coffee.png'}\n\n{photo_folder / 'rocket.png'}\n")
    out = tmp_path / "report"
    assert _run_cli(["--data", listing, "--image-size", 64, "--lpips", "none", "--baselines", "ns",
                     "--mask", "random_box", "--grid-cases", 0, "--out", out]) == 0
    rows = _read_csv(out / "per_image.csv")
    assert [row["file"] for row in rows] == [str(photo_folder / "coffee.png"), str(photo_folder / "rocket.png")]
    assert not (out / "cases.png").exists()
    assert json.loads((out / "summary.json").read_text())["dataset"] == "test"


def test_cli_mask_folder(photo_folder, tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    hole = np.zeros((32, 32), np.uint8)
    hole[:, :16] = 255  # left half missing
    Image.fromarray(hole).save(masks / "left.png")
    out = tmp_path / "report"
    assert _run_cli(["--data", photo_folder, "--image-size", 64, "--lpips", "none", "--baselines", "ns",
                     "--mask", masks, "--limit", 1, "--grid-cases", 0, "--out", out]) == 0
    # The protocol's squaring: the data pipeline's centred crop and bicubic resize, in 8 bits.
    image = np.asarray(to_uint8(crop_and_resize(data.astronaut(), 64)))
    mask = np.zeros((64, 64), np.uint8)
    mask[:, :32] = 255
    expected = cv2.inpaint(image, mask, 3, cv2.INPAINT_NS)
    psnr = float(_read_csv(out / "per_image.csv")[0]["psnr"])
    assert psnr == pytest.approx(peak_signal_noise_ratio(image, expected, data_range=255), abs=1e-4)


def test_cli_errors_are_one_line(photo_folder, tmp_path, capsys):
    assert _run_cli(["--model", tmp_path / "missing.keras", "--data", photo_folder, "--out", tmp_path]) == 2
    assert "missing.keras: no such model file" in capsys.readouterr().err
    assert _run_cli(["--data", photo_folder, "--baselines", "telea,magic", "--out", tmp_path]) == 2
    assert "magic" in capsys.readouterr().err
    assert _run_cli(["--data", photo_folder, "--baselines", "none", "--out", tmp_path]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err

    inputs = keras.Input((None, None, 3))
    wrong = tmp_path / "wrong.keras"
    keras.Model(inputs, keras.layers.Conv2D(3, 1)(inputs)).save(wrong)
    assert _run_cli(["--model", wrong, "--data", photo_folder, "--out", tmp_path]) == 2
    assert "not a DMFN generator" in capsys.readouterr().err
    assert _run_cli(["--data", photo_folder, "--mask", tmp_path / "nowhere", "--out", tmp_path]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_cli_model_shipped_names_the_shipped_model(photo_folder, shipped_model, tiny_generator_file, tmp_path, capsys):
    common = ["--data", photo_folder, "--image-size", 64, "--limit", 2, "--lpips", "none", "--baselines", "none"]
    assert _run_cli(["--model", "shipped", *common, "--out", tmp_path / "shipped"]) == 0
    assert f"using the shipped model {shipped_model}" in capsys.readouterr().err
    assert _run_cli(["--model", tiny_generator_file, *common, "--out", tmp_path / "named"]) == 0
    shipped, named = (json.loads((tmp_path / name / "summary.json").read_text()) for name in ("shipped", "named"))
    assert shipped["settings"]["model"] == "shipped"
    assert shipped["methods"]["dmfn"]["psnr"] == named["methods"]["dmfn"]["psnr"]


def test_cli_image_size_defaults_to_the_models_trained_size(photo_folder, shipped_model, tmp_path):
    common = ["--data", photo_folder, "--limit", 1, "--lpips", "none"]
    assert _run_cli(["--model", "shipped", *common, "--baselines", "none", "--out", tmp_path / "model"]) == 0
    assert _run_cli([*common, "--baselines", "ns", "--out", tmp_path / "baselines"]) == 0  # no model: the paper's 256
    sizes = [json.loads((tmp_path / name / "summary.json").read_text())["settings"]["image_size"]
             for name in ("model", "baselines")]
    assert sizes == [128, 256]


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_is_one_line_per_batch_in_a_log_and_a_bar_on_a_terminal():
    log = io.StringIO()
    report = ProgressReport(log)
    report(8, 20)
    report(16, 20)
    report(20, 20)
    report.close()
    assert log.getvalue().splitlines() == ["8/20 images scored", "16/20 images scored", "20/20 images scored"]

    terminal = _Terminal()
    report = ProgressReport(terminal)
    report(8, 20)
    report(20, 20)
    report.close()
    text = terminal.getvalue()
    assert "\r" in text and "scoring" in text and "20/20" in text
    assert "images scored" not in text


def test_cli_progress_reaches_a_log_line_by_line(photo_folder, tmp_path, capsys):
    assert _run_cli(["--data", photo_folder, "--image-size", 64, "--lpips", "none", "--baselines", "ns",
                     "--batch-size", 2, "--grid-cases", 0, "--out", tmp_path / "report"]) == 0
    err_lines = capsys.readouterr().err.splitlines()
    assert "2/4 images scored" in err_lines and "4/4 images scored" in err_lines


def test_cli_counts_and_reports_patchmatch_fallbacks(photo_folder, tmp_path, capsys):
    # Lines every 4 pixels touch every block of PatchMatch's coarse pyramid levels.
    masks = tmp_path / "masks"
    masks.mkdir()
    grid = np.zeros((64, 64), np.uint8)
    grid[::4], grid[:, ::4] = 255, 255
    Image.fromarray(grid).save(masks / "grid.png")
    out = tmp_path / "report"
    assert _run_cli(["--data", photo_folder, "--image-size", 64, "--lpips", "none", "--baselines", "patchmatch,ns",
                     "--mask", masks, "--limit", 2, "--grid-cases", 0, "--out", out]) == 0
    assert "fallbacks — patchmatch: 2 of 2 image(s) off its first route (single_scale 2)" in capsys.readouterr().out
    routes = json.loads((out / "summary.json").read_text())["settings"]["baseline_routes"]
    assert routes == {"patchmatch": {"routes": {"single_scale": 2}, "fallbacks": 2}}


def _hostile_copy(folder, out):
    """`folder`'s files in `out`, beside a link to /dev/zero, a FIFO and a file that is no image."""
    import shutil

    shutil.copytree(folder, out)
    (out / "zero.png").symlink_to("/dev/zero")
    os.mkfifo(out / "fifo.png")
    (out / "junk.png").write_bytes(b"not an image")
    return out


def test_cli_counts_the_skipped_photos_and_masks_and_records_them(photo_folder, tmp_path, capsys):
    photos = _hostile_copy(photo_folder, tmp_path / "photos")
    masks = tmp_path / "masks"
    masks.mkdir()
    Image.fromarray(np.full((32, 32), 255, np.uint8)).save(masks / "all.png")
    os.mkfifo(masks / "fifo.png")
    out = tmp_path / "report"
    assert _run_cli(["--data", photos, "--image-size", 64, "--lpips", "none", "--baselines", "ns",
                     "--mask", masks, "--grid-cases", 0, "--out", out]) == 0
    total = len(SAMPLE_PHOTOS) + 3 + 2
    assert f"skipped 4 unusable file(s) of {total} (see the warnings above)" in capsys.readouterr().out.splitlines()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["skipped_files"] == 4 and summary["settings"]["n_images"] == len(SAMPLE_PHOTOS)


def test_cli_with_no_usable_mask_is_one_line(photo_folder, tmp_path, capsys):
    masks = tmp_path / "masks"
    masks.mkdir()
    os.mkfifo(masks / "fifo.png")
    (masks / "zero.png").symlink_to("/dev/zero")
    assert _run_cli(["--data", photo_folder, "--image-size", 64, "--lpips", "none", "--baselines", "ns",
                     "--mask", masks, "--grid-cases", 0, "--out", tmp_path / "report"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[-1] == f"dmfn evaluate: error: no usable mask images in {masks}", lines
