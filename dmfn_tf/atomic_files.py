"""Files replaced atomically: a reader sees the old content or the whole new one, never a part.

Everything the package writes to be read later — run configs, the latest generator, the pointer
to the latest checkpoint, cached weights and file checks — goes through `atomic_path`: the new
content is written to a temporary file beside the destination, flushed to disk, and renamed over
it (`os.replace`, atomic on POSIX); a failure removes the temporary file and leaves the old one.

Folders written whole (a SavedModel export) go through `atomic_directory`: filled under a temporary
name, then renamed into place, the old folder removed whole (never merged with the new one).

A process killed while writing cannot remove its temporary file. Temporary files and folders are
therefore named `.<name>.tmp-<pid>-<random><suffix>`, and `remove_stale_temporaries` (called when a
run, an inpainting, an export or a cache folder starts to be used) deletes those whose process no
longer exists.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
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


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike):
    """Yields a temporary folder to fill; on success it replaces `path` whole, on failure it is removed.

    The temporary folder is `.<name>.tmp-<pid>-<random>` beside `path`. On success an existing `path`
    (a folder or a file) is renamed aside, the new folder renamed into place, and the old one deleted:
    the result never mixes old and new files. On failure `path` is left as it was.

    Example:

    ```python
    with atomic_directory("saved_models/dmfn/1") as temporary:
        tf.saved_model.save(module, temporary)
    ```
    """
    path = os.fspath(path)
    parent, name = os.path.split(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    temporary = tempfile.mkdtemp(prefix=f".{name}.tmp-{os.getpid()}-", dir=parent)
    try:
        yield temporary
        os.chmod(temporary, 0o755)  # mkdtemp creates 0700
        fsync_path(temporary)
        _replace_with_directory(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    fsync_path(parent)


def _replace_with_directory(new: str, path: str) -> None:
    if not os.path.lexists(path):
        os.rename(new, path)
        return
    parent, name = os.path.split(os.path.abspath(path))
    aside = tempfile.mkdtemp(prefix=f".{name}.tmp-{os.getpid()}-", suffix=".old", dir=parent)
    os.rmdir(aside)  # only its unique name is needed
    os.rename(path, aside)
    try:
        os.rename(new, path)
    except BaseException:
        os.rename(aside, path)
        raise
    if os.path.isdir(aside) and not os.path.islink(aside):
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.remove(aside)


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
    """Deletes the temporary files and folders `atomic_path` and `atomic_directory` left in `directory`
    when their process was killed.

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
        if not match or _process_exists(int(match.group(1))):
            continue
        if os.path.isdir(path) and not os.path.islink(path):  # an `atomic_directory` of a killed process
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        elif os.path.isfile(path):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
                removed.append(path)
    return removed
