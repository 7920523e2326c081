import os
import stat

import pytest

from dmfn_tf.atomic_files import atomic_path, remove_stale_temporaries, write_text_atomically


def test_replaces_the_whole_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "config.yaml"
    write_text_atomically(path, "old")
    write_text_atomically(path, "new content")
    assert path.read_text() == "new content"
    assert os.listdir(path.parent) == ["config.yaml"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_failure_half_way_keeps_the_old_file(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"old model")
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_path(path, suffix=".keras") as temporary:
            assert temporary.endswith(".keras") and os.path.dirname(temporary) == str(tmp_path)
            with open(temporary, "wb") as f:
                f.write(b"half a new mo")
            raise RuntimeError("killed while writing")
    assert path.read_bytes() == b"old model"
    assert os.listdir(tmp_path) == ["model.keras"]


def test_stale_temporaries_of_dead_processes_are_removed_and_others_kept(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # exited: no such process any more
    stale = tmp_path / f".generator.keras.tmp-{dead_pid}-a1b2c3d4.keras"
    live = tmp_path / f".generator.keras.tmp-{os.getpid()}-a1b2c3d4.keras"  # a writer still running
    unrelated = [tmp_path / ".hidden", tmp_path / "generator.keras", tmp_path / f".x.tmp-{dead_pid}-short"]
    for path in [stale, live, *unrelated]:
        path.write_bytes(b"data")
    assert remove_stale_temporaries(tmp_path) == [str(stale)]
    assert sorted(os.listdir(tmp_path)) == sorted(path.name for path in [live, *unrelated])
    assert remove_stale_temporaries(tmp_path / "missing") == []


def test_a_write_over_the_file_size_limit_keeps_the_old_file(tmp_path):
    import subprocess
    import sys

    from conftest import PROJECT_ROOT

    path = tmp_path / "result.png"
    path.write_bytes(b"old result")
    script = (
        "import resource, signal, sys\n"
        "from dmfn_tf.atomic_files import atomic_path\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))\n"
        "try:\n"
        "    with atomic_path(sys.argv[1]) as temporary, open(temporary, 'wb') as f:\n"
        "        f.write(bytes(5000))\n"
        "except OSError as err:\n"
        "    print(err.strerror)\n"
    )
    completed = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True,
                               env=dict(os.environ, PYTHONPATH=str(PROJECT_ROOT)))
    assert completed.stdout.strip() == "File too large", completed.stderr
    assert path.read_bytes() == b"old result"
    assert os.listdir(tmp_path) == ["result.png"]


def test_a_directory_is_replaced_whole_or_kept_on_failure(tmp_path):
    from dmfn_tf.atomic_files import atomic_directory

    path = tmp_path / "dmfn" / "1"
    with atomic_directory(path) as temporary:
        (tmp_path / temporary / "old.txt").write_text("old")
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_directory(path) as temporary:
            (tmp_path / temporary / "new.txt").write_text("half")
            raise RuntimeError("killed while writing")
    assert os.listdir(path) == ["old.txt"] and os.listdir(path.parent) == ["1"]
    with atomic_directory(path) as temporary:
        (tmp_path / temporary / "new.txt").write_text("new")
    assert os.listdir(path) == ["new.txt"] and os.listdir(path.parent) == ["1"]  # replaced, not merged


def test_stale_temporary_folders_of_dead_processes_are_removed(tmp_path):
    (tmp_path / ".1.tmp-999999999-abcdefgh" / "variables").mkdir(parents=True)
    (tmp_path / "1").mkdir()
    assert remove_stale_temporaries(tmp_path) == [str(tmp_path / ".1.tmp-999999999-abcdefgh")]
    assert os.listdir(tmp_path) == ["1"]
