"""The count of unusable data files a run skipped, for the line it ends with and its log.

Data files are skipped in three places, each with its own warning: a file list's entries that are
missing or not regular files (`image_files.read_file_list`), files refused by the check when a run
starts (`image_files.check_files`, called by `pipeline`), and files refused when they are read
(`guarded_reader.GuardedReader`). A source's size is noted where the source is listed (`note`: the
folder's walk, the list file's reading, a reader of records no listing counts, such as a TFDS
split); the places that skip files note only their names (`note_skipped`). `counting_skips()`
gathers what is noted while it is open. `dmfn train` ends with its
`summary()` line and logs the count to TensorBoard (`data/skipped_files`); `dmfn evaluate` prints
the line and records the count in `summary.json` (`skipped_files`).

A source is named as its messages name it (the data folder or list, the mask folder, the TFDS
split); a file counts once however often it was skipped, and a source's size is the largest noted.
A pipeline counts in the blocks open when it was built (`open_tallies()`, kept by its reader), so
one left running from before a block does not add to it.

Example:

```python
with counting_skips() as skips:
    train(cfg, "runs/tiny")      # or any pipeline built and read here
print(skips.summary())           # "skipped 3 unusable file(s) of 120 (see the warnings above)"
```
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterable


class SkipTally:
    """Files skipped as unusable, by source, and the files each source lists (see the module docstring)."""

    def __init__(self):
        self.files: dict[str, int] = {}
        self.skipped_names: dict[str, set[str]] = {}

    @property
    def skipped(self) -> int:
        return sum(len(names) for names in self.skipped_names.values())

    @property
    def total(self) -> int:
        return sum(self.files.values())

    def summary(self) -> str:
        """One line: "skipped 3 unusable file(s) of 120 (see the warnings above)", or "no data file was skipped (of 120)"."""
        if not self.skipped:
            return f"no data file was skipped (of {self.total})"
        return f"skipped {self.skipped} unusable file(s) of {self.total} (see the warnings above)"


_open_tallies: list[SkipTally] = []
_lock = threading.Lock()


@contextlib.contextmanager
def counting_skips():
    """A `SkipTally` of what is noted while the block runs (nested blocks each count it)."""
    tally = SkipTally()
    with _lock:
        _open_tallies.append(tally)
    try:
        yield tally
    finally:
        with _lock:
            _open_tallies.remove(tally)


def open_tallies() -> tuple[SkipTally, ...]:
    """The tallies of the `counting_skips()` blocks open now (a reader keeps them, to note into later)."""
    with _lock:
        return tuple(_open_tallies)


def note(source: str, listed: int, skipped: Iterable[str] = (), tallies: Iterable[SkipTally] | None = None) -> None:
    """Notes, where `source` is listed, that it lists `listed` files, of which `skipped` (names) were skipped.

    Args:
        tallies: where to note it (default: the blocks open now, `open_tallies()`).
    """
    with _lock:
        for tally in _open_tallies if tallies is None else tallies:
            tally.files[source] = max(tally.files.get(source, 0), int(listed))
    note_skipped(source, skipped, tallies)


def note_skipped(source: str, skipped: Iterable[str], tallies: Iterable[SkipTally] | None = None) -> None:
    """Notes that the files `skipped` (names) of `source` were skipped; its size is what its listing noted.

    Args:
        tallies: where to note it (default: the blocks open now, `open_tallies()`).
    """
    skipped = set(skipped)
    if not skipped:
        return
    with _lock:
        for tally in _open_tallies if tallies is None else tallies:
            tally.files.setdefault(source, 0)
            tally.skipped_names.setdefault(source, set()).update(skipped)


def skipped_files() -> int | None:
    """Files skipped so far in the innermost open `counting_skips()` block, or None outside one."""
    with _lock:
        return _open_tallies[-1].skipped if _open_tallies else None
