import json
import subprocess
import sys

from conftest import PROJECT_ROOT


def test_demo_runs_end_to_end_on_a_tiny_budget(tmp_path):
    out = tmp_path / "demo"
    command = [
        sys.executable, "-m", "dmfn_tf", "demo", "--out", str(out), "--train-crops", "8", "--eval-crops", "1",
        "--set", "model.nf=4", "--set", "model.n_blocks=1", "--set", "model.image_size=64",
        "--set", "train.total_steps=2", "--set", "train.steps_per_epoch=2", "--set", "train.batch_size=2",
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "demo_report.json").read_text())
    methods = report["evaluation"]["methods"]
    assert list(methods) == ["dmfn", "telea", "ns", "biharmonic"]
    assert all(0 < methods[name]["psnr"] < 60 for name in methods)
    assert report["export"]["saved_model_max_abs_diff"] <= 1e-5
    assert report["export"]["tflite_float32_max_abs_diff"] <= 1e-3
    assert report["perceptual_network"].startswith("lpips_vgg16")
    # Four held-out photos, one image each; before/after pictures for each.
    assert len(list((out / "data" / "eval").glob("*.png"))) == 4
    assert len(list((out / "inpainted").glob("*_comparison.png"))) == 4
    assert (out / "run" / "generator.keras").is_file()
    assert "DMFN demo finished" in result.stdout and str(out / "evaluation") in result.stdout
