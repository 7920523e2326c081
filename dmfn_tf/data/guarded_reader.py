"""Reading and decoding data files inside `tf.data`, skipping the unusable ones where the user sees it.

Files are checked when a run starts (`image_files.check_files`), but they may change during a run,
and with `data.check_files: false` they are not checked at all. So every read in the pipeline goes
through `GuardedReader`, which runs as a `tf.py_function` (eager TensorFlow, the decoders release
the GIL):

- the file is read with `image_files.read_data_file` (a regular file within `MAX_INPUT_BYTES`: a
  symbolic link to `/dev/zero` or a FIFO is never opened) and its header checked with
  `image_files.check_image_bytes` (at most `MAX_IMAGE_PIXELS`, one frame) before it is decoded;
- an unusable file yields `ok = False` and the pipeline drops that example (the other examples keep
  their positions, so resuming stays exact); the first skip of each file is a warning on the
  `dmfn_tf.data` logger (stderr) with the running count of skipped reads;
- when as many reads in a row as the source has files all failed, no usable file is left: the read
  raises `DataUnavailable` (a one-line error naming the source) instead of the pipeline spinning.

Example:

```python
reader = GuardedReader("photos/", count=len(paths))
image, ok = reader.read(path_tensor, tf.constant(b""), from_file=True)   # inside a tf.data map
```
"""

from __future__ import annotations

import logging
import threading

import tensorflow as tf

from dmfn_tf.data.image_files import UnusableFile, check_image_bytes, error_summary, read_data_file
from dmfn_tf.errors import UserError

logger = logging.getLogger("dmfn_tf.data")


class DataUnavailable(UserError):
    """Every file of a data source failed to read, one after another: nothing is left to train on."""


class GuardedReader:
    """Reads, checks and decodes one data source's files (see the module docstring).

    Args:
        source: how messages name the source (its folder, list or TFDS name).
        count: files (records) in the source: this many failed reads in a row stop the pipeline.
        decode: `decode(contents) -> uint8 [H, W, 3]` tensor, the pipeline's decoder.

    Attributes:
        skipped: failed reads so far in this process.
    """

    def __init__(self, source: str, count: int, decode):
        self.source, self.count, self.decode = source, max(1, int(count)), decode
        self.skipped = 0
        self._failures_in_a_row = 0
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def read(self, name, contents, from_file: bool):
        """Graph side: `(image uint8 [H, W, 3], ok bool)`; `image` is 1x1 black when `ok` is False.

        Args:
            name: scalar string tensor, the file's path (or a TFDS record's label).
            contents: scalar string tensor, the encoded bytes (ignored when `from_file`).
            from_file: read the bytes from the path `name`.
        """
        def eager(name_tensor, contents_tensor):
            return self._read_eager(name_tensor.numpy().decode("utf-8", "replace"),
                                    None if from_file else contents_tensor.numpy())

        image, ok = tf.py_function(eager, [name, contents], Tout=[tf.uint8, tf.bool])
        image.set_shape([None, None, 3])
        ok.set_shape([])
        return image, ok

    def _read_eager(self, name: str, contents: bytes | None):
        try:
            if contents is None:
                contents = read_data_file(name)
            check_image_bytes(contents, name)
            image = self.decode(tf.constant(contents))
        except UnusableFile as err:
            return self._failed(name, err.reason)
        except (tf.errors.OpError, ValueError) as err:  # what TensorFlow's decoders raise on bad bytes
            return self._failed(name, error_summary(err))
        with self._lock:
            self._failures_in_a_row = 0
        return image, tf.constant(True)

    def _failed(self, name: str, reason: str):
        with self._lock:
            self.skipped += 1
            self._failures_in_a_row += 1
            hopeless = self._failures_in_a_row >= self.count
            first = name not in self._warned
            self._warned.add(name)
            skipped = self.skipped
        if hopeless:
            message = (f"{self.source}: the last {self._failures_in_a_row} reads all failed and the source has "
                       f"{self.count} file(s): no usable image is left (last: {name}: {reason})")
            raise DataUnavailable(message)
        if first:
            logger.warning("skipping unusable image %s: %s (%d read(s) skipped so far)", name, reason, skipped)
        return tf.zeros([1, 1, 3], tf.uint8), tf.constant(False)
