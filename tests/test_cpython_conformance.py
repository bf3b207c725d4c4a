"""CPython's own test.test_asyncio, run on steploop by tests/cpython/run.py.

The slow part (a few minutes) runs by default; set STEPLOOP_SKIP_CPYTHON=1 to skip it for a
quick local run. Failures are compared with tests/cpython/expected_failures.txt.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CPYTHON_DIR = Path(__file__).resolve().parent / "cpython"
RUNNER = CPYTHON_DIR / "run.py"
SKIP = os.environ.get("STEPLOOP_SKIP_CPYTHON", "") not in ("", "0")


def test_expected_failures_file_is_valid() -> None:
    """Every line has a reason, none is TODO (cheap; runs even with STEPLOOP_SKIP_CPYTHON)."""
    sys.path.insert(0, str(CPYTHON_DIR))
    try:
        import run
    finally:
        sys.path.remove(str(CPYTHON_DIR))
    expected = run.load_expected(run.EXPECTED_FILE)
    assert not expected.errors, "\n".join(expected.errors)


@pytest.mark.skipif(SKIP, reason="STEPLOOP_SKIP_CPYTHON is set")
def test_cpython_test_asyncio_on_steploop() -> None:
    proc = subprocess.run(
        [sys.executable, str(RUNNER), "--loop", "steploop"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, f"tests/cpython/run.py --loop steploop:\n{proc.stdout[-30000:]}"
