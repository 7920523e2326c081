"""Data folders with hostile entries: devices, FIFOs, sockets, huge headers, files vanishing mid-run (issue 19).

Each case must end (no hang, no unbounded read), skip the file with a warning that names it, and a
source with nothing usable left must stop with one line. The large real images are in
`scripts/bench_hardening.py` (peak memory).
"""

import logging
import os
import socket

import pytest
import tensorflow as tf

from dmfn_tf.cli import describe_failure
from dmfn_tf.config import DataConfig
from dmfn_tf.data import image_files
from dmfn_tf.data.guarded_reader import GuardedReader
from dmfn_tf.data.pipeline import build_dataset, build_eval_dataset

SIZE = 32


@pytest.fixture(autouse=True)
def fresh_check_cache(monkeypatch):
    monkeypatch.setattr(image_files, "_checked", {})


GOOD = ["good_0.png", "good_1.png", "good_2.png"]
HOSTILE = {
    "zero.png": "not a regular file (a character device)",
    "fifo.png": "not a regular file (a FIFO)",
    "socket.png": "not a regular file (a socket)",
    "huge_10000.png": "10000x10000 is 100000000 pixels, above the limit",
    "huge_20000.png": "too many pixels; the limit is",  # Pillow's own refusal, from the header too
}


@pytest.fixture
def hostile_folder(tmp_path, save_image, png_declaring):
    folder = tmp_path / "data"
    folder.mkdir()
    for index, name in enumerate(GOOD):
        save_image(folder / name, (40, 48, 3), fill=60 * index)
    (folder / "zero.png").symlink_to("/dev/zero")
    os.mkfifo(folder / "fifo.png")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(folder / "socket.png"))
    (folder / "huge_10000.png").write_bytes(png_declaring(10000, 10000))
    (folder / "huge_20000.png").write_bytes(png_declaring(20000, 20000))
    yield folder
    server.close()


def _skips(caplog):
    return {os.path.basename(r.getMessage().split(": ")[0].split()[-1]): r.getMessage()
            for r in caplog.records if r.getMessage().startswith("skipping")}


@pytest.mark.parametrize("check_files", [True, False], ids=["checked up front", "checked in the pipeline"])
def test_only_regular_files_within_the_budgets_are_read(hostile_folder, caplog, check_files):
    caplog.set_level(logging.WARNING, logger="dmfn_tf.data")
    cfg = DataConfig(path=str(hostile_folder), check_files=check_files, mask_delta=4)
    paths = [p.decode() for batch in build_eval_dataset(cfg, SIZE, batch_size=2) for p in batch["path"].numpy()]
    assert [os.path.basename(p) for p in paths] == GOOD
    batches = list(build_dataset(cfg, SIZE, batch_size=2, seed=0).take(4))  # past one epoch of the usable files
    assert all(batch["image"].shape == (2, SIZE, SIZE, 3) for batch in batches)
    skips = _skips(caplog)
    assert sorted(skips) == sorted(HOSTILE), skips
    for name, reason in HOSTILE.items():
        assert reason in skips[name], skips[name]


def test_a_file_list_names_a_fifo_as_not_a_regular_file(hostile_folder, caplog):
    caplog.set_level(logging.WARNING, logger="dmfn_tf.data")
    listing = hostile_folder / "list.txt"
    listing.write_text("good_0.png\nfifo.png\n")
    assert [os.path.basename(p) for p in image_files.read_file_list(listing)] == ["good_0.png"]
    assert any("not a regular file, skipped" in r.getMessage() and "fifo.png" in r.getMessage() for r in caplog.records)


def test_a_folder_with_no_usable_file_is_one_line_and_exit_2_with_the_skips_on_stderr(hostile_folder, tmp_path):
    import subprocess
    import sys

    from conftest import PROJECT_ROOT

    for name in GOOD:
        (hostile_folder / name).unlink()
    completed = subprocess.run(
        [sys.executable, "-m", "dmfn_tf", "train", "--config", str(PROJECT_ROOT / "configs" / "tiny.yaml"),
         "--data", str(hostile_folder), "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(PROJECT_ROOT)),
    )
    err = [line for line in completed.stderr.splitlines() if line.strip()]
    assert completed.returncode == 2 and err[-1] == f"dmfn train: error: no usable images in {hostile_folder}", err
    skipped = [line for line in err if line.startswith("skipping")]  # what the user sees, one line per file
    assert sorted(os.path.basename(line.split(": ")[0].split()[-1]) for line in skipped) == sorted(HOSTILE), err
    assert f"{len(HOSTILE)} of {len(HOSTILE)} image file(s) could not be decoded and were skipped" in err


def test_a_file_vanishing_mid_run_is_skipped_with_a_visible_warning(hostile_folder, caplog):
    caplog.set_level(logging.WARNING, logger="dmfn_tf.data")
    cfg = DataConfig(path=str(hostile_folder), mask_delta=4)
    iterator = iter(build_dataset(cfg, SIZE, batch_size=1, seed=0))
    next(iterator)
    (hostile_folder / GOOD[1]).unlink()
    for _ in range(2 * len(GOOD)):
        assert next(iterator)["image"].shape == (1, SIZE, SIZE, 3)
    vanished = [r.getMessage() for r in caplog.records if GOOD[1] in r.getMessage()]
    assert vanished and "cannot be read (No such file or directory)" in vanished[0] and "skipped so far" in vanished[0]


def test_every_file_vanishing_mid_run_stops_with_one_line(hostile_folder):
    cfg = DataConfig(path=str(hostile_folder), mask_delta=4)
    iterator = iter(build_dataset(cfg, SIZE, batch_size=1, seed=0))
    next(iterator)
    for name in GOOD:
        (hostile_folder / name).unlink()
    with pytest.raises(tf.errors.OpError) as raised:
        for _ in range(100):  # before the fix: an endless loop inside the first of these
            next(iterator)
    message = describe_failure(raised.value)
    assert message.startswith(f"{hostile_folder}: the last ") and "no usable image is left" in message, message
    assert "\n" not in message


def test_the_reader_counts_and_gives_up_after_a_full_round_of_failures(tmp_path):
    reader = GuardedReader("src", count=2)
    contents, ok, hopeless = reader._read_eager(str(tmp_path / "missing.png"), None)
    assert not ok and not hopeless and reader.skipped == 1
    contents, ok, hopeless = reader._read_eager("bytes", b"not an image")
    assert ok and hopeless and tf.io.decode_image(contents).shape == (1, 1, 3)  # decodes, to reach the stop
    assert reader.failure.startswith("src: the last 2 reads all failed and the source has 2 file(s)")
    with pytest.raises(tf.errors.OpError, match="DataUnavailable: src: the last 2 reads all failed"):
        reader.stop_if_hopeless({"x": tf.constant(1)}, tf.constant(True))


def test_a_file_list_over_the_byte_budget_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from dmfn_tf import input_limits
    from dmfn_tf.input_limits import InputTooLarge

    listing = tmp_path / "list.txt"
    listing.write_text("a.png\n" * 100)
    monkeypatch.setattr(input_limits.check_file_bytes, "__defaults__", (64,))  # a 64-byte budget
    with pytest.raises(InputTooLarge, match="list.txt: 600 bytes, above the limit of 64 bytes"):
        image_files.read_file_list(listing)
