"""The Host and Origin rules of `dmfn app` (dmfn_tf/app/origin.py)."""

import email.message

import pytest

from dmfn_tf.app.origin import HostGuard, split_host
from dmfn_tf.app.refusal import Refusal


def _headers(**fields):
    message = email.message.Message()
    for key, value in fields.items():
        message[key.replace("_", "-")] = value
    return message


def test_split_host():
    assert split_host("LocalHost:7860") == ("localhost", 7860)
    assert split_host("[::1]:80") == ("::1", 80)
    assert split_host("example") == ("example", None)
    for bad in ["", ":80", "a:b", "[::1]x", "a:123456"]:
        with pytest.raises(ValueError):
            split_host(bad)


@pytest.mark.parametrize("bound, good, bad", [
    ("127.0.0.1", ["127.0.0.1:7860", "localhost:7860", "[::1]:7860", "127.1.2.3:7860"],
     ["evil.example:7860", "10.0.0.1:7860", "127.0.0.1:7861", "127.0.0.1", "localhost.evil.example:7860", "x:y"]),
    ("0.0.0.0", ["192.168.1.20:7860", "localhost:7860", "[fe80::1]:7860"], ["evil.example:7860", "10.0.0.1:80"]),
    ("192.168.1.20", ["192.168.1.20:7860"], ["127.0.0.1:7860", "localhost:7860", "evil.example:7860"]),
])
def test_hosts(bound, good, bad):
    guard = HostGuard(bound, 7860)
    assert [guard.host_allowed(host) for host in good] == [True] * len(good)
    assert [guard.host_allowed(host) for host in bad] == [False] * len(bad)


def test_check_refuses_other_sites_with_403():
    guard = HostGuard("127.0.0.1", 7860)
    guard.check(_headers(Host="127.0.0.1:7860"))
    guard.check(_headers(Host="localhost:7860", Origin="http://localhost:7860", Sec_Fetch_Site="same-origin"))
    for fields in [dict(Host="evil.example:7860"), dict(Host="127.0.0.1:7860", Origin="http://evil.example:7860"),
                   dict(Host="127.0.0.1:7860", Origin="null"), dict(Host="127.0.0.1:7860", Sec_Fetch_Site="cross-site")]:
        with pytest.raises(Refusal) as caught:
            guard.check(_headers(**fields))
        assert caught.value.status == 403
    with pytest.raises(Refusal) as caught:
        guard.check(_headers())
    assert caught.value.status == 400
