import os
import stat

import pytest

from dmfn_tf.atomic_files import atomic_path, write_text_atomically


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
