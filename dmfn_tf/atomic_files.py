"""Files replaced atomically: a reader sees the old content or the whole new one, never a part.

Everything the package writes to be read later — run configs, the latest generator, the pointer
to the latest checkpoint, cached weights and file checks — goes through `atomic_path`: the new
content is written to a temporary file beside the destination, flushed to disk, and renamed over
it (`os.replace`, atomic on POSIX); a failure removes the temporary file and leaves the old one.

A process killed while writing cannot remove its temporary file. Temporary files are therefore named
`.<name>.tmp-<pid>-<random><suffix>`, and `remove_stale_temporaries` (called when a run, an
inpainting or a cache folder starts to be used) deletes those whose process no longer exists.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile

_TEMPORARY_NAME = re.compile(r"^\..+\.tmp-(\d+)-[A-Za-z0-9_]{8}")


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
    prefix = f".{os.path.basename(path)}.tmp-{os.getpid()}-"
    handle, temporary = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
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


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def remove_stale_temporaries(directory: str | os.PathLike) -> list[str]:
    """Deletes the temporary files `atomic_path` left in `directory` when their process was killed.

    Files of processes still running (another writer in the same folder) are left alone.

    Args:
        directory: a folder written through `atomic_path` (a missing one is fine).

    Returns:
        The paths removed.
    """
    directory = os.fspath(directory)
    removed = []
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for name in names:
        match = _TEMPORARY_NAME.match(name)
        path = os.path.join(directory, name)
        if match and not _process_exists(int(match.group(1))) and os.path.isfile(path):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
                removed.append(path)
    return removed
