"""`python -m steploop`: runs a script or module on steploop, with the loop options."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PROBE = """\
import asyncio, sys

async def main():
    loop = asyncio.get_running_loop()
    print("loop:", type(loop).__module__.split(".")[0])
    print("debug:", loop.get_debug())
    print("slow:", loop.slow_callback_duration)

print("name:", __name__)
print("argv:", sys.argv[1:])
print("path0 is script dir:", sys.path[0] == {script_dir!r})
asyncio.run(main())
"""


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONASYNCIODEBUG"}
    return subprocess.run(
        [sys.executable, "-m", "steploop", *args],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        encoding="utf-8",
        timeout=60,
    )


@pytest.fixture
def probe(tmp_path: Path) -> Path:
    path = tmp_path / "probe.py"
    path.write_text(PROBE.format(script_dir=str(tmp_path)))
    return path


def test_runs_script_on_steploop(probe: Path) -> None:
    proc = _run(str(probe), "a", "--debug", "-m", "x")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "name: __main__",
        "argv: ['a', '--debug', '-m', 'x']",  # the program's arguments are not ours
        "path0 is script dir: True",
        "loop: steploop",
        "debug: False",
        "slow: 0.1",
    ]


def test_debug_and_slow_callback_duration(probe: Path) -> None:
    proc = _run("--debug", "--slow-callback-duration", "0.25", str(probe))
    assert proc.returncode == 0, proc.stderr
    assert "debug: True" in proc.stdout.splitlines()
    assert "slow: 0.25" in proc.stdout.splitlines()


def test_runs_module(tmp_path: Path) -> None:
    (tmp_path / "probemod.py").write_text(PROBE.format(script_dir=""))
    proc = _run("-m", "probemod", "b", "-v", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "name: __main__"
    assert lines[1] == "argv: ['b', '-v']"
    assert "loop: steploop" in lines


def test_error_exit_code_and_traceback(tmp_path: Path) -> None:
    script = tmp_path / "fail.py"
    script.write_text("raise ValueError('bad')\n")
    proc = _run(str(script))
    assert proc.returncode == 1
    assert proc.stderr.startswith("Traceback (most recent call last):\n")
    assert f'  File "{script}", line 1, in <module>' in proc.stderr
    assert "runpy" not in proc.stderr
    assert proc.stderr.rstrip().endswith("ValueError: bad")


def test_sys_exit_code_passes_through(tmp_path: Path) -> None:
    script = tmp_path / "exit.py"
    script.write_text("import sys\nsys.exit(3)\n")
    assert _run(str(script)).returncode == 3


def test_usage_errors() -> None:
    proc = _run()
    assert proc.returncode == 2
    assert "a script or -m module is required" in proc.stderr
    proc = _run("--slow-callback-duration", "nan", "x.py")
    assert proc.returncode == 2
    proc = _run("-m")
    assert proc.returncode == 2
