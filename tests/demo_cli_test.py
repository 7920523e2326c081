import json
import subprocess
import sys

from PIL import Image

from conftest import PROJECT_ROOT
from dmfn_tf.cli.demo import fine_tune_verdict


def test_demo_runs_end_to_end_on_a_tiny_budget(tmp_path, tiny_generator_file):
    out = tmp_path / "demo"
    # The tiny generator stands in for the shipped model (the demo fine-tunes whatever init_generator names).
    command = [
        sys.executable, "-m", "dmfn_tf", "demo", "--out", str(out), "--train-crops", "8", "--eval-crops", "1",
        "--set", "model.nf=4", "--set", "model.n_blocks=1", "--set", "model.image_size=64",
        "--set", f"model.init_generator={tiny_generator_file}",
        "--set", "train.total_steps=2", "--set", "train.steps_per_epoch=2", "--set", "train.batch_size=2",
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Generator initialised from {tiny_generator_file}" in result.stdout
    report = json.loads((out / "demo_report.json").read_text())
    assert report["start_model"] == tiny_generator_file
    methods = report["evaluation"]["methods"]
    assert list(methods) == ["initial", "fine-tuned", "telea", "ns", "biharmonic", "patchmatch"]
    assert all(0 < methods[name]["psnr"] < 60 for name in methods)
    assert report["evaluation"]["settings"]["models"] == {"initial": tiny_generator_file, "fine-tuned": str(out / "run")}
    lpips_difference = report["evaluation"]["comparisons"]["fine-tuned"]["patchmatch"]["lpips"]
    assert lpips_difference["low"] <= lpips_difference["mean"] <= lpips_difference["high"]
    assert report["export"]["saved_model_max_abs_diff"] <= 1e-5
    assert report["export"]["tflite_float32_max_abs_diff"] <= 1e-3
    assert report["perceptual_network"].startswith("lpips_vgg16")
    before, after = methods["initial"]["lpips"], methods["fine-tuned"]["lpips"]
    assert f"LPIPS {before:.4f} -> {after:.4f}" in report["fine_tune_verdict"]
    assert ("does NOT improve" in report["fine_tune_verdict"]) == (after >= before)
    assert f"verdict: {report['fine_tune_verdict']}" in result.stdout
    # Four held-out photos, one image each; before/after pictures for each:
    # input | initial | fine-tuned | Telea | PatchMatch | original, for a centred and a free-form hole.
    assert len(list((out / "data" / "eval").glob("*.png"))) == 4
    comparisons = sorted((out / "inpainted").glob("*_comparison.png"))
    assert len(comparisons) == 4
    with Image.open(comparisons[0]) as grid:
        assert grid.size == (6 * 64, 2 * 64)
    assert (out / "run" / "generator.keras").is_file()
    assert "DMFN demo finished" in result.stdout and str(out / "evaluation") in result.stdout
    assert "(masked | initial | fine-tuned | Telea | PatchMatch | original)" in result.stdout


def test_the_verdict_says_whether_the_short_run_improved_the_starting_model():
    improved = {"shipped": {"lpips": 0.25}, "fine-tuned": {"lpips": 0.24}}
    assert "improves on the shipped one here: LPIPS 0.2500 -> 0.2400" in fine_tune_verdict("shipped", "fine-tuned", improved)
    worse = {"shipped": {"lpips": 0.25}, "fine-tuned": {"lpips": 0.26}}
    assert "does NOT improve the shipped model" in fine_tune_verdict("shipped", "fine-tuned", worse)
    assert fine_tune_verdict(None, "trained", worse | {"trained": {"lpips": 0.3}}) is None

