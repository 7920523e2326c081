"""The top-level `dmfn` error handler: one line and exit 2 for user and machine failures, tracebacks on request."""

import errno

import pytest
from PIL import UnidentifiedImageError

from dmfn_tf.cli import main
from dmfn_tf.errors import UserError


def _failing_with(monkeypatch, error):
    def run(args):
        raise error

    monkeypatch.setattr("dmfn_tf.cli.summary.run", run)


@pytest.mark.parametrize(
    "error,fragments",
    [
        (PermissionError(errno.EACCES, "Permission denied", "runs/x/config.yaml"),
         ["runs/x/config.yaml: Permission denied"]),
        (OSError(errno.ENOSPC, "No space left on device", "out/a.png"), ["out/a.png: No space left on device"]),
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "a.yaml", None, "b.yaml"), ["a.yaml -> b.yaml"]),
        (UnidentifiedImageError("cannot identify image file 'photo.png'"), ["photo.png", "UnidentifiedImageError"]),
        (MemoryError(), ["ran out of memory"]),
        (UserError("config.yaml: bad value\non two lines"), ["config.yaml: bad value on two lines"]),
    ],
    ids=["permission", "disk full", "missing", "image decode", "memory", "user error"],
)
def test_user_and_machine_failures_are_one_line_with_exit_2(monkeypatch, capsys, error, fragments):
    _failing_with(monkeypatch, error)
    monkeypatch.delenv("DMFN_DEBUG", raising=False)
    assert main(["summary", "--config", "x.yaml"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("dmfn summary: error: "), err
    for fragment in fragments:
        assert fragment in err, err


def test_bugs_keep_their_traceback(monkeypatch):
    _failing_with(monkeypatch, KeyError("a bug"))
    with pytest.raises(KeyError):
        main(["summary", "--config", "x.yaml"])


@pytest.mark.parametrize("how", ["--debug before", "--debug after", "DMFN_DEBUG=1"])
def test_debug_shows_the_traceback(monkeypatch, how):
    _failing_with(monkeypatch, PermissionError(errno.EACCES, "Permission denied", "runs/x"))
    argv = ["summary", "--config", "x.yaml"]
    argv = {"--debug before": ["--debug"] + argv, "--debug after": argv + ["--debug"]}.get(how, argv)
    if how == "DMFN_DEBUG=1":
        monkeypatch.setenv("DMFN_DEBUG", "1")
    with pytest.raises(PermissionError):
        main(argv)


def test_building_the_command_line_does_not_import_tensorflow():
    """`dmfn --help` and one-line errors about arguments come at once, and with no TensorFlow log lines."""
    import subprocess
    import sys

    code = ("import sys; from dmfn_tf.cli import build_parser; build_parser(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"
