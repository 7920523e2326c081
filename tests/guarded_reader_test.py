"""Data folders with hostile entries: devices, FIFOs, sockets, huge headers, files vanishing mid-run (issue 19).

Each case must end (no hang, no unbounded read), skip the file with a warning that names it, and a
source with nothing usable left must stop with one line. The large real images are in
`scripts/bench_hardening.py` (peak memory).
"""

import logging
import os
import socket

import numpy as np
import pytest
import tensorflow as tf

import image_headers
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
    "urandom.png": "not a regular file (a character device)",
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
    (folder / "urandom.png").symlink_to("/dev/urandom")
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


def test_the_reader_counts_and_gives_up_once_every_file_failed(tmp_path):
    reader = GuardedReader("src", count=2)
    contents, ok, hopeless = reader._read_eager(str(tmp_path / "missing.png"), None)
    assert not ok and not hopeless and reader.skipped == 1
    contents, ok, hopeless = reader._read_eager(str(tmp_path / "missing.png"), None)  # the same file again
    assert not ok and not hopeless and reader.skipped == 2
    contents, ok, hopeless = reader._read_eager("bytes", b"not an image")
    assert ok and hopeless and tf.io.decode_image(contents).shape == (1, 1, 4)  # decodes, to reach the stop
    assert reader.failure.startswith("src: the last 3 reads failed, on all 2 file(s) of the source: no usable image")
    with pytest.raises(tf.errors.OpError, match="DataUnavailable: src: the last 3 reads failed"):
        reader.stop_if_hopeless({"x": tf.constant(1)}, tf.constant(True))


def test_one_bad_file_read_twice_in_a_row_is_not_every_file_failing(tmp_path, save_image):
    good = tmp_path / "good.png"
    save_image(good, np.zeros((4, 4, 3), np.uint8))
    reader = GuardedReader("src", count=2)
    for name in (str(good), "bad", "bad", str(good), "bad"):  # an epoch [good, bad], then [bad, good]
        contents, ok, hopeless = reader._read_eager(name, None if name != "bad" else b"junk")
        assert not hopeless and ok == (name != "bad")


def test_a_file_list_over_the_byte_budget_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from dmfn_tf import input_limits
    from dmfn_tf.input_limits import InputTooLarge

    listing = tmp_path / "list.txt"
    listing.write_text("a.png\n" * 100)
    monkeypatch.setattr(input_limits.check_file_bytes, "__defaults__", (64,))  # a 64-byte budget
    with pytest.raises(InputTooLarge, match="list.txt: 600 bytes, above the limit of 64 bytes"):
        image_files.read_file_list(listing)


@pytest.fixture
def mask_files(tmp_path, save_image):
    """(a folder of the three good photos, a folder of three good masks)."""
    photos, masks = tmp_path / "photos", tmp_path / "masks"
    photos.mkdir()
    masks.mkdir()
    for index in range(3):
        save_image(photos / f"photo_{index}.png", np.full((40, 48, 3), 60 * index, np.uint8))
        hole = np.zeros((40, 48), np.uint8)
        hole[10 * index:10 * index + 10] = 255
        save_image(masks / f"mask_{index}.png", hole)
    return photos, masks


def test_hostile_mask_files_are_skipped_when_the_run_starts(mask_files, caplog, png_declaring):
    caplog.set_level(logging.WARNING, logger="dmfn_tf.data")
    photos, masks = mask_files
    (masks / "zero.png").symlink_to("/dev/zero")
    os.mkfifo(masks / "fifo.png")
    (masks / "huge.png").write_bytes(png_declaring(20000, 20000))
    cfg = DataConfig(path=str(photos), mask="file", mask_path=str(masks))
    batch = next(iter(build_eval_dataset(cfg, SIZE, batch_size=3, mask="file")))
    assert batch["mask"].shape == (3, SIZE, SIZE, 1)
    warned = " ".join(r.getMessage() for r in caplog.records)
    for name, reason in (("zero.png", "a character device"), ("fifo.png", "a FIFO"), ("huge.png", "too many pixels")):
        assert f"skipping unreadable mask file {masks / name}: " in warned and reason in warned


def test_mask_files_turning_hostile_mid_run_are_skipped_with_a_visible_warning(mask_files, caplog):
    caplog.set_level(logging.WARNING, logger="dmfn_tf.data")
    photos, masks = mask_files
    cfg = DataConfig(path=str(photos), mask="file", mask_path=str(masks))
    iterator = iter(build_dataset(cfg, SIZE, batch_size=1, seed=0))
    next(iterator)
    (masks / "zero").symlink_to("/dev/zero")
    os.replace(masks / "zero", masks / "mask_1.png")  # at once: before the fix, read without end
    os.mkfifo(masks / "fifo")
    os.replace(masks / "fifo", masks / "mask_2.png")  # before the fix: a hang
    for _ in range(30):
        assert next(iterator)["mask"].shape == (1, SIZE, SIZE, 1)
    warned = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipping unusable mask")]
    assert any(f"{masks / 'mask_1.png'}: not a regular file (a character device)" in line for line in warned), warned
    assert any(f"{masks / 'mask_2.png'}: not a regular file (a FIFO)" in line for line in warned), warned


def test_every_mask_file_vanishing_mid_run_stops_with_one_line(mask_files):
    photos, masks = mask_files
    cfg = DataConfig(path=str(photos), mask="file", mask_path=str(masks))
    iterator = iter(build_dataset(cfg, SIZE, batch_size=1, seed=0))
    next(iterator)
    for path in masks.iterdir():
        path.unlink()
    with pytest.raises(tf.errors.OpError) as raised:
        for _ in range(100):
            next(iterator)
    message = describe_failure(raised.value)
    assert message.startswith(f"{masks}: the last ") and "no usable mask is left" in message, message
    assert "\n" not in message


def test_the_skip_tally_counts_each_file_once_across_places(hostile_folder):
    from dmfn_tf.data.skip_tally import counting_skips, skipped_files

    cfg = DataConfig(path=str(hostile_folder), check_files=False, mask_delta=4)
    assert skipped_files() is None
    with counting_skips() as skips:
        list(build_dataset(cfg, SIZE, batch_size=1, seed=0).take(3 * len(GOOD)))  # every file read twice or more
        list(build_eval_dataset(cfg, SIZE, batch_size=2))
        assert skipped_files() == len(HOSTILE)
    assert (skips.skipped, skips.total) == (len(HOSTILE), len(HOSTILE) + len(GOOD))
    assert skips.summary() == f"skipped {len(HOSTILE)} unusable file(s) of {len(HOSTILE) + len(GOOD)} (see the warnings above)"
    assert skipped_files() is None


def test_a_source_size_is_noted_where_it_is_listed_and_skips_only_add_names():
    from dmfn_tf.data import skip_tally

    with skip_tally.counting_skips() as skips:
        skip_tally.note("photos/", 5, ["photos/a.png"])
        skip_tally.note_skipped("photos/", ["photos/a.png", "photos/b.png"])  # a check, then a reader
        skip_tally.note_skipped("photos/", [])
    assert (skips.skipped, skips.total) == (2, 5)


def test_a_file_name_that_is_not_utf8_is_skipped_with_a_warning(hostile_folder, caplog):
    caplog.set_level(logging.WARNING, logger="dmfn_tf.data")
    from dmfn_tf.data.skip_tally import counting_skips

    for name in HOSTILE:
        os.remove(hostile_folder / name)
    misnamed = os.fsencode(hostile_folder) + b"/photo_\xff.png"  # Latin-1 bytes: before, a ValueError from TensorFlow
    with open(misnamed, "wb") as f:
        f.write((hostile_folder / GOOD[0]).read_bytes())
    cfg = DataConfig(path=str(hostile_folder), mask_delta=4)
    with counting_skips() as skips:
        paths = [p.decode() for batch in build_eval_dataset(cfg, SIZE, batch_size=2) for p in batch["path"].numpy()]
    assert [os.path.basename(p) for p in paths] == GOOD
    assert any("photo_\\udcff.png': its name is not valid UTF-8; rename it" in r.getMessage() for r in caplog.records)
    assert (skips.skipped, skips.total) == (1, len(GOOD) + 1)


@pytest.mark.parametrize("check_files", [True, False], ids=["checked up front", "checked in the pipeline"])
def test_huge_headers_of_every_data_format_are_skipped(hostile_folder, caplog, check_files):
    caplog.set_level(logging.WARNING, logger="dmfn_tf.data")
    for name in HOSTILE:
        os.remove(hostile_folder / name)
    formats = [f for f in image_headers.FORMATS if image_headers.EXTENSIONS[f] in image_files.IMAGE_EXTENSIONS]
    for image_format in formats:
        (hostile_folder / f"huge{image_headers.EXTENSIONS[image_format]}").write_bytes(
            image_headers.declaring(image_format, 16000, 16000))
    cfg = DataConfig(path=str(hostile_folder), check_files=check_files, mask_delta=4)
    paths = [p.decode() for batch in build_eval_dataset(cfg, SIZE, batch_size=2) for p in batch["path"].numpy()]
    assert [os.path.basename(p) for p in paths] == GOOD
    skips = _skips(caplog)
    assert sorted(skips) == sorted(f"huge{image_headers.EXTENSIONS[f]}" for f in formats), skips
    assert all("too many pixels" in reason for reason in skips.values()), skips
