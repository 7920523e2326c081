"""Reading data files inside `tf.data`, skipping the unusable ones where the user sees it.

Files are checked when a run starts (`image_files.check_files`), but they may change during a run,
and with `data.check_files: false` they are not checked at all. So every read in the pipeline goes
through `GuardedReader`, a `tf.py_function` that only reads and checks (about 0.6 ms a file;
decoding stays in the graph, in parallel):

- the file is read with `image_files.read_data_file` (a regular file within `MAX_INPUT_BYTES`: a
  symbolic link to `/dev/zero` or a FIFO is never opened) and its header checked with
  `image_files.check_image_bytes` (at most `MAX_IMAGE_PIXELS`, one frame) before it is decoded;
- an unusable file yields `ok = False` and the pipeline drops that example (the other examples keep
  their positions, so resuming stays exact); the first skip of each file is a warning on the
  `dmfn_tf.data` logger (stderr) with the running count of skipped reads;
- when every file of the source has failed since the last good read, no usable file is left: the
  read is marked `hopeless` and `stop_if_hopeless`, placed after decoding (and after the training
  pipeline's `ignore_errors`, which would swallow it earlier), raises `DataUnavailable`: one line
  naming the source instead of a pipeline spinning forever. (Distinct files are counted, not reads
  in a row: one bad file read twice across an epoch boundary, or picked twice at random, is not
  every file failing.)
- the same reader guards the mask files of `data.mask: file` (`what="mask"`);
- every skip is noted in `dmfn_tf.data.skip_tally`, for the line a run ends with and its log.

Files that pass these checks but still fail to decode (changed during a run, or unchecked) are
dropped by the training pipeline's `ignore_errors`, with TensorFlow's own warning.

Example:

```python
reader = GuardedReader("photos/", count=len(paths))
contents, ok, hopeless = reader.read(path_tensor, tf.constant(b""), from_file=True)   # inside a tf.data map
```
"""

from __future__ import annotations

import logging
import struct
import threading
import zlib

import tensorflow as tf

from dmfn_tf.data import skip_tally
from dmfn_tf.data.image_files import UnusableFile, check_image_bytes, read_data_file
from dmfn_tf.errors import UserError

logger = logging.getLogger("dmfn_tf.data")


class DataUnavailable(UserError):
    """Every file of a data source failed to read, one after another: nothing is left to train on."""


class GuardedReader:
    """Reads and checks one data source's files inside `tf.data` (see the module docstring).

    Args:
        source: how messages name the source (its folder, list or TFDS name).
        count: files (records) in the source: when every one failed since the last good read, nothing is usable.
        what: what the files are, in messages ("image", "mask").

    Attributes:
        skipped: failed reads so far in this process.
        failure: the message of `DataUnavailable`, once no usable file is left (else None).
    """

    def __init__(self, source: str, count: int, what: str = "image"):
        self.source, self.count, self.what = source, max(1, int(count)), what
        self.skipped = 0
        self.failure: str | None = None
        self._failed_since_success: set[str] = set()
        self._reads_since_success = 0
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        self._tallies = skip_tally.open_tallies()  # the runs this reader counts in
        skip_tally.note(source, self.count, tallies=self._tallies)  # the size of a source listed nowhere else (TFDS)

    def read(self, name, contents, from_file: bool):
        """Graph side: `(contents, ok, hopeless)` scalar tensors of one record.

        `ok` is False for a skipped file (drop the example); `hopeless` is True once no usable file is
        left. In both cases `contents` is a valid 1x1 PNG, which decodes in the same map as every
        other file, so that a hopeless example reaches `stop_if_hopeless` even past `ignore_errors`.

        Args:
            name: scalar string tensor, the file's path (or a TFDS record's label).
            contents: scalar string tensor, the encoded bytes (ignored when `from_file`).
            from_file: read the bytes from the path `name`.
        """
        def eager(name_tensor, contents_tensor):
            return self._read_eager(name_tensor.numpy().decode("utf-8", "replace"),
                                    None if from_file else contents_tensor.numpy())

        contents, ok, hopeless = tf.py_function(eager, [name, contents], Tout=[tf.string, tf.bool, tf.bool])
        for tensor in (contents, ok, hopeless):
            tensor.set_shape([])
        return contents, ok, hopeless

    def stop_if_hopeless(self, element: dict, hopeless) -> dict:
        """Graph side: `element` unchanged, or `DataUnavailable` raised when `hopeless` (after decoding)."""
        def fail():
            raise DataUnavailable(self.failure or f"{self.source}: no usable {self.what} is left")

        check = tf.cond(hopeless, lambda: tf.py_function(fail, [], Tout=tf.bool), lambda: tf.constant(True))
        with tf.control_dependencies([check]):
            return {key: tf.identity(value) for key, value in element.items()}

    def _read_eager(self, name: str, contents: bytes | None):
        try:
            if contents is None:
                contents = read_data_file(name)
            check_image_bytes(contents, name)
        except UnusableFile as err:
            return self._failed(name, err.reason)
        with self._lock:
            self._failed_since_success.clear()
            self._reads_since_success = 0
        return contents, True, False

    def _failed(self, name: str, reason: str):
        with self._lock:
            self.skipped += 1
            self._reads_since_success += 1
            self._failed_since_success.add(name)
            hopeless = len(self._failed_since_success) >= self.count
            first = name not in self._warned
            self._warned.add(name)
            skipped, reads = self.skipped, self._reads_since_success
        skip_tally.note_skipped(self.source, [name], tallies=self._tallies)
        if hopeless:
            self.failure = (f"{self.source}: the last {reads} reads failed, on all {self.count} file(s) of the source: "
                            f"no usable {self.what} is left (last: {name}: {reason})")
            return _PLACEHOLDER_PNG, True, True
        if first:
            logger.warning("skipping unusable %s %s: %s (%d read(s) skipped so far)", self.what, name, reason, skipped)
        return _PLACEHOLDER_PNG, False, False


def _transparent_pixel_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)  # 1 x 1 RGBA
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 5)) + chunk(b"IEND", b"")


# What a skipped or hopeless read hands on: it must decode (see `GuardedReader.read`), as a photo
# (RGB: black) and as a mask of any setting (RGBA: a mask read from the alpha channel has one too).
_PLACEHOLDER_PNG = _transparent_pixel_png()
