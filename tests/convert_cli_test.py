"""`dmfn convert`: the authors' checkpoint fixture through the command line, export of the result, round trips, errors."""

import hashlib
import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import PROJECT_ROOT
from dmfn_tf.cli import main
from dmfn_tf.convert import load_generator_from_reference
from dmfn_tf.convert.official_mapping import discriminator_to_reference_state_dict, generator_to_reference_state_dict
from dmfn_tf.models.discriminator import build_discriminator
from dmfn_tf.models.generator import build_generator

CHECKPOINT = "official_G_nf16_res2.pth"
CHECKPOINT_NPZ = "official_G_nf16_res2_weights.npz"


def _convert(*args):
    return subprocess.run(
        [sys.executable, "-m", "dmfn_tf", "convert", *map(str, args)],
        capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=600,
    )


def _reference_io(fixtures_dir):
    io = np.load(fixtures_dir / "io.npz")
    image, mask = io["image"], io["mask"]
    return image, mask, np.concatenate([image * (1 - mask), mask], axis=-1), io


def test_converted_generator_reproduces_reference_output(fixtures_dir, tmp_path):
    source = fixtures_dir / CHECKPOINT
    result = _convert("--checkpoint", source, "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "nf 16, 2 official blocks, 44 tensors" in result.stdout

    _, _, generator_input, io = _reference_io(fixtures_dir)
    generator = keras.saving.load_model(tmp_path / "generator.keras")
    raw = generator(generator_input).numpy()
    assert np.abs(raw - io["raw_output"]).max() <= 1e-4

    # The weights file fills a generator built to the recorded configuration identically.
    record = json.loads((tmp_path / "conversion.json").read_text())
    assert record["generator"]["config"] == {"nf": 16, "n_blocks": 2, "block": "official"}
    assert record["generator"]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert record["generator"]["tensors"] == 44 and record["generator"]["source"] == str(source.resolve())
    assert "discriminator" not in record
    rebuilt = build_generator(**record["generator"]["config"])
    rebuilt.load_weights(tmp_path / "generator.weights.h5")
    np.testing.assert_array_equal(rebuilt(generator_input).numpy(), raw)

    # Reference -> Keras file -> reference gives back every tensor bit for bit.
    reference = dict(np.load(fixtures_dir / CHECKPOINT_NPZ))
    back = generator_to_reference_state_dict(generator)
    assert list(back) == list(reference)
    for name, value in reference.items():
        np.testing.assert_array_equal(back[name], value, err_msg=name)


def test_npz_twin_converts_and_exports_reproduce_reference(fixtures_dir, tmp_path):
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    result = _convert("--checkpoint", fixtures_dir / CHECKPOINT_NPZ, "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"dmfn export --model {tmp_path}" in result.stdout  # the one export front door
    record = json.loads((tmp_path / "conversion.json").read_text())
    assert record["generator"]["config"] == {"nf": 16, "n_blocks": 2, "block": "official"}
    image, mask, generator_input, io = _reference_io(fixtures_dir)
    exports = tmp_path / "exports"
    assert main(["export", "--model", str(tmp_path), "--format", "saved_model", "--out", str(exports)]) == 0
    assert main(["export", "--model", str(tmp_path), "--format", "tflite", "--size", "64", "--quantization", "float32",
                 "--out", str(exports)]) == 0

    generator = keras.saving.load_model(tmp_path / "generator.keras")
    assert np.abs(generator(generator_input).numpy() - io["raw_output"]).max() <= 1e-4

    served = tf.saved_model.load(str(exports / "dmfn" / "1"))
    composite = served.signatures["inpaint_float"](image=tf.constant(image), mask=tf.constant(mask))["inpainted"].numpy()
    assert np.abs(composite - io["composited_output"]).max() <= 1e-4

    interpreter = Interpreter(model_path=str(exports / "dmfn_64_float32.tflite"))
    composite = interpreter.get_signature_runner()(image=image, mask=mask)["inpainted"]
    assert np.abs(composite - io["composited_output"]).max() <= 1e-4


def test_keras_models_survive_reference_checkpoints_exactly(tmp_path):
    # Keras -> reference-named .npz files -> dmfn convert -> .keras files, for both models.
    rng = np.random.default_rng(0)
    generator = build_generator(nf=4, n_blocks=1, block="paper")
    discriminator = build_discriminator(nf=4, image_size=128)
    for variable in generator.weights + discriminator.weights:  # biases and statistics are zeros or ones at init
        variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype("float32"))
    np.savez(tmp_path / "G.npz", **generator_to_reference_state_dict(generator))
    np.savez(tmp_path / "D.npz", **discriminator_to_reference_state_dict(discriminator))
    out = tmp_path / "out"
    result = _convert("--checkpoint", tmp_path / "G.npz", "--discriminator", tmp_path / "D.npz", "--out", out)
    assert result.returncode == 0, result.stderr
    assert "discriminator: nf 4, image size 128" in result.stdout
    record = json.loads((out / "conversion.json").read_text())
    assert record["generator"]["config"] == {"nf": 4, "n_blocks": 1, "block": "paper"}
    assert record["discriminator"]["config"] == {"nf": 4, "image_size": 128}
    assert record["discriminator"]["tensors"] == 83  # 11 stages x 7 tensors + 3 Linear x 2
    for original, path in ((generator, out / "generator.keras"), (discriminator, out / "discriminator.keras")):
        converted = keras.saving.load_model(path)
        assert len(converted.weights) == len(original.weights)
        for a, b in zip(original.weights, converted.weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_load_generator_from_reference(fixtures_dir):
    generator = load_generator_from_reference(fixtures_dir / CHECKPOINT)
    assert generator.count_params() == 234_819  # the figure in the fixtures' README
    _, _, generator_input, io = _reference_io(fixtures_dir)
    assert np.abs(generator(generator_input).numpy() - io["raw_output"]).max() <= 1e-4


def _run_cli(capsys, *args):
    code = main(["convert", *map(str, args)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_damaged_and_foreign_checkpoints_are_clear_errors(fixtures_dir, tmp_path, capsys):
    out = tmp_path / "out"
    truncated = tmp_path / "latest_G.pth"
    data = (fixtures_dir / CHECKPOINT).read_bytes()
    truncated.write_bytes(data[: len(data) * 2 // 3])
    code, err = _run_cli(capsys, "--checkpoint", truncated, "--out", out)
    assert code == 2 and f"{truncated}: " in err and "truncated" in err

    resnet = tmp_path / "resnet18.npz"
    np.savez(resnet, **{"conv1.weight": np.zeros((64, 3, 7, 7), "float32"), "bn1.weight": np.ones(64, "float32"),
                        "fc.weight": np.zeros((1000, 512), "float32"), "fc.bias": np.zeros(1000, "float32")})
    code, err = _run_cli(capsys, "--checkpoint", resnet, "--out", out)
    assert code == 2
    assert f"{resnet}: not a DMFN generator checkpoint (no 'encoder.0.conv.weight'; first keys: conv1.weight" in err

    code, err = _run_cli(capsys, "--checkpoint", fixtures_dir / CHECKPOINT, "--discriminator", resnet, "--out", out)
    assert code == 2 and f"{resnet}: not a DMFN discriminator checkpoint" in err and "'global_model.0.conv.weight'" in err

    discriminator = tmp_path / "latest_D.npz"
    np.savez(discriminator, **discriminator_to_reference_state_dict(build_discriminator(nf=4, image_size=64)))
    code, err = _run_cli(capsys, "--checkpoint", discriminator, "--out", out)
    assert code == 2 and f"{discriminator}: this is a DMFN discriminator checkpoint, not a generator" in err
    assert not out.exists()  # nothing is written unless every checkpoint converts


def test_mismatched_generator_lists_every_name_and_writes_nothing(fixtures_dir, tmp_path, capsys):
    weights = dict(np.load(fixtures_dir / CHECKPOINT_NPZ))
    del weights["decoder.2.deconv.bias"]
    weights["blocks.1.c2.weight"] = weights["blocks.1.c2.weight"][:32]
    weights["blocks.0.extra.weight"] = np.zeros(2, "float32")
    broken = tmp_path / "broken_G.npz"
    np.savez(broken, **weights)
    out = tmp_path / "out"
    code, err = _run_cli(capsys, "--checkpoint", broken, "--out", out)
    assert code == 2
    assert f"{broken}: the checkpoint does not match the generator" in err
    assert "missing: decoder.2.deconv.bias" in err and "unexpected: blocks.0.extra.weight" in err
    assert "wrong shape: blocks.1.c2.weight: checkpoint (32, 64, 3, 3), model expects (64, 64, 3, 3)" in err
    assert not out.exists()


def test_half_precision_data_parallel_checkpoint(fixtures_dir, tmp_path):
    # A float16 checkpoint saved from a DataParallel wrapper: names prefixed with "module.".
    from dmfn_tf.convert.converter import convert_checkpoint

    weights = dict(np.load(fixtures_dir / CHECKPOINT_NPZ))
    half = tmp_path / "half_G.npz"
    np.savez(half, **{f"module.{name}": value.astype(np.float16) for name, value in weights.items()})
    record = convert_checkpoint(half, out_dir=tmp_path / "out")
    assert record["generator"]["source_dtypes"] == ["float16"]
    assert record["generator"]["config"] == {"nf": 16, "n_blocks": 2, "block": "official"}
    generator = keras.saving.load_model(tmp_path / "out" / "generator.keras")
    back = generator_to_reference_state_dict(generator)
    for name, value in weights.items():  # widened from float16 exactly
        np.testing.assert_array_equal(back[name], value.astype(np.float16).astype(np.float32), err_msg=name)
