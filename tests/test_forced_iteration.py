"""steploop-only: the blocking watchdog, loop statistics and reentrant (nested) runs.

(run_once, run_until_idle, fileno and time_until_next: tests/test_run_once.py; virtual
time: tests/test_virtual_time.py; guest mode and Tk: tests/test_guest.py, test_tkinter.py.)
No test here measures time: the watchdog test's callback is slow on purpose, and it waits for
the watchdog's report (an event) rather than for a duration.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import steploop

pytestmark = pytest.mark.steploop_only

STATS_KEYS = {
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


@pytest.fixture
def loop() -> Iterator[steploop.Loop]:
    loop = steploop.new_event_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    yield loop
    if not loop.is_closed():
        loop.close()
    assert errors == [], f"unexpected exception handler calls: {errors!r}"


@pytest.fixture
def reentrant_loop() -> Iterator[steploop.Loop]:
    loop = steploop.new_event_loop(reentrant=True)
    yield loop
    if not loop.is_closed():
        loop.close()


# ------------------------------------------------------------------------ watchdog


class Reports(logging.Handler):
    """Collects the watchdog's reports ("Blocking: ..." on the asyncio logger); `running`
    is set by the first "has been running for" report."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []
        self.running = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if not message.startswith("Blocking: "):
            return  # e.g. debug mode's own slow-callback warnings (PYTHONASYNCIODEBUG=1)
        assert record.levelno == logging.WARNING
        self.messages.append(message)
        if "has been running for" in message:
            self.running.set()


@pytest.fixture
def reports() -> Iterator[Reports]:
    handler = Reports()
    logger = logging.getLogger("asyncio")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def busy_until_the_watchdog_reports(reports: Reports) -> None:
    """Hold the loop thread (and the GIL, between switches) without sleeping, until the
    watchdog has reported us; 30 s at most, so a broken watchdog fails instead of hanging."""
    deadline = time.monotonic() + 30.0
    while not reports.running.is_set() and time.monotonic() < deadline:
        pass


def busy_for(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass


def test_watchdog_logs_the_current_stack_then_the_duration(
    loop: steploop.Loop, reports: Reports
) -> None:
    loop.set_blocking_watchdog(0.05)
    loop.call_soon(busy_until_the_watchdog_reports, reports)
    loop.run_once(0)
    assert reports.running.is_set()
    running = [m for m in reports.messages if "has been running for" in m]
    took = [m for m in reports.messages if " took " in m]
    assert len(running) == 1 and len(took) == 1, reports.messages
    assert running[0].startswith("Blocking: <Handle busy_until_the_watchdog_reports(")
    assert "(watchdog threshold 0.050); the loop thread is at:\n" in running[0]
    # The stack is the loop thread's at that moment: inside the busy function.
    stack = running[0].split("the loop thread is at:\n", 1)[1]
    frames = [line for line in stack.splitlines() if line.lstrip().startswith("File ")]
    # The innermost frame: the busy function, or Event.is_set() that it calls.
    assert any("in busy_until_the_watchdog_reports" in frame for frame in frames[-2:]), stack
    assert "while not reports.running.is_set()" in stack
    assert took[0].startswith("Blocking: <Handle busy_until_the_watchdog_reports(")
    assert took[0].endswith("seconds (watchdog threshold 0.050)")
    assert reports.messages.index(running[0]) < reports.messages.index(took[0])


def test_watchdog_names_the_coroutine_of_a_task(loop: steploop.Loop, reports: Reports) -> None:
    async def blocking_coroutine() -> None:
        await asyncio.sleep(0)
        busy_until_the_watchdog_reports(reports)

    loop.set_blocking_watchdog(0.05)
    loop.run_until_complete(blocking_coroutine())
    running = [m for m in reports.messages if "has been running for" in m]
    assert len(running) == 1, reports.messages
    assert "<Task" in running[0].splitlines()[0]
    assert "blocking_coroutine" in running[0].splitlines()[0]
    assert "in blocking_coroutine" in running[0]  # the coroutine's frame is on the stack


def test_watchdog_quiet_for_fast_callbacks(loop: steploop.Loop, reports: Reports) -> None:
    loop.set_blocking_watchdog(10.0)
    for _ in range(100):
        loop.call_soon(lambda: None)
    loop.run_until_idle()
    assert reports.messages == []


def test_no_watchdog_no_log(loop: steploop.Loop, reports: Reports) -> None:
    loop.call_soon(busy_for, 0.2)
    loop.run_once(0)
    assert reports.messages == []


def test_watchdog_off_again(loop: steploop.Loop, reports: Reports) -> None:
    loop.set_blocking_watchdog(0.01)
    loop.set_blocking_watchdog(None)
    loop.call_soon(busy_for, 0.2)
    loop.run_once(0)
    assert reports.messages == []


def test_watchdog_thread_ends_with_the_loop(loop: steploop.Loop) -> None:
    loop.set_blocking_watchdog(0.05)
    name = f"steploop-watchdog-{id(loop):x}"
    threads = [t for t in threading.enumerate() if t.name == name]
    assert len(threads) == 1
    loop.close()
    threads[0].join(timeout=30)
    assert not threads[0].is_alive()


# --------------------------------------------------------------------------- stats


def test_stats_keys_and_fresh_values(loop: steploop.Loop) -> None:
    stats = loop.stats()
    assert set(stats) == STATS_KEYS
    assert {k: stats[k] for k in ("iterations", "callbacks", "timers", "io_events")} == {
        "iterations": 0,
        "callbacks": 0,
        "timers": 0,
        "io_events": 0,
    }


def test_stats_count_callbacks_and_iterations(loop: steploop.Loop) -> None:
    for n in range(25):
        loop.call_soon(lambda: None)
    assert loop.run_once(0).callbacks == 25
    loop.call_soon(lambda: None)
    loop.run_once(0)
    loop.run_once(0)  # an empty iteration counts as one
    stats = loop.stats()
    assert stats["callbacks"] == 26
    assert stats["iterations"] == 3
    assert stats["timers"] == 0
    assert 0.0 <= stats["utilization"] <= 1.0
    assert stats["busy_time"] >= 0.0 and stats["poll_time"] >= 0.0


def test_stats_count_timers(loop: steploop.Loop) -> None:
    for delay in (0.0, 0.001, 0.002):
        loop.call_later(delay, lambda: None)
    loop.call_later(0.0, lambda: None).cancel()  # a cancelled timer does not come due
    loop.run_until_complete(asyncio.sleep(0.003))
    stats = loop.stats()
    # The three timers, and the sleep's own timer; each also ran a callback.
    assert stats["timers"] == 4
    assert stats["callbacks"] >= 4
    assert stats["lag_p99"] >= stats["lag_p50"] >= 0.0


def test_stats_count_io_events(loop: steploop.Loop) -> None:
    a, b = socket.socketpair()
    try:
        got: list[bytes] = []
        loop.add_reader(a, lambda: got.append(a.recv(10)))
        b.send(b"x")
        loop.run_once(1.0)
        assert got == [b"x"]
        assert loop.stats()["io_events"] == 1
        loop.remove_reader(a)
    finally:
        a.close()
        b.close()


def test_reset_stats(loop: steploop.Loop) -> None:
    loop.call_soon(lambda: None)
    loop.call_later(0, lambda: None)
    loop.run_until_complete(asyncio.sleep(0))
    assert loop.stats()["callbacks"] > 0
    loop.reset_stats()
    stats = loop.stats()
    assert set(stats) == STATS_KEYS
    assert all(value == 0 for value in stats.values()), stats


def test_max_callback_time_needs_timing(loop: steploop.Loop) -> None:
    """The longest callback is measured only while callbacks are timed: in debug mode or
    with the watchdog on (a clock read around each callback costs)."""
    loop.set_debug(False)  # even under PYTHONASYNCIODEBUG=1
    loop.call_soon(time.sleep, 0.02)
    loop.run_once(0)
    assert loop.stats()["max_callback_time"] == 0.0
    loop.set_debug(True)
    loop.slow_callback_duration = 10.0  # no slow-callback warning
    loop.call_soon(time.sleep, 0.02)
    loop.run_once(0)
    assert loop.stats()["max_callback_time"] >= 0.015


# ------------------------------------------------------------------ nested runs


def test_nested_run_until_complete_on_a_reentrant_loop(reentrant_loop: steploop.Loop) -> None:
    loop = reentrant_loop
    order: list[str] = []

    async def helper(fut: asyncio.Future[str]) -> None:
        order.append("helper runs during the nested run")
        fut.set_result("inner")

    async def inner() -> str:
        fut: asyncio.Future[str] = loop.create_future()
        loop.create_task(helper(fut))
        return await fut

    async def outer() -> str:
        # A synchronous API that drives a coroutine to completion, called from a task (the
        # Jupyter / nest_asyncio case): the outer task is suspended meanwhile.
        result = loop.run_until_complete(inner())
        order.append("outer resumes")
        assert asyncio.current_task() is outer_task
        return result

    outer_task = loop.create_task(outer())
    assert loop.run_until_complete(outer_task) == "inner"
    assert order == ["helper runs during the nested run", "outer resumes"]


def test_nested_run_once_on_a_reentrant_loop(reentrant_loop: steploop.Loop) -> None:
    loop = reentrant_loop
    ran: list[str] = []
    reports: list[steploop.StepReport] = []

    def callback() -> None:
        loop.call_soon(ran.append, "nested")
        reports.append(loop.run_once(0))
        ran.append("outer")

    loop.call_soon(callback)
    loop.run_once(0)
    assert ran == ["nested", "outer"]
    assert reports[0].callbacks == 1


def test_nested_run_until_complete_on_a_default_loop(loop: steploop.Loop) -> None:
    async def inner() -> None:
        pass

    async def outer() -> str:
        coro = inner()
        try:
            loop.run_until_complete(coro)
        except RuntimeError as exc:
            return str(exc)
        finally:
            coro.close()
        return "no error"

    assert loop.run_until_complete(outer()) == "This event loop is already running"


@pytest.mark.parametrize("method", ["run_once", "run_until_idle", "run_forever"])
def test_stepping_a_running_default_loop(loop: steploop.Loop, method: str) -> None:
    errors: list[str] = []

    def nested() -> None:
        try:
            getattr(loop, method)()
        except RuntimeError as exc:
            errors.append(str(exc))

    loop.call_soon(nested)
    loop.run_once(0)
    assert errors == ["This event loop is already running"]


def test_reentrant_nested_run_from_another_thread_is_refused(
    reentrant_loop: steploop.Loop,
) -> None:
    """Reentrancy is for the loop's own thread: another thread still gets the error."""
    loop = reentrant_loop
    errors: list[str] = []
    started, release = threading.Event(), threading.Event()

    def other_thread() -> None:
        started.wait()
        try:
            loop.run_once(0)
        except RuntimeError as exc:
            errors.append(str(exc))
        release.set()

    async def main() -> None:
        started.set()
        await loop.run_in_executor(None, release.wait)

    thread = threading.Thread(target=other_thread)
    thread.start()
    loop.run_until_complete(main())
    thread.join()
    assert errors == ["This event loop is already running"]


def test_asyncio_run_inside_a_reentrant_loop(reentrant_loop: steploop.Loop) -> None:
    # The Jupyter case: code running on the loop calls asyncio.run() on a coroutine.
    loop = reentrant_loop

    async def inner() -> str:
        await asyncio.sleep(0)
        return "inner"

    async def outer() -> str:
        return asyncio.run(inner()) + "+outer"

    assert loop.run_until_complete(outer()) == "inner+outer"


def test_asyncio_run_inside_a_default_loop_still_refuses() -> None:
    steploop.new_event_loop(reentrant=True).close()  # asyncio.run is wrapped from here on
    loop = steploop.new_event_loop()

    async def inner() -> None:
        pass

    async def outer() -> str:
        coro = inner()
        try:
            asyncio.run(coro)
        except RuntimeError as exc:
            return str(exc)
        finally:
            coro.close()
        return "no error"

    try:
        assert (
            loop.run_until_complete(outer())
            == "asyncio.run() cannot be called from a running event loop"
        )
    finally:
        loop.close()
    # And with no loop running, asyncio.run is asyncio.run.
    assert asyncio.run(asyncio.sleep(0, "plain")) == "plain"
