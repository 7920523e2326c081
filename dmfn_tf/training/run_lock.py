"""One training process per run folder: an exclusive lock held for as long as the process trains there.

Two `dmfn train` processes on one `--out` would interleave their checkpoints and the second would
overwrite the first's `config.yaml`. `hold_run_lock` takes an exclusive `fcntl.flock` on
`<run>/.lock` without waiting; a second process gets `RunLocked` (one line naming the folder and the
holder's process id). The kernel releases the lock when the file is closed or the process ends in any
way (a crash, SIGKILL), so a stale lock file never blocks the next run. On multi-worker runs each
task locks a file of its own (`.lock` for the chief, `.lock-worker-1`, ... for the others), so the
workers of one run share the folder while a second run is still refused. Where `fcntl` is missing
(Windows) the lock is skipped.

Example:

```python
with hold_run_lock("runs/tiny"):
    ...  # train; a second process gets RunLocked
```
"""

from __future__ import annotations

import contextlib
import json
import os

from dmfn_tf.errors import UserError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK_FILE = ".lock"


class RunLocked(UserError):
    """Another process is training in the run folder."""


def lock_file_name(strategy: str = "default") -> str:
    """The lock file of this process's task: `LOCK_FILE`, or `.lock-<type>-<index>` on a non-chief multi-worker task."""
    if strategy != "multi_worker":
        return LOCK_FILE
    try:
        task = json.loads(os.environ.get("TF_CONFIG", "") or "{}").get("task", {})
        task_type, index = str(task.get("type", "worker")), int(task.get("index", 0))
    except (ValueError, AttributeError, TypeError):
        return LOCK_FILE
    chief = task_type == "chief" or (task_type == "worker" and index == 0)
    return LOCK_FILE if chief else f"{LOCK_FILE}-{task_type}-{index}"


@contextlib.contextmanager
def hold_run_lock(directory: str | os.PathLike, name: str = LOCK_FILE):
    """Holds the exclusive lock of a run folder (created if missing) for the `with` block.

    Args:
        directory: the run folder.
        name: the lock file's name (`lock_file_name`).

    Raises:
        RunLocked: another process holds it.
    """
    directory = os.fspath(directory)
    if fcntl is None:
        yield None
        return
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 32, 0).decode("ascii", "replace").strip()
            by = f" (process {holder})" if holder.isdigit() else ""
            raise RunLocked(f"{directory}: another process{by} is training in this run folder; wait for it to "
                            "finish or choose another --out") from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(descriptor)  # releases the lock; the process ending releases it too
