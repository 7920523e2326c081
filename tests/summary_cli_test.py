import json
import subprocess
import sys

from conftest import PROJECT_ROOT


def test_summary_prints_reference_figures(tmp_path):
    config = tmp_path / "official.yaml"
    config.write_text("model:\n  block: official\n")
    result = subprocess.run(
        [sys.executable, "-m", "dmfn_tf", "summary", "--config", str(config), "--json"],
        capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["generator_parameters"] == 9_037_443
    assert figures["dmfb_parameters"] == 885_312
    assert figures["discriminator_parameters_trainable"] == 36_673_025
    # Hand count at 256²: encoder 0.62 G + 8 blocks x 5.5 G (official) + decoder 1.9 G ... about 46 G MACs.
    enc = 256**2 * 25 * 4 * 64 + 128**2 * 9 * (64 * 128 + 128 * 128) + 64**2 * 9 * 128 * 256
    block = 64**2 * (9 * 256 * 64 + 4 * 9 * 64 * 64 + 9 * 256 * 256)
    dec = 64**2 * 9 * 256 * 256 + 64**2 * 16 * 256 * 128 + 128**2 * 9 * 128 * 128 + 128**2 * 16 * 128 * 64 + 256**2 * 9 * (64 * 64 + 64 * 3)
    assert figures["generator_macs"] == enc + 8 * block + dec


def test_summary_bad_config_is_one_line_error(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("model:\n  blocks: 3\n")
    result = subprocess.run(
        [sys.executable, "-m", "dmfn_tf", "summary", "--config", str(config)],
        capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120,
    )
    assert result.returncode == 2
    assert "unknown key(s) model.blocks" in result.stderr and "bad.yaml" in result.stderr
    assert "Traceback" not in result.stderr
