"""Request bodies of `dmfn app` (dmfn_tf/app/body.py): declared length, bounded reading, the in-flight budget."""

import email.message
import io
import time

import pytest

from dmfn_tf.app.body import InFlightBytes, declared_length, read_body
from dmfn_tf.app.refusal import Refusal


def _headers(*pairs):
    message = email.message.Message()
    for key, value in pairs:
        message[key] = value
    return message


def test_a_plain_length_is_accepted():
    assert declared_length(_headers(("Content-Length", " 42 ")), limit=100) == 42
    assert declared_length(_headers(("Content-Length", "7"), ("Content-Length", "7")), limit=100) == 7


@pytest.mark.parametrize("pairs, status", [
    ([], 411),
    ([("Content-Length", "-1")], 400),
    ([("Content-Length", "abc")], 400),
    ([("Content-Length", "+5")], 400),
    ([("Content-Length", "٣")], 400),  # a Unicode digit is not a byte count
    ([("Content-Length", "1" * 40)], 400),
    ([("Content-Length", "5"), ("Content-Length", "6")], 400),
    ([("Content-Length", "5"), ("Transfer-Encoding", "chunked")], 411),
    ([("Content-Length", "101")], 413),
])
def test_bad_lengths_are_refused(pairs, status):
    with pytest.raises(Refusal) as caught:
        declared_length(_headers(*pairs), limit=100)
    assert caught.value.status == status and "\n" not in str(caught.value)


class _Trickle(io.RawIOBase):
    """A reader handing out one byte per call, each after `delay` seconds."""

    def __init__(self, data, delay):
        self.data, self.delay = data, delay

    def readable(self):
        return True

    def readinto(self, buffer):
        time.sleep(self.delay)
        if not self.data:
            return 0
        buffer[0], self.data = self.data[0], self.data[1:]
        return 1


def test_exactly_the_declared_bytes_are_read():
    rfile = io.BufferedReader(io.BytesIO(b"0123456789" + b"NEXT REQUEST"), buffer_size=4)
    assert bytes(read_body(rfile, 10, bytearray(10), time.monotonic() + 5)) == b"0123456789"
    assert rfile.read() == b"NEXT REQUEST"  # nothing past the body was consumed
    sink = io.BytesIO()
    read_body(io.BufferedReader(io.BytesIO(b"abcdef"), buffer_size=2), 6, sink, time.monotonic() + 5)
    assert sink.getvalue() == b"abcdef"


def test_a_short_body_is_a_400():
    with pytest.raises(Refusal, match="ended after 3 bytes of the 10 bytes declared") as caught:
        read_body(io.BufferedReader(io.BytesIO(b"abc")), 10, bytearray(10), time.monotonic() + 5)
    assert caught.value.status == 400


def test_a_body_arriving_too_slowly_is_a_408():
    started = time.monotonic()
    with pytest.raises(Refusal, match="took too long") as caught:
        read_body(io.BufferedReader(_Trickle(b"x" * 100, 0.05)), 100, io.BytesIO(), time.monotonic() + 0.3)
    assert caught.value.status == 408 and time.monotonic() - started < 2


def test_the_in_flight_budget_refuses_what_does_not_fit():
    budget = InFlightBytes(100)
    with budget.hold(60):
        with pytest.raises(Refusal, match="busy") as caught:
            with budget.hold(41):
                pass
        assert caught.value.status == 503
        with budget.hold(40):
            assert budget.used == 100
    assert budget.used == 0
    with pytest.raises(RuntimeError):
        with budget.hold(100):
            raise RuntimeError("the request failed")
    assert budget.used == 0  # released on failure too
