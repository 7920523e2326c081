"""Files replaced atomically: a reader sees the old content or the whole new one, never a part.

Everything the package writes to be read later — run configs, the latest generator, the pointer
to the latest checkpoint, cached weights and file checks — goes through `atomic_path`: the new
content is written to a temporary file beside the destination, flushed to disk, and renamed over
it (`os.replace`, atomic on POSIX); a failure removes the temporary file and leaves the old one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile


def fsync_path(path: str) -> None:
    """Flushes a file's or a directory's entry to disk (directories: POSIX only)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if os.path.isdir(path) else os.O_RDONLY
    try:
        descriptor = os.open(path, flags)
    except OSError:
        return  # e.g. directories cannot be opened on Windows; the rename is still atomic there
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".part"):
    """Yields a temporary path to write; on success it replaces `path`, on failure it is removed.

    Args:
        path: the destination file (its folder is created if needed).
        suffix: the temporary file's ending (e.g. ".keras", which Keras insists on).

    Example:

    ```python
    with atomic_path("runs/x/config.yaml") as temporary:
        Path(temporary).write_text(text)
    ```
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=suffix, dir=directory)
    os.close(handle)
    try:
        yield temporary
        os.chmod(temporary, 0o644)  # mkstemp creates 0600; these are ordinary shared files
        fsync_path(temporary)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    fsync_path(directory)


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """Writes `text` (UTF-8) to `path` through `atomic_path`."""
    with atomic_path(path) as temporary:
        with open(temporary, "w", encoding="utf-8") as f:
            f.write(text)
