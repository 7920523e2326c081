"""Checks on output files before any work: the folder can be written, and no output is an input.

An output is compared with the inputs as files (device and inode, `os.stat`), not as path strings,
so a hard link, a symlink or another spelling of an input is recognised. The folder is probed by
creating and deleting a temporary file in it, which catches read-only file systems and missing
permissions (for root too, unlike `os.access`). The outputs themselves are written with
`dmfn_tf.atomic_files.atomic_path`.

Example:

```python
prepare_output_folder("results")
check_outputs_are_not_inputs(["results/a.png"], ["photos/a.jpg", "masks/a.png"])
```
"""

from __future__ import annotations

import os
import tempfile

from dmfn_tf.atomic_files import remove_stale_temporaries
from dmfn_tf.errors import UserError


class OutputError(UserError):
    """An output folder or file cannot be written, or would overwrite an input."""


def prepare_output_folder(folder: str | os.PathLike) -> None:
    """Creates `folder` if needed, removes stale temporary files of killed writes, and checks it is writable.

    Args:
        folder: the output folder.

    Raises:
        OutputError: `folder` is a file, or a file cannot be created in it.
    """
    folder = os.fspath(folder)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise OutputError(f"{folder}: exists and is not a folder; choose another output folder")
    try:
        os.makedirs(folder, exist_ok=True)
        remove_stale_temporaries(folder)
        handle, probe = tempfile.mkstemp(prefix=f".write-check.tmp-{os.getpid()}-", dir=folder)
        os.close(handle)
        os.remove(probe)
    except OSError as err:
        raise OutputError(f"{folder}: cannot write output files here ({err.strerror or err})") from None


def _file_id(path: str) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def check_outputs_are_not_inputs(outputs: list[str], inputs: list[str]) -> None:
    """Refuses an output that is a folder, or that is the same file as an input under any name.

    Args:
        outputs: the files to be written.
        inputs: the files read.

    Raises:
        OutputError: naming the output and the input.
    """
    inputs_by_id = {}
    for path in inputs:
        inputs_by_id.setdefault(_file_id(path), path)
    for output in outputs:
        if os.path.isdir(output):
            raise OutputError(f"{output}: the output is a folder; choose another output folder")
        same = inputs_by_id.get(_file_id(output)) if os.path.exists(output) else None
        if same is not None:
            detail = "" if os.path.abspath(same) == os.path.abspath(output) else f" ({same}, the same file)"
            raise OutputError(f"{output}: the output would overwrite an input{detail}; choose another output folder")
