"""Shared test set-up: quiet TensorFlow, fixed seeds, and the path of the shared fixtures."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pathlib

import pytest

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURES = PROJECT_ROOT.parent / "shared" / "fixtures"


@pytest.fixture
def fixtures_dir():
    """`../shared/fixtures`, or a skip that says it is missing."""
    if not FIXTURES.is_dir():
        pytest.skip(f"shared fixtures not found at {FIXTURES} (they live beside the project as ../shared/fixtures)")
    return FIXTURES


def run_cases_measured(setup: str, cases: dict, timeout: float = 300) -> dict:
    """Runs each case's statement in one fresh Python process and reports how it ended and the memory it took.

    Memory is the growth of the process's peak resident set over its size just before the case:
    Linux's `VmHWM` (the peak RSS of this process image), reset before each case through
    `/proc/self/clear_refs`. (`ru_maxrss` is not used: after fork and exec it starts at the parent's
    peak, which in a pytest process can hide the growth.) Where the reset is refused, the peak is
    cumulative, which still bounds every case.

    Args:
        setup: statements run first (imports, building inputs).
        cases: name -> a statement to run (e.g. `load_state_dict(path)`).
        timeout: seconds for the whole process.

    Returns:
        name -> {"error": exception class name or None, "message": str, "user_error": bool,
        "growth_mb": peak RSS growth during the case}.
    """
    import json
    import subprocess
    import sys
    import textwrap

    script = "\n".join([
        "import json, sys",
        "from dmfn_tf.errors import UserError",
        textwrap.dedent(setup),
        "def _status_mb(key):",
        "    with open('/proc/self/status') as f:",
        "        return next(int(line.split()[1]) for line in f if line.startswith(key + ':')) / 1024",
        "def _reset_peak():",
        "    try:",
        "        with open('/proc/self/clear_refs', 'w') as f:",
        "            f.write('5')",
        "    except OSError:",
        "        pass",
        "_results = {}",
        "for _name, _statement in json.loads(sys.argv[1]).items():",
        "    _reset_peak()",
        "    _base = _status_mb('VmRSS')",
        "    try:",
        "        exec(_statement)",
        "        _results[_name] = {'error': None, 'message': '', 'user_error': False}",
        "    except Exception as _err:",
        "        _results[_name] = {'error': type(_err).__name__, 'message': str(_err),",
        "                           'user_error': isinstance(_err, UserError)}",
        "    _results[_name]['growth_mb'] = _status_mb('VmHWM') - _base",
        "print('RESULTS' + json.dumps(_results))",
    ])
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    completed = subprocess.run(
        [sys.executable, "-c", script, json.dumps(cases)], capture_output=True, text=True, timeout=timeout, env=env
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULTS")]
    assert completed.returncode == 0 and lines, completed.stderr[-3000:]
    return json.loads(lines[-1][len("RESULTS"):])
