"""Unpickling of untrusted files (checkpoints, weight archives) without running their code.

A pickle names the callables that rebuild its objects (`GLOBAL`/`STACK_GLOBAL` opcodes). The
`RestrictedUnpickler` admits only the (module, name) pairs it is given and refuses every other one
with a `PickleSecurityError` before anything is called, so a file that asks for `os.system` or
`builtins.eval` is rejected without executing anything.

Example:

```python
allowed = {("collections", "OrderedDict"): collections.OrderedDict}
with open(path, "rb") as f:
    state = RestrictedUnpickler(f, allowed, source=path).load()
```
"""

from __future__ import annotations

import pickle
from typing import Any, Callable, Mapping

from dmfn_tf.errors import UserError


class PickleSecurityError(UserError):
    """The pickle asked for a global that is not on the allow-list; nothing was executed."""


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only allow-listed globals.

    Args:
        file: a binary file object holding the pickle.
        allowed_globals: mapping from `(module, name)` to the object to use for it. The object need
            not be the real one: a loader can map e.g. a storage class to a local stand-in.
        source: what to call the file in error messages (usually its path).
        persistent_load: optional handler for persistent ids (torch's storage references).
    """

    def __init__(
        self,
        file,
        allowed_globals: Mapping[tuple[str, str], Any],
        source: str = "<pickle>",
        persistent_load: Callable[[Any], Any] | None = None,
    ):
        super().__init__(file)
        self.allowed_globals = dict(allowed_globals)
        self.source = source
        self._persistent_load = persistent_load

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.allowed_globals[(module, name)]
        except KeyError:
            raise PickleSecurityError(
                f"{self.source}: refused to load: the pickle asks for '{module}.{name}', which is not "
                "allowed in a weights file (only plain tensor/array data is accepted; nothing was executed)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent_load is None:
            raise PickleSecurityError(f"{self.source}: refused to load: unexpected persistent id {pid!r}")
        return self._persistent_load(pid)
