"""The photos `dmfn app` keeps between an upload and its inpainting: per upload, up to a memory budget.

Each upload gets a random id (`secrets.token_urlsafe`, unguessable, so one page cannot use or
probe another user's photo). Photos are kept while their decoded pixels fit `max_bytes`; past it,
the least recently used photos are dropped first (an inpainting counts as a use), so many users at
once each keep their own photo as long as the budget holds, instead of a fixed count of uploads.

Example:

```python
store = UploadStore(max_bytes=512 * 2**20)
upload_id = store.add("photo.png", pixels)
store.get(upload_id)  # -> Upload(name="photo.png", image=pixels), or None once dropped
```
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from dmfn_tf.app.refusal import Refusal

# Decoded photos kept at once: two of the largest photos an upload may be (8192² RGB, 192 MiB each)
# plus room for the smaller ones of other users.
UPLOAD_MEMORY_BYTES = 512 * 1024 * 1024


class Upload(NamedTuple):
    name: str
    image: np.ndarray


class UploadStore:
    """Uploaded photos by id, least recently used dropped first when their bytes pass `max_bytes`.

    Args:
        max_bytes: the memory budget of the decoded photos.
    """

    def __init__(self, max_bytes: int = UPLOAD_MEMORY_BYTES):
        self.max_bytes = int(max_bytes)
        self._uploads: OrderedDict[str, Upload] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._uploads)

    def add(self, name: str, image: np.ndarray) -> str:
        """Keeps `image` under a new random id and returns the id; refuses (413) a photo over the whole budget."""
        if image.nbytes > self.max_bytes:
            raise Refusal(413, f"{name}: the photo takes {image.nbytes / 2**20:.0f} MiB decoded, more than the "
                               f"{self.max_bytes / 2**20:.0f} MiB the server keeps for photos; downscale it first")
        upload_id = secrets.token_urlsafe(16)
        with self._lock:
            self._uploads[upload_id] = Upload(name, image)
            self._bytes += image.nbytes
            while self._bytes > self.max_bytes:
                _, dropped = self._uploads.popitem(last=False)
                self._bytes -= dropped.image.nbytes
        return upload_id

    def get(self, upload_id) -> Upload | None:
        """The upload of `upload_id` (marked as just used), or None when unknown or dropped."""
        if not isinstance(upload_id, str):
            return None
        with self._lock:
            upload = self._uploads.get(upload_id)
            if upload is not None:
                self._uploads.move_to_end(upload_id)
            return upload
