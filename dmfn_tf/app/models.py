"""The models a `dmfn app` page may choose from: a fixed set named by labels, never a path typed on the page.

A field that takes any path would let a page (or a script on another site) probe the disk through
the messages ("no such file", "is a directory", "not a model") and make the server open any file,
a FIFO included, which blocks forever. So the server decides at start-up which models exist:

- the start-up model (`dmfn app --model`, by default the shipped one);
- the shipped model (`saved_models/dmfn_photo_cpu.keras`), where the source tree has it;
- every `--allow-model PATH` the server was started with.

Each is resolved (a run directory to its `generator.keras`) and checked to be a regular file
(`os.stat`, without opening it) when the server starts, and again before it is loaded. The page
sees labels only: `shipped`, or the file's (run directory's) base name, made unique with
" (2)", " (3)"; `/api/config` lists them. A request naming anything else gets one message, the
same for every unknown name. One model is kept in memory at a time. Each model's trained size is
what its file records (`dmfn_tf.model_io.trained_size`), read without loading it.

Example:

```python
choices = ModelChoices("runs/demo", allowed=["runs/other/generator.keras"])
choices.labels            # -> ["demo", "shipped", "generator.keras"]
generator = choices.load("")  # the start-up model
```
"""

from __future__ import annotations

import os
import stat
import threading

from dmfn_tf.app.refusal import Refusal
from dmfn_tf.errors import UserError
from dmfn_tf.input_limits import check_file_bytes
from dmfn_tf.model_io import SHIPPED, ModelLoadError, default_model_path, is_shipped, resolve_generator_path


def check_regular_file(path: str, name: str) -> os.stat_result:
    """`os.stat` of a model file, refused (`ModelLoadError`) unless it is a regular file; never opens it."""
    try:
        info = os.stat(path)
    except OSError:
        raise ModelLoadError(f"{name}: the model file is no longer there") from None
    if not stat.S_ISREG(info.st_mode):
        raise ModelLoadError(f"{name}: not a regular file (a FIFO, device or socket cannot be a model)")
    return info


def _label(path: str) -> str:
    if is_shipped(path):
        return SHIPPED
    return os.path.basename(os.path.normpath(path)) or "model"


class ModelChoices:
    """Labels of the models a page may use, and the one generator kept loaded.

    Args:
        startup: the model the page starts with (None: the shipped one where present, else none).
        allowed: further model paths the page may choose.
    """

    def __init__(self, startup: str | None = None, allowed=()):
        self.paths: dict[str, str] = {}
        self.default = self._add(startup) if startup is not None else None
        try:
            shipped = self._add(default_model_path())
        except ModelLoadError:  # an installed package carries no shipped model
            shipped = None
        if self.default is None:
            self.default = shipped
        for path in allowed:
            self._add(path)
        self._loaded: tuple[tuple, object] | None = None
        self._sizes: dict[tuple, int | None] = {}
        self._lock = threading.Lock()
        self._sizes_lock = threading.Lock()  # apart: reading a size never waits for a model to load

    def _add(self, path: str) -> str:
        """Resolves and checks `path` (a UserError names it: this runs when the server starts) and returns its label."""
        source = resolve_generator_path(os.path.expanduser(path))
        check_regular_file(source, source)
        real = os.path.realpath(source)
        for label, known in self.paths.items():
            if known == real:
                return label
        label, base, count = _label(path), _label(path), 1
        while label in self.paths:
            count += 1
            label = f"{base} ({count})"
        self.paths[label] = real
        return label

    @property
    def labels(self) -> list[str]:
        return list(self.paths)

    def path(self, label) -> tuple[str, str]:
        """`(label, file)` of a model the page names ("" or None: the start-up model); anything else is a 400."""
        if label is None or label == "":
            if self.default is None:
                raise Refusal(400, "no model: start dmfn app with --model (a .keras generator, run directory or .pth)")
            label = self.default
        if not isinstance(label, str):
            raise Refusal(400, "'model' must be the name of one of the server's models")
        if label not in self.paths:
            raise Refusal(400, f"unknown model {label[:60]!r}; this server offers {', '.join(map(repr, self.paths))} "
                               "(start dmfn app with --allow-model to offer another)")
        return label, self.paths[label]

    def _key(self, path: str, label: str) -> tuple:
        """`(path, inode, size, mtime)` of a model file that is still a regular file within the byte budget."""
        info = check_regular_file(path, label)
        check_file_bytes(path)
        return (path, info.st_ino, info.st_size, info.st_mtime_ns)

    def load(self, label):
        """The generator of `label`, loaded once and kept until another model is asked for."""
        from dmfn_tf.model_io import load_generator

        label, path = self.path(label)
        with self._lock:
            try:
                key = self._key(path, label)
                if self._loaded is None or self._loaded[0] != key:
                    self._loaded = None  # keep one model in memory
                    self._loaded = (key, load_generator(path))
            except UserError as err:
                raise Refusal(400, str(err).replace(path, label)) from None
            return self._loaded[1]

    def trained_size(self, label) -> int | None:
        """The trained size the model `label` records (None: it records none), read once per version of its file."""
        from dmfn_tf.model_io import trained_size

        label, path = self.path(label)
        with self._sizes_lock:
            try:
                key = self._key(path, label)
                if key not in self._sizes:
                    self._sizes[key] = trained_size(path)
            except UserError as err:
                raise Refusal(400, str(err).replace(path, label)) from None
            return self._sizes[key]
