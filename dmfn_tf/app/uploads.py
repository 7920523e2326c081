"""The photos `dmfn app` keeps between an upload and its inpaintings: the uploaded files, up to a byte budget.

A photo is kept as the file the user sent (its encoded bytes, moved into a private folder of the
server's temporary directory), not as decoded pixels: an 8192² JPEG is a few MiB on disk where its
pixels take 192 MiB, and it is decoded again only while it is inpainted, one inpainting at a time
(`dmfn_tf.app.server`). So parallel uploads cost the server's memory nothing while they wait.

Each upload gets a random id (`secrets.token_urlsafe`, unguessable, so one page cannot use or
probe another user's photo). Files are kept while their bytes fit `max_bytes`; past it, the least
recently used ones are deleted first (an inpainting counts as a use), so many users at once each
keep their own photo as long as the budget holds, instead of a fixed count of uploads. The folder
is removed when the store is closed or garbage-collected, or when the server exits.

Example:

```python
store = UploadStore(max_bytes=512 * 2**20)
upload_id = store.add("photo.jpg", spooled_path, height=3000, width=4000)  # the file is moved into the store
store.get(upload_id)  # -> Upload(name="photo.jpg", path=..., height=3000, width=4000), or None once dropped
```
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import threading
import weakref
from collections import OrderedDict
from typing import NamedTuple

from dmfn_tf.app.refusal import Refusal

# Bytes of uploaded files kept at once (on disk, in the temporary directory): two of the largest
# bodies an upload may be (`MAX_INPUT_BYTES`), or hundreds of ordinary photos.
UPLOAD_KEPT_BYTES = 512 * 1024 * 1024


class Upload(NamedTuple):
    """A kept photo: its name for messages, its file (the bytes sent), and its size once upright (EXIF)."""

    name: str
    path: str
    height: int
    width: int


class UploadStore:
    """Uploaded photo files by id, least recently used deleted first when their bytes pass `max_bytes`.

    Args:
        max_bytes: the budget of the kept files' bytes.
    """

    def __init__(self, max_bytes: int = UPLOAD_KEPT_BYTES):
        self.max_bytes = int(max_bytes)
        self.directory = tempfile.mkdtemp(prefix="dmfn_app_uploads_")  # mode 0700: this user's only
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.directory, True)
        self._uploads: OrderedDict[str, tuple[Upload, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._uploads)

    def add(self, name: str, source: str, height: int, width: int) -> str:
        """Moves the file `source` into the store under a new random id and returns the id.

        Refuses (413) a file over the whole budget; drops the least recently used others past it.
        """
        size = os.path.getsize(source)
        if size > self.max_bytes:
            raise Refusal(413, f"{name}: the file is {size / 2**20:.0f} MiB, more than the "
                               f"{self.max_bytes / 2**20:.0f} MiB the server keeps for photos; save it smaller first")
        upload_id = secrets.token_urlsafe(16)  # letters, digits, '-' and '_': a plain file name
        path = os.path.join(self.directory, upload_id)
        shutil.move(source, path)
        dropped = []
        with self._lock:
            self._uploads[upload_id] = (Upload(name, path, int(height), int(width)), size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (old, old_size) = self._uploads.popitem(last=False)
                self._bytes -= old_size
                dropped.append(old.path)
        for old_path in dropped:
            _remove(old_path)
        return upload_id

    def get(self, upload_id) -> Upload | None:
        """The upload of `upload_id` (marked as just used), or None when unknown or dropped."""
        if not isinstance(upload_id, str):
            return None
        with self._lock:
            kept = self._uploads.get(upload_id)
            if kept is None:
                return None
            self._uploads.move_to_end(upload_id)
            return kept[0]

    def close(self) -> None:
        """Deletes every kept file and the folder."""
        with self._lock:
            self._uploads.clear()
            self._bytes = 0
        self._finalizer()


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
