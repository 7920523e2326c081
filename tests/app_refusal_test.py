"""One-line messages without paths (dmfn_tf/app/refusal.py)."""

import pytest

from dmfn_tf.app.refusal import MAX_MESSAGE_CHARS, Refusal, one_line


@pytest.mark.parametrize("message, expected", [
    ("/home/me/runs/x/generator.keras: not a DMFN generator", "generator.keras: not a DMFN generator"),
    ("cannot read /tmp/dmfn_app_1a2b/upload (truncated)", "cannot read upload (truncated)"),
    ("C:\\Users\\me\\photo.png: bad", "photo.png: bad"),
    ("first line\nTraceback (most recent call last):", "first line"),
    ("the mask is 10x10 but the photo is 120x90", "the mask is 10x10 but the photo is 120x90"),
    ("a\x00b\x1bc", "a?b?c"),
    ("", ""),
])
def test_one_line(message, expected):
    assert one_line(message) == expected


def test_long_messages_are_cut():
    assert len(one_line("x" * 1000)) == MAX_MESSAGE_CHARS


def test_refusal_carries_its_status():
    refusal = Refusal(413, "too big")
    assert refusal.status == 413 and str(refusal) == "too big"
