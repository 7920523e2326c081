"""Request bodies of `dmfn app`: the declared length checked first, the bytes read within a deadline, a global budget.

- `declared_length(headers, limit)`: the body's size from its one `Content-Length` header, refused
  before a byte is read when it is missing (411), not a plain decimal number (`-1`, `abc`, `1e9`:
  400), sent in chunks (411) or over `limit` (413).
- `InFlightBytes`: the bytes of all bodies being received and processed at once. A request whose
  body does not fit is answered 503 ("busy") at once, so parallel large bodies cannot add up.
- `read_body(rfile, length, sink, deadline)`: reads exactly `length` bytes (never more) into a
  file or a `bytearray`, in chunks, each wait bounded by the socket's timeout and the whole by
  `deadline` (`time.monotonic()`); a body that ends early is a 400, one that arrives too slowly a 408.

Example:

```python
length = declared_length(handler.headers, MAX_INPUT_BYTES)
with budget.hold(length):
    data = read_body(handler.rfile, length, bytearray(length), time.monotonic() + 60)
```
"""

from __future__ import annotations

import contextlib
import re
import threading
import time

from dmfn_tf.app.refusal import Refusal

CHUNK_BYTES = 1024 * 1024
_DECIMAL = re.compile(r"[0-9]{1,19}")


def _mib(size: int) -> str:
    return f"{size / 2**20:.0f} MiB" if size >= 2**20 else f"{size} bytes"


def declared_length(headers, limit: int) -> int:
    """The body size a request declares, refused (`Refusal`) unless it is one decimal number up to `limit`.

    Args:
        headers: the request's headers (`email.message.Message`, as `BaseHTTPRequestHandler` parses them).
        limit: the largest body accepted, in bytes.
    """
    if headers.get("Transfer-Encoding") is not None:
        raise Refusal(411, "bodies sent in chunks (Transfer-Encoding) are not accepted; send a Content-Length")
    values = headers.get_all("Content-Length") or []
    if not values:
        raise Refusal(411, "the request has no Content-Length; send the body with its length")
    if len({value.strip() for value in values}) != 1:
        raise Refusal(400, "the request has several different Content-Length headers")
    text = values[0].strip()
    if not _DECIMAL.fullmatch(text):
        raise Refusal(400, f"Content-Length {text[:24]!r} is not a number of bytes")
    length = int(text)
    if length > limit:
        raise Refusal(413, f"the body is {_mib(length)}; the limit is {_mib(limit)}")
    return length


class InFlightBytes:
    """A budget of body bytes held at once by all requests; `hold(n)` refuses with 503 when `n` does not fit.

    Args:
        total: the budget in bytes.
    """

    def __init__(self, total: int):
        self.total = int(total)
        self.used = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def hold(self, size: int):
        with self._lock:
            if self.used + size > self.total:
                raise Refusal(503, "the server is busy receiving other uploads; try again in a moment")
            self.used += size
        try:
            yield
        finally:
            with self._lock:
                self.used -= size


def read_body(rfile, length: int, sink, deadline: float):
    """Reads exactly `length` bytes of `rfile` into `sink` (a writable file, or a `bytearray` of that size).

    Args:
        rfile: the connection's buffered reader (its socket has a timeout).
        length: the declared body size.
        sink: where the bytes go; returned.
        deadline: `time.monotonic()` value by which the whole body must have arrived.

    Raises:
        Refusal: 400 when the body ends before `length` bytes, 408 when it arrives too slowly.
    """
    view = memoryview(sink) if isinstance(sink, bytearray) else None
    received = 0
    while received < length:
        if time.monotonic() > deadline:
            raise Refusal(408, f"the body took too long to arrive ({_mib(received)} of {_mib(length)})")
        wanted = min(CHUNK_BYTES, length - received)
        try:
            if view is not None:
                count = rfile.readinto1(view[received : received + wanted])
            else:
                chunk = rfile.read1(wanted)
                sink.write(chunk)
                count = len(chunk)
        except TimeoutError:
            raise Refusal(408, f"the body stopped arriving ({_mib(received)} of {_mib(length)})") from None
        if not count:
            raise Refusal(400, f"the body ended after {_mib(received)} of the {_mib(length)} declared")
        received += count
    return sink
