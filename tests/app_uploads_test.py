"""The photos `dmfn app` keeps (dmfn_tf/app/uploads.py): the files sent, random ids, least recently used dropped past the budget."""

import os

import pytest

from dmfn_tf.app.refusal import Refusal
from dmfn_tf.app.uploads import UploadStore


@pytest.fixture
def spool(tmp_path):
    """`spool(kib) -> path`: a spooled upload of `kib` KiB, as the server writes it."""
    count = iter(range(10**6))

    def make(kib):
        path = tmp_path / f"upload{next(count)}"
        path.write_bytes(b"\0" * (kib * 1024))
        return str(path)

    return make


def test_ids_are_random_and_unguessable(spool):
    store = UploadStore(max_bytes=10 * 1024)
    ids = {store.add("p.png", spool(1), 3, 4) for _ in range(5)}
    assert len(ids) == 5 and all(len(upload_id) >= 20 for upload_id in ids)
    assert store.get("not-an-id") is None and store.get(["a"]) is None and store.get({"a": 1}) is None
    store.close()


def test_the_file_is_moved_into_a_private_folder(spool):
    store = UploadStore(max_bytes=10 * 1024)
    source = spool(2)
    upload = store.get(store.add("cat.jpg", source, 30, 40))
    assert not os.path.exists(source) and os.path.getsize(upload.path) == 2048
    assert (upload.name, upload.height, upload.width) == ("cat.jpg", 30, 40)
    assert os.path.dirname(upload.path) == store.directory and os.stat(store.directory).st_mode & 0o077 == 0
    store.close()
    assert not os.path.exists(store.directory)


def test_least_recently_used_files_are_dropped_by_bytes(spool):
    store = UploadStore(max_bytes=10 * 1024)
    first, second, third = (store.add(name, spool(4), 1, 1) for name in ("a", "b", "c"))  # 12 KiB: "a" goes
    dropped = [name for name in os.listdir(store.directory)]
    assert store.get(first) is None and store.get(second).name == "b" and store.get(third).name == "c"
    assert store.nbytes == 8 * 1024 and len(dropped) == 2  # the dropped file is deleted
    store.get(second)  # "b" used: "c" is now the least recently used
    fourth = store.add("d", spool(4), 1, 1)
    assert store.get(third) is None and store.get(second) is not None and store.get(fourth) is not None
    many = [store.add(f"s{i}", spool(1), 1, 1) for i in range(2)]  # small ones fit beside the two large ones
    assert all(store.get(upload_id) is not None for upload_id in many) and store.nbytes == 10 * 1024
    assert sorted(os.listdir(store.directory)) == sorted([second, fourth] + many)


def test_many_small_uploads_are_all_kept(spool):
    store = UploadStore(max_bytes=100 * 1024)
    ids = [store.add(f"user{i}", spool(1), 1, 1) for i in range(100)]
    assert all(store.get(upload_id) is not None for upload_id in ids) and len(store) == 100


def test_a_file_over_the_whole_budget_is_refused(spool):
    store = UploadStore(max_bytes=1024)
    with pytest.raises(Refusal, match="big.png: the file is 0 MiB, more than the 0 MiB the server keeps") as caught:
        store.add("big.png", spool(2), 1, 1)
    assert caught.value.status == 413 and len(store) == 0 and os.listdir(store.directory) == []
