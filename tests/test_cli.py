"""`python -m steploop`: runs a script or module on steploop, with the loop options."""

from __future__ import annotations

import os
import re
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


BLOCKING = """\
import asyncio, time

def blocking_call():
    time.sleep(0.3)  # longer than the watchdog's threshold

async def main():
    loop = asyncio.get_running_loop()
    print("watchdog:", loop._watchdog is not None)
    for _ in range(5):
        loop.call_soon(lambda: None)
    await asyncio.sleep(0)
    blocking_call()

asyncio.run(main())
"""


def test_watchdog(tmp_path: Path) -> None:
    script = tmp_path / "blocking.py"
    script.write_text(BLOCKING)
    proc = _run("--watchdog", "0.05", str(script))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["watchdog: True"]
    assert "has been running for" in proc.stderr
    assert "(watchdog threshold 0.050); the loop thread is at:" in proc.stderr
    assert ", in blocking_call\n    time.sleep(0.3)" in proc.stderr
    assert re.search(
        r"^Blocking: <Task .*main\(\).*> took \d+\.\d{3} seconds", proc.stderr, re.MULTILINE
    )


def test_no_watchdog_by_default(tmp_path: Path) -> None:
    script = tmp_path / "blocking.py"
    script.write_text(BLOCKING)
    proc = _run(str(script))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["watchdog: False"]
    assert proc.stderr == ""


def test_stats_table_at_exit(tmp_path: Path) -> None:
    script = tmp_path / "two_loops.py"
    script.write_text(
        "import asyncio\n"
        "async def main(n):\n"
        "    loop = asyncio.get_running_loop()\n"
        "    for _ in range(n):\n"
        "        loop.call_soon(lambda: None)\n"
        "    await asyncio.sleep(0.001)\n"
        "asyncio.run(main(10))\n"
        "asyncio.run(main(20))\n"
        "print('done')\n"
    )
    proc = _run("--stats", str(script))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "done\n"
    blocks = proc.stderr.split("steploop stats: ")[1:]
    assert [b.splitlines()[0] for b in blocks] == ["loop 1 of 2 (closed)", "loop 2 of 2 (closed)"]
    for block, n in zip(blocks, (10, 20)):
        rows = dict(line.split(None, 1) for line in block.splitlines()[1:])
        assert set(rows) == {
            "iterations",
            "callbacks",
            "timers",
            "io_events",
            "poll_time",
            "busy_time",
            "utilization",
            "max_callback_time",
            "lag_p50",
            "lag_p99",
            "busy_polls",
            "busy_poll_hits",
        }
        assert int(rows["callbacks"]) >= n
        assert rows["timers"] == "1"  # the sleep
        assert re.fullmatch(r"\d+\.\d %", rows["utilization"])
        assert re.fullmatch(r"\d+\.\d{3} ms", rows["lag_p50"])
        assert rows["max_callback_time"].endswith("(measured only with --debug or --watchdog)")


def test_stats_even_when_the_program_fails(tmp_path: Path) -> None:
    script = tmp_path / "fail.py"
    script.write_text("import asyncio\nasyncio.new_event_loop()\nraise SystemExit(4)\n")
    proc = _run("--stats", "--watchdog", "10", str(script))
    assert proc.returncode == 4
    assert "steploop stats: loop 1 of 1 (open)" in proc.stderr
    assert "(measured only" not in proc.stderr  # the watchdog times callbacks


def test_stats_without_loops(tmp_path: Path) -> None:
    script = tmp_path / "noloop.py"
    script.write_text("print('no asyncio here')\n")
    proc = _run("--stats", str(script))
    assert proc.returncode == 0
    assert proc.stderr == "steploop stats: no event loop was created\n"


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
def test_bad_watchdog_threshold(value: str) -> None:
    proc = _run("--watchdog", value, "x.py")
    assert proc.returncode == 2
    assert "argument --watchdog:" in proc.stderr
    assert proc.stderr.startswith("usage: python -m steploop")


def test_missing_script_is_a_usage_error(tmp_path: Path) -> None:
    # As `python missing.py`: a clear message and exit code 2, no traceback.
    proc = _run(str(tmp_path / "missing.py"))
    assert proc.returncode == 2
    assert "can't open file" in proc.stderr and "missing.py" in proc.stderr
    assert "Traceback" not in proc.stderr
