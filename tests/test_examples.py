"""The seed chapter's examples (examples/python/) print the same on asyncio and steploop.

Each example runs in a subprocess as `python X.py` (the reference: asyncio's own loop)
and as `python -m steploop X.py` (steploop's policy installed, then the script runs as
`__main__`). stdout and stderr must be equal once memory addresses, measured durations
and the loop's class name in reprs are normalised, and must contain the lines that show
the example did its job (so an example that silently prints nothing fails too).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "python"
TIMEOUT = 60.0  # a hung example fails instead of blocking the suite

# Lines each example must print (stdout, stderr): what shows it did its job.
EXPECTED: dict[str, tuple[list[str], list[str]]] = {
    "sleep0_yield": (
        [
            "Фоновая задача работает!",
            "Прогресс: 0.0%",
            "Прогресс: 99.0%",
            "Результат: 333328333350000",
        ],
        [],
    ),
    "run_until_complete": (["Получили: Результат"], []),
    "run_forever_stop": (
        ["Итерация 1", "Итерация 2", "Итерация 3", "Event loop остановлен"],
        [],
    ),
    "manual_run_once": (["Задача выполнена", "Результат: 42"], []),
    "sync_async_bridge": (["{'data': 'value'}", "{'data': 'value'}"], []),
    "chunked_processing": (["Обработка завершена"], []),
    "interruptible_task": (["Задача прервана на итерации 1001", "Результат: None"], []),
    "call_soon_later_at": (
        [
            "Callback: first",
            "Callback: second",
            "Callback: delayed",
            "Callback: at_time",
            "Все результаты: ['first', 'second', 'delayed', 'at_time']",
        ],
        [],
    ),
    "debug_slow_callback": (
        [],
        ["Executing <Task finished name='Task-1' coro=<main() done, defined at"],
    ),
    "slow_callback_threshold": (
        [],
        ["Executing <Task finished name='Task-1' coro=<demo() done, defined at"],
    ),
    "runner": (["Результаты: task1, task2", "Event loop: <LOOP running=False"], []),
    "blocking_call": (["bad_example:", "good_example:"], []),
    "forgotten_await": (
        ["example() завершена"],
        ["RuntimeWarning: coroutine 'sleep' was never awaited"],
    ),
    "nested_run": (
        [
            "RuntimeError: asyncio.run() cannot be called from a running event loop",
            "Результат: 42",
        ],
        [],
    ),
}
STEPLOOP_ONLY = {"demo_forced_iteration", "tk_counter"}  # tk_counter: tests/test_tkinter.py


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("PYTHONASYNCIODEBUG", "PYTHONDEVMODE", "PYTHONWARNINGS", "PYTHONTRACEMALLOC"):
        env.pop(name, None)
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def run_example(name: str, *launcher: str) -> Run:
    path = f"examples/python/{name}.py"  # relative, as a user types it: same in both runs
    proc = subprocess.run(
        [sys.executable, *launcher, path],
        check=False,
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        encoding="utf-8",
        timeout=TIMEOUT,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


LAUNCHERS = {"asyncio": (), "steploop": ("-m", "steploop")}


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest) -> Iterator[dict[tuple[str, str], Future[Run]]]:
    """Runs of the examples the selected tests need, two at a time (they mostly sleep),
    keyed by (loop kind, example name)."""
    wanted: list[tuple[str, str]] = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if getattr(item, "module", None) is not sys.modules[__name__] or callspec is None:
            continue
        name = callspec.params["name"]
        kinds = ["asyncio", "steploop"] if "steploop" in item.name else ["asyncio"]
        wanted += [(kind, name) for kind in kinds if (kind, name) not in wanted]
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield {
            (kind, name): pool.submit(run_example, name, *LAUNCHERS[kind]) for kind, name in wanted
        }


def _get(runs: dict[tuple[str, str], Future[Run]], kind: str, name: str) -> Run:
    future = runs.get((kind, name))
    return future.result() if future is not None else run_example(name, *LAUNCHERS[kind])


def normalise(text: str) -> str:
    # <_UnixSelectorEventLoop running=False ...> vs <steploop.Loop running=False ...>
    text = re.sub(r"<[\w.]+ running=(True|False) closed=", r"<LOOP running=\1 closed=", text)
    text = re.sub(r"\b0x[0-9a-fA-F]+\b", "0x...", text)
    text = re.sub(r"\btook \d+\.\d+ seconds\b", "took N seconds", text)
    return text


def test_every_example_is_listed() -> None:
    on_disk = {p.stem for p in EXAMPLES.glob("*.py")}
    assert on_disk == set(EXPECTED) | STEPLOOP_ONLY


def _check_expected(name: str, run: Run) -> None:
    out_lines, err_lines = EXPECTED[name]
    stdout, stderr = normalise(run.stdout), normalise(run.stderr)
    for line in out_lines:
        assert line in stdout, f"{name}: {line!r} missing from stdout:\n{run.stdout}"
    for line in err_lines:
        assert line in stderr, f"{name}: {line!r} missing from stderr:\n{run.stderr}"
    if not err_lines:
        assert run.stderr == "", f"{name}: unexpected stderr:\n{run.stderr}"
    if name in ("debug_slow_callback", "slow_callback_threshold"):
        assert re.search(r"> took \d+\.\d{3} seconds$", run.stderr, re.MULTILINE), run.stderr


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_on_asyncio(name: str, runs: dict[tuple[str, str], Future[Run]]) -> None:
    run = _get(runs, "asyncio", name)
    assert run.returncode == 0, run.stderr
    _check_expected(name, run)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_same_on_steploop(name: str, runs: dict[tuple[str, str], Future[Run]]) -> None:
    run = _get(runs, "steploop", name)
    ref = _get(runs, "asyncio", name)
    assert (run.returncode, normalise(run.stdout), normalise(run.stderr)) == (
        ref.returncode,
        normalise(ref.stdout),
        normalise(ref.stderr),
    )
    _check_expected(name, run)


def test_demo_forced_iteration_on_steploop() -> None:
    run = run_example("demo_forced_iteration")
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    lines = run.stdout.splitlines()
    steps = [line for line in lines if line.startswith("step ")]
    fields = re.compile(
        r"step (\d+): callbacks=(\d+) timers=(\d+) io_events=(\d+) pending=(\d+)"
        r" next_deadline=(None|\+\d+\.\d{3}s) poll_time=\d+\.\d{3}ms run_time=\d+\.\d{3}ms$"
    )
    parsed = []
    for line in steps:
        match = fields.match(line)
        assert match, line
        parsed.append(match.groups())
    assert [int(p[0]) for p in parsed] == list(range(1, len(parsed) + 1))
    # Step 1: the two call_soon callbacks and the task's first step; no timer yet.
    assert parsed[0][1:5] == ("3", "0", "0", "1")
    assert parsed[0][5] != "None"  # the call_later timer is pending
    # Step 2: the task's second step.
    assert parsed[1][1:5] == ("1", "0", "0", "1")
    # Then, after run_until_idle, each step waits for a timer and runs what came due
    # (a poll may return a hair early: a step that ran nothing is allowed).
    timer_steps = parsed[2:]
    assert all(p[1] == p[2] for p in timer_steps), timer_steps
    assert sum(int(p[2]) for p in timer_steps) == 2
    assert timer_steps[-1][2] == "1"
    assert timer_steps[-1][5] == "None"
    assert "  call_soon: A" in lines
    assert "  call_later(0.05)" in lines
    assert "  call_at(time() + 0.1)" in lines
    assert "  task: шаг 2" in lines
    assert re.search(r"^run_until_idle\(\) = \d+ steps$", run.stdout, re.MULTILINE)
    assert lines[-2:] == ["time_until_next() = None", "task.result() = 'task'"]
