"""The photos `dmfn app` keeps (dmfn_tf/app/uploads.py): random ids, least recently used dropped past the budget."""

import numpy as np
import pytest

from dmfn_tf.app.refusal import Refusal
from dmfn_tf.app.uploads import UploadStore


def _photo(kib):
    return np.zeros((kib, 1024), np.uint8)  # `kib` KiB


def test_ids_are_random_and_unguessable():
    store = UploadStore(max_bytes=10 * 1024)
    ids = {store.add("p.png", _photo(1)) for _ in range(5)}
    assert len(ids) == 5 and all(len(upload_id) >= 20 for upload_id in ids)
    assert store.get("not-an-id") is None and store.get(["a"]) is None and store.get({"a": 1}) is None


def test_least_recently_used_photos_are_dropped_by_bytes():
    store = UploadStore(max_bytes=10 * 1024)
    first, second, third = (store.add(name, _photo(4)) for name in ("a", "b", "c"))  # 12 KiB: "a" goes
    assert store.get(first) is None and store.get(second).name == "b" and store.get(third).name == "c"
    assert store.nbytes == 8 * 1024
    store.get(second)  # "b" used: "c" is now the least recently used
    fourth = store.add("d", _photo(4))
    assert store.get(third) is None and store.get(second) is not None and store.get(fourth) is not None
    many = [store.add(f"s{i}", _photo(1)) for i in range(2)]  # small ones fit beside the two large ones
    assert all(store.get(upload_id) is not None for upload_id in many) and store.nbytes == 10 * 1024


def test_many_small_uploads_are_all_kept():
    store = UploadStore(max_bytes=100 * 1024)
    ids = [store.add(f"user{i}", _photo(1)) for i in range(100)]
    assert all(store.get(upload_id) is not None for upload_id in ids) and len(store) == 100


def test_a_photo_over_the_whole_budget_is_refused():
    store = UploadStore(max_bytes=1024)
    with pytest.raises(Refusal, match="big.png: the photo takes 0 MiB decoded") as caught:
        store.add("big.png", _photo(2))
    assert caught.value.status == 413 and len(store) == 0
