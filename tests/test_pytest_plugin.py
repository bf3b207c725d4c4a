"""The pytest plugin: entry point, `--steploop` on a pytest-asyncio suite, staying light.

Each test runs pytest in a subprocess on a small suite written to a temporary directory,
with the plugins of this environment loaded as a user's run would load them (so also
pytest-asyncio, a test requirement).
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.steploop_only

# An existing pytest-asyncio suite: it knows nothing of steploop and prints the kind of
# loop its tests and async fixtures run on.
ASYNCIO_SUITE = """\
import asyncio

import pytest
import pytest_asyncio


def kind() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


@pytest_asyncio.fixture
async def fixture_kind():
    yield kind()


@pytest.mark.asyncio
async def test_coroutine(fixture_kind):
    await asyncio.sleep(0.001)
    print(f"\\nKIND test={kind()} fixture={fixture_kind}")


def test_sync_asyncio_run():
    async def main():
        return kind()

    print(f"\\nKIND asyncio.run={asyncio.run(main())}")
"""


# Hypothesis's plugin takes a second or two to import and has nothing to do here.
FAST = ("-p", "no:hypothesispytest")


def run_pytest(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONASYNCIO"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-s", "-p", "no:cacheprovider", *FAST, *args],
        check=False,
        cwd=directory,
        env=env,
        capture_output=True,
        encoding="utf-8",
        timeout=120,
    )


def kinds(output: str) -> list[str]:
    return sorted(
        part
        for line in output.splitlines()
        if line.startswith("KIND ")
        for part in line.split()[1:]
    )


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    (tmp_path / "test_suite.py").write_text(ASYNCIO_SUITE)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
    )
    return tmp_path


def test_entry_point_is_registered() -> None:
    entry_points = importlib.metadata.entry_points(group="pytest11")
    ours = [ep for ep in entry_points if ep.name == "steploop"]
    assert ours, "no pytest11 entry point 'steploop': reinstall steploop (maturin develop)"
    assert ours[0].value == "steploop.pytest_plugin"


def test_plugin_import_is_light() -> None:
    """Every pytest run imports the plugin: it must not load asyncio or the extension."""
    code = (
        "import sys, steploop.pytest_plugin; "
        "print(sorted(m for m in ('asyncio', 'steploop._steploop', 'steploop._loop') "
        "if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, encoding="utf-8"
    )
    assert proc.stdout.strip() == "[]"


def test_suite_runs_on_asyncio_without_the_option(suite: Path) -> None:
    proc = run_pytest(suite)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert kinds(proc.stdout) == ["asyncio.run=asyncio", "fixture=asyncio", "test=asyncio"]


def test_option_runs_a_pytest_asyncio_suite_on_steploop(suite: Path) -> None:
    proc = run_pytest(suite, "--steploop", "-W", "error::pytest.PytestDeprecationWarning")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert kinds(proc.stdout) == ["asyncio.run=steploop", "fixture=steploop", "test=steploop"]
    assert "2 passed" in proc.stdout


def test_ini_setting_runs_on_steploop(suite: Path) -> None:
    with (suite / "pytest.ini").open("a") as ini:
        ini.write("steploop = true\n")
    proc = run_pytest(suite, "-v")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert kinds(proc.stdout) == ["asyncio.run=steploop", "fixture=steploop", "test=steploop"]
    assert "steploop: " in proc.stdout  # the report header says so


def test_plugin_can_be_disabled(suite: Path) -> None:
    proc = run_pytest(suite, "-p", "no:steploop")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run_pytest(suite, "-p", "no:steploop", "--steploop")
    assert proc.returncode != 0
    assert "--steploop" in proc.stderr  # unknown option without the plugin


def test_fixtures_in_a_user_suite(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(
            """\
            import asyncio
            import pytest
            import steploop
            from steploop.testing import VirtualLoop

            LOOPS = []

            def test_virtual(virtual_loop):
                assert isinstance(virtual_loop, VirtualLoop)
                async def main():
                    async with asyncio.timeout(3600):
                        await asyncio.sleep(7200)
                with pytest.raises(TimeoutError):
                    virtual_loop.run_until_complete(main())
                assert virtual_loop.time() == 3600.0
                LOOPS.append(virtual_loop)

            def test_steploop(steploop_loop):
                assert type(steploop_loop) is steploop.Loop
                LOOPS.append(steploop_loop)

            def test_closed_after():
                assert len(LOOPS) == 2 and all(loop.is_closed() for loop in LOOPS)
            """
        )
    )
    proc = run_pytest(tmp_path, "-q")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 passed" in proc.stdout
