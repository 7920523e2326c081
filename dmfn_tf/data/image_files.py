"""Finding image files and weeding out the ones that cannot be decoded.

Sources are a folder (searched recursively for `IMAGE_EXTENSIONS`, case-insensitive; symbolic links
to files are followed, links to folders are not) or a file list (plain text, one path per line;
relative paths are taken from the list's folder; blank lines and lines starting with `#` are
ignored; a listed file that does not exist is skipped with a warning).

`check_files` decodes every file once, with the very decoder the pipeline uses, so that a bad file
(zero bytes, truncated, a text file named `.png`, ...) is skipped up front with a warning naming it,
and never stops training in the middle of an epoch. Before anything is decoded, `read_data_file`
admits only regular files (a FIFO, a device or a socket is never opened) within `MAX_INPUT_BYTES`,
and `check_image_bytes` only headers within `MAX_IMAGE_PIXELS` (`dmfn_tf.input_limits`); the
pipeline repeats both at every read (`dmfn_tf.data.guarded_reader`). Cost: one full decode per file, run on a
thread pool (TensorFlow's decoders release the GIL): about 300 JPEGs of 0.1–0.5 MP a second per
CPU core (measured: 600/s on 2 cores), so about 10 minutes for Places2's 1.8 million images on 10
cores. Results are remembered for the life of the process and, with `cache_path`, in a JSON file
keyed by path, size and modification time, so later runs only decode new or changed files.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import threading
from typing import Callable, Iterable

from dmfn_tf.atomic_files import write_text_atomically
from dmfn_tf.data import skip_tally
from dmfn_tf.errors import UserError
from dmfn_tf.input_limits import (
    InputTooLarge, NotRegularFile, UnreadableImage, check_file_bytes, image_header, read_file_bytes,
)

logger = logging.getLogger("dmfn_tf.data")

# What `tf.io.decode_image` reads: the training and evaluation inputs.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
# What Pillow reads besides: `dmfn inpaint`'s inputs.
PILLOW_IMAGE_EXTENSIONS = IMAGE_EXTENSIONS + (".tif", ".tiff")

# (kind, absolute path, size, mtime_ns) -> None if the file decodes, else the reason it does not.
_checked: dict[tuple, str | None] = {}
_checked_lock = threading.Lock()


def find_image_files(folder: str | os.PathLike) -> list[str]:
    """All image files under `folder`, recursively, in sorted order.

    Args:
        folder: a directory.

    Returns:
        Paths (joined onto `folder`) whose extension is one of `IMAGE_EXTENSIONS`. A path that is
        not valid UTF-8 (TensorFlow's strings are) is skipped with a warning naming it.

    Raises:
        UserError: `folder` is not a directory.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise UserError(f"image folder not found: {folder}")
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found.extend(os.path.join(root, name) for name in sorted(files) if name.lower().endswith(IMAGE_EXTENSIONS))
    kept = [path for path in found if _is_utf8(path)]
    misnamed = [path for path in found if not _is_utf8(path)] if len(kept) < len(found) else []
    for path in misnamed:
        logger.warning("skipping %s: its name is not valid UTF-8; rename it to use it", ascii(path))
    skip_tally.note(folder, len(found), misnamed)
    return kept


def _is_utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes, kept by Python as lone surrogates
        return False
    return True


def read_file_list(list_path: str | os.PathLike) -> list[str]:
    """The files named by a list file, one path per line.

    Args:
        list_path: a text file. Relative paths in it are resolved against its folder; blank lines
            and lines whose first non-blank character is `#` are ignored; `~` is expanded.

    Returns:
        The existing listed files, in list order. Missing ones are skipped with a warning each and
        a count.

    Raises:
        UserError: the list itself is missing or not text.
    """
    list_path = os.fspath(list_path)
    if not os.path.isfile(list_path):
        raise UserError(f"file list not found: {list_path}")
    base = os.path.dirname(os.path.abspath(list_path))
    check_file_bytes(list_path)  # read whole below: within the byte budget
    try:
        with open(list_path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError:
        raise UserError(f"file list is not UTF-8 text: {list_path}") from None
    paths, skipped = [], []
    for number, line in enumerate(lines, start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        path = os.path.join(base, os.path.expanduser(entry))
        if os.path.isfile(path):
            paths.append(path)
            continue
        skipped.append(path)
        problem = "not a regular file" if os.path.exists(path) else "listed file not found"
        logger.warning("%s:%d: %s, skipped: %s", list_path, number, problem, path)
    if skipped:
        logger.warning("%s: %d listed file(s) not found (or not regular files) and skipped", list_path, len(skipped))
    skip_tally.note(list_path, len(paths) + len(skipped), skipped)
    return paths


def list_source_files(path: str | os.PathLike) -> list[str]:
    """Files of a source given as a folder (searched recursively) or a file list.

    Args:
        path: a directory or a list file.

    Raises:
        UserError: `path` does not exist.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        return find_image_files(path)
    if os.path.isfile(path):
        return read_file_list(path)
    raise UserError(f"no such folder or file list: {path}")


def check_files(
    paths: Iterable[str],
    decode: Callable[[bytes], None],
    kind: str,
    cache_path: str | os.PathLike | None = None,
    num_threads: int | None = None,
    source: str | None = None,
) -> list[str]:
    """Keeps the files that `decode` accepts; warns about each other one, then gives a count.

    Args:
        paths: files to check.
        decode: called with a file's bytes; raises any exception when they are unusable.
        kind: what the files are ("image", "mask ..."); a cache key and a word in the warnings.
            Different decoders must use different kinds.
        cache_path: optional JSON file remembering the verdicts across runs (read if present,
            rewritten when something new was checked).
        num_threads: decoder threads; defaults to twice the CPU count, at most 32.
        source: the folder or list the paths come from: the skipped ones are noted under it
            (`dmfn_tf.data.skip_tally`).

    Returns:
        The usable paths, in the given order.
    """
    paths = list(paths)
    keys = [_file_key(kind, path) for path in paths]
    if cache_path:
        _read_cache(os.fspath(cache_path))
    with _checked_lock:
        todo = [(path, key) for path, key in zip(paths, keys) if key not in _checked]
    if todo:
        threads = num_threads or min(32, 2 * (os.cpu_count() or 1))
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            verdicts = list(pool.map(lambda path: _problem(path, decode), [path for path, _ in todo]))
        with _checked_lock:
            _checked.update((key, verdict) for (_, key), verdict in zip(todo, verdicts))
        if cache_path:
            _write_cache(os.fspath(cache_path))
    good, bad = [], []
    for path, key in zip(paths, keys):
        problem = _checked[key]
        if problem is None:
            good.append(path)
        else:
            bad.append(path)
            logger.warning("skipping unreadable %s file %s: %s", kind, path, problem)
    if bad:
        logger.warning("%d of %d %s file(s) could not be decoded and were skipped", len(bad), len(paths), kind)
    if source is not None:
        skip_tally.note_skipped(source, bad)
    return good


def _file_key(kind: str, path: str) -> tuple:
    absolute = os.path.abspath(path)
    try:
        stat = os.stat(absolute)
    except OSError:
        return (kind, absolute, -1, -1)
    return (kind, absolute, stat.st_size, stat.st_mtime_ns)


class UnusableFile(Exception):
    """A data file that is skipped; `reason` says why in a few words (the path is not part of it)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def read_data_file(path: str) -> bytes:
    """The bytes of a data file, once it is known to be a regular file within the byte budget.

    The path is examined before it is opened (`dmfn_tf.input_limits.read_file_bytes`): a symbolic
    link to `/dev/zero`, a FIFO or a socket is never opened, and at most `MAX_INPUT_BYTES` are read.

    Raises:
        UnusableFile: not a regular file, too large, empty, or unreadable.
    """
    try:
        contents = read_file_bytes(path)
    except (InputTooLarge, NotRegularFile) as err:
        raise UnusableFile(_without_name(err, path)) from None
    except OSError as err:
        raise UnusableFile(f"cannot be read ({err.strerror or err})") from None
    if not contents:
        raise UnusableFile("empty file (0 bytes)")
    return contents


def check_image_bytes(contents: bytes, name: str = "<bytes>") -> None:
    """Refuses encoded image bytes whose header declares more than `MAX_IMAGE_PIXELS` pixels, several
    frames, or no image Pillow recognises: called before every decode of a data file.

    Raises:
        UnusableFile: the header's problem, as `dmfn_tf.input_limits.image_header` words it.
    """
    try:
        image_header(contents, name=name)
    except (InputTooLarge, UnreadableImage) as err:
        raise UnusableFile(_without_name(err, name)) from None


def _without_name(err: Exception, name: str) -> str:
    message = str(err)
    return message[len(name) + 2:] if message.startswith(f"{name}: ") else message


def _problem(path: str, decode: Callable[[bytes], None]) -> str | None:
    """None if the file passes `read_data_file` and `decode` accepts its bytes, else a one-line reason."""
    try:
        decode(read_data_file(path))
    except UnusableFile as err:
        return err.reason
    except Exception as err:  # Any decoder failure means the same thing here: skip the file.
        return error_summary(err)
    return None


def error_summary(err: Exception) -> str:
    """An exception's message as one line, without TensorFlow's op and function decorations."""
    message = getattr(err, "message", None) or str(err) or type(err).__name__
    message = message.splitlines()[0]
    if message.startswith("{{function_node"):
        message = message.split("}}", 1)[-1]
    return message.split(" [Op:", 1)[0].strip()


def _read_cache(cache_path: str) -> None:
    if not os.path.isfile(cache_path):
        return
    try:
        with open(cache_path, encoding="utf-8") as f:
            entries = json.load(f)["entries"]
        loaded = {tuple(entry[:4]): entry[4] for entry in entries}
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        logger.warning("ignoring unreadable file-check cache %s; files will be checked again", cache_path)
        return
    with _checked_lock:
        for key, verdict in loaded.items():
            _checked.setdefault(key, verdict)


def _write_cache(cache_path: str) -> None:
    with _checked_lock:
        entries = [[*key, verdict] for key, verdict in _checked.items() if key[2] >= 0]
    write_text_atomically(cache_path, json.dumps({"version": 1, "entries": entries}))
