"""How `dmfn app` refuses a request: an HTTP status and one line that names no path of the machine.

`Refusal(status, message)` is the error every part of the server raises for a request it will not
serve; the handler answers `{"error": one_line(message)}` with that status. `one_line` is the last
guard on every message that reaches the page: the first line only, each absolute path cut down to
its last component (a message that names a model file or a temporary folder must not tell a page
where things live on the disk), at most `MAX_MESSAGE_CHARS` characters.

Example:

```python
raise Refusal(413, "the body is 900 MiB; the limit is 256 MiB")
one_line("/home/me/runs/x/generator.keras: not a DMFN generator")  # -> "generator.keras: not a DMFN generator"
```
"""

from __future__ import annotations

import re

from dmfn_tf.errors import UserError

MAX_MESSAGE_CHARS = 300
# An absolute POSIX path (two components at least) or a Windows drive path, not inside a word or URL.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])(?:/[^\s/'\"]+)+/([^\s/'\"]*)|\b[A-Za-z]:\\(?:[^\s\\'\"]+\\)*([^\s\\'\"]*)")


class Refusal(UserError):
    """A request the server will not serve: `status` (4xx, or 503 when busy) and a one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = int(status)


def one_line(message: str) -> str:
    """`message` as the page may show it: one line, no absolute path, at most `MAX_MESSAGE_CHARS` characters."""
    lines = str(message).strip().splitlines()
    text = _ABSOLUTE_PATH.sub(lambda match: match.group(1) or match.group(2) or "", lines[0] if lines else "")
    text = "".join(char if char.isprintable() else "?" for char in text)
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"
