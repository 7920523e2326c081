"""scripts/validate_run.py: every snapshot of a run validated once, rows appended, curves drawn."""

import dataclasses
import json
import os
import sys

import keras
import pytest
from PIL import Image
from skimage import data

from dmfn_tf.evaluation import validation
from dmfn_tf.evaluation.protocol import EvaluationSettings
from dmfn_tf.model_io import save_model_atomically
from dmfn_tf.models.generator import build_generator
from dmfn_tf.models.lpips_weights import LPIPSWeightsError, load_lpips_checkpoint

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
import plot_curves  # noqa: E402
import validate_run  # noqa: E402

SETTINGS = EvaluationSettings(image_size=64, grid_cases=0, baselines=("ns", "patchmatch"))
SMALL = (validation.ValidationProtocol("s64", "val64", SETTINGS),
         validation.ValidationProtocol("s64_free", "val64", dataclasses.replace(SETTINGS, mask="free_form")))


@pytest.fixture
def small_protocols(monkeypatch, tmp_path):
    try:
        load_lpips_checkpoint("alex")
    except LPIPSWeightsError as err:
        pytest.skip(f"LPIPS AlexNet weights not available offline: {err}")
    for protocol in SMALL:
        monkeypatch.setitem(validation.PROTOCOLS, protocol.name, protocol)
    corpus = tmp_path / "corpus"
    (corpus / "val64").mkdir(parents=True)
    for name in ("astronaut", "coffee"):
        Image.fromarray(getattr(data, name)()).resize((64, 64), Image.BICUBIC).save(corpus / "val64" / f"{name}.png")
    return corpus


def _snapshot(run, step, seed):
    """A snapshot as training writes it: `generator-<step, zero-padded>.keras` and its `.json`."""
    keras.utils.set_random_seed(seed)
    folder = run / "snapshots"
    save_model_atomically(build_generator(nf=4, n_blocks=1), folder / f"generator-{step:08d}.keras")
    (folder / f"generator-{step:08d}.json").write_text(json.dumps({"step": step, "cpu_seconds": step * 1.5,
                                                               "wall_seconds": step * 2.0}))


def test_each_snapshot_is_validated_once_and_curves_are_drawn(small_protocols, tmp_path):
    corpus, run, names = small_protocols, tmp_path / "run", ["s64", "s64_free"]
    _snapshot(run, 200, 1)
    _snapshot(run, 100, 0)
    (run / "snapshots" / "generator-00000300.keras").write_bytes(b"being written")  # no description yet: skipped
    rows = validate_run.validate_new_snapshots(run, corpus, names, log=lambda line: None)
    assert [row["step"] for row in rows] == [100, 200]
    assert validate_run.validate_new_snapshots(run, corpus, names, log=lambda line: None) == []
    (run / "snapshots" / "generator-00000300.keras").unlink()
    _snapshot(run, 300, 2)
    Image.fromarray(data.rocket()).resize((64, 64)).save(corpus / "val64" / "rocket.png")  # the set changes
    lines = []
    assert [row["step"] for row in validate_run.validate_new_snapshots(run, corpus, names, log=lines.append)] == [300]
    assert "warning: the validation set of s64, s64_free changed" in lines[0]

    curve = validation.read_curve(run / "validation.csv")
    assert list(curve[0]) == validation.curve_columns(names)
    assert [(row["step"], row["cpu_seconds"], row["wall_seconds"]) for row in curve] == [
        ("100", "150.0", "200.0"), ("200", "300.0", "400.0"), ("300", "450.0", "600.0")]
    for row in curve:
        low, mean, high = (float(row[f"s64_free_lpips_vs_best{end}"]) for end in ("_low", "", "_high"))
        assert low <= mean <= high and row["s64_free_best_classic"] in ("ns", "patchmatch")

    pytest.importorskip("matplotlib")
    assert validate_run.main(["--run", str(run), "--corpus", str(corpus), "--protocols", *names]) == 0
    assert (run / "validation.png").stat().st_size > 1000
    table = plot_curves.table({"run": run}, corpus, "s64_free").splitlines()
    assert table[2].startswith("| run | 300 | 0.12 | 1.50 | ")


def test_bad_snapshots_and_folders_are_one_line_errors(small_protocols, tmp_path, capsys):
    run = tmp_path / "run"
    assert validate_run.main(["--run", str(run), "--corpus", str(small_protocols), "--plot", "none"]) == 2
    assert "no snapshots folder" in capsys.readouterr().err
    (run / "snapshots").mkdir(parents=True)
    (run / "snapshots" / "generator-5.keras").write_bytes(b"")
    (run / "snapshots" / "generator-5.json").write_text('{"step": 6, "cpu_seconds": 1, "wall_seconds": 1}')
    assert validate_run.main(["--run", str(run), "--corpus", str(small_protocols), "--plot", "none"]) == 2
    err = capsys.readouterr().err
    assert "generator-5.json: step 6 differs" in err and len(err.strip().splitlines()) == 1
    (run / "snapshots" / "generator-5.json").write_text("{")
    assert validate_run.main(["--run", str(run), "--corpus", str(small_protocols), "--protocols", "p999"]) == 2
    assert "unknown validation protocols" in capsys.readouterr().err


def test_step_filters_pick_multiples_and_the_last_snapshot_within_a_cpu_budget(tmp_path):
    run = tmp_path / "run"
    for step in (100, 200, 300, 400, 500):  # cpu_seconds = 1.5 * step
        folder = run / "snapshots"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"generator-{step:08d}.keras").write_bytes(b"x")
        (folder / f"generator-{step:08d}.json").write_text(json.dumps({"step": step, "cpu_seconds": step * 1.5,
                                                                   "wall_seconds": step * 2.0}))
    assert validate_run._step_filter(run, 0, 0) is None
    every = validate_run._step_filter(run, 200, 0)
    assert [step for step in (100, 200, 300, 400, 500) if every(step)] == [200, 400, 500]
    budget = validate_run._step_filter(run, 0, 600.0)  # 400 steps cost 600 CPU s
    assert [step for step in (100, 200, 300, 400, 500) if budget(step)] == [400]
    nothing = validate_run._step_filter(run, 0, 100.0)
    assert not any(nothing(step) for step in (100, 200, 300, 400, 500))
