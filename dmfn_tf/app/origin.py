"""Which requests come from this server's own page: the `Host` and `Origin` headers against the bound address.

A page on another site can make a browser send requests to `http://127.0.0.1:7860/` (its `Origin`
names the other site), and a DNS-rebinding name (`evil.example` resolving to 127.0.0.1) makes the
browser treat this server as that site (its `Host` names `evil.example`). Both are refused with 403:

- `Host` must name the bound address and port. Bound to a loopback address, the loopback names
  are accepted (`localhost`, `127.0.0.1`, `[::1]`, any `127.x.y.z`); bound to every interface
  (`0.0.0.0`, `::`), any IP literal, `localhost` and this machine's host names; bound to one
  address, that address. A name that is not an IP literal is accepted only from that list, so no
  rebinding name passes. The port must be the bound one.
- `Origin`, when the browser sends one (it does for every `fetch` POST and cross-site request),
  must be `http://` followed by an accepted `Host`; `null` (a sandboxed frame, a `file:` page) is refused.
- `Sec-Fetch-Site: cross-site` is refused.

Example:

```python
guard = HostGuard("127.0.0.1", 7860)
guard.check(handler.headers)  # raises Refusal(403, ...) for another site
```
"""

from __future__ import annotations

import ipaddress
import socket

from dmfn_tf.app.refusal import Refusal

_LOCAL_NAMES = ("localhost",)


def _ip(text: str):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def split_host(value: str) -> tuple[str, int | None]:
    """`("name", port)` of a Host header value (`name`, `name:port`, `[v6]:port`); port None when absent.

    Raises:
        ValueError: not a host and port.
    """
    value = value.strip().lower()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else None
        if rest and port_text is None:
            raise ValueError(value)
    else:
        host, colon, port_text = value.partition(":")
        port_text = port_text if colon else None
    if not host or (port_text is not None and not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5)):
        raise ValueError(value)
    return host, (int(port_text) if port_text is not None else None)


class HostGuard:
    """Checks that a request names this server and comes from its own page.

    Args:
        host: the address the server is bound to.
        port: the bound port.
    """

    def __init__(self, host: str, port: int):
        self.port = int(port)
        bound = _ip(host)
        self.any_ip = bound is not None and bound.is_unspecified
        self.loopback = host == "localhost" or (bound is not None and bound.is_loopback)
        names = {host.lower()}
        if self.loopback or self.any_ip:
            names.update(_LOCAL_NAMES)
        if self.any_ip:
            names.update(name.lower() for name in (socket.gethostname(), socket.getfqdn()) if name)
        self.names = frozenset(names)

    def host_allowed(self, value: str) -> bool:
        try:
            host, port = split_host(value)
        except ValueError:
            return False
        if (port if port is not None else 80) != self.port:
            return False
        if host in self.names:
            return True
        address = _ip(host)
        return address is not None and (self.any_ip or (self.loopback and address.is_loopback))

    def check(self, headers) -> None:
        """Raises `Refusal(403)` unless `Host` (and `Origin`, where sent) name this server."""
        host = headers.get("Host")
        if host is None:
            raise Refusal(400, "the request has no Host header")
        if not self.host_allowed(host):
            raise Refusal(403, f"this server answers requests for its own address only, not for Host {host[:80]!r}")
        origin = headers.get("Origin")
        if origin is not None and not (origin.lower().startswith("http://") and self.host_allowed(origin[len("http://"):])):
            raise Refusal(403, f"requests from another site ({origin[:80]!r}) are refused; open the page from this server")
        if (headers.get("Sec-Fetch-Site") or "").lower() == "cross-site":
            raise Refusal(403, "requests from another site are refused; open the page from this server")
