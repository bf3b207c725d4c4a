"""steploop-only: the forced-iteration API (DESIGN.md, "Beyond asyncio").

These tests run on steploop alone (their ids end in `[steploop]`); asyncio has no such
API.
"""

from __future__ import annotations

import asyncio
import math
import os
import select
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from loop_helpers import new_loop_of_kind

pytestmark = pytest.mark.steploop_only

REPORT_FIELDS = (
    "callbacks",
    "timers",
    "io_events",
    "poll_time",
    "run_time",
    "pending",
    "next_deadline",
)


@pytest.fixture(params=["steploop"])
def sloop(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A steploop loop (typed Any: the forced-iteration methods are not asyncio's)."""
    loop: Any = new_loop_of_kind(request.param)
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    yield loop
    if not loop.is_closed():
        loop.close()
    assert errors == [], f"unexpected exception handler calls: {errors!r}"


# ---------------------------------------------------------------- StepReport


def test_run_once_returns_step_report(sloop: Any) -> None:
    calls: list[int] = []
    sloop.call_soon(calls.append, 1)
    sloop.call_soon(calls.append, 2)
    report = sloop.run_once(0)
    assert calls == [1, 2]
    assert type(report).__name__ == "StepReport"
    for field in REPORT_FIELDS:
        assert hasattr(report, field), field
    assert report.callbacks == 2
    assert report.timers == 0
    assert report.io_events == 0
    assert report.pending == 0
    assert report.next_deadline is None
    for field in ("callbacks", "timers", "io_events", "pending"):
        assert type(getattr(report, field)) is int, field
    for field in ("poll_time", "run_time"):
        value = getattr(report, field)
        assert type(value) is float, field
        assert value >= 0.0, field


def test_step_report_is_immutable(sloop: Any) -> None:
    report = sloop.run_once(0)
    for field in REPORT_FIELDS:
        with pytest.raises(AttributeError):
            setattr(report, field, 1)
    with pytest.raises(AttributeError):
        report.new_attribute = 1


def test_empty_step(sloop: Any) -> None:
    report = sloop.run_once(0)
    assert (report.callbacks, report.timers, report.io_events, report.pending) == (0, 0, 0, 0)
    assert report.next_deadline is None


def test_report_counts_pending(sloop: Any) -> None:
    def spawn() -> None:
        sloop.call_soon(lambda: None)
        sloop.call_soon(lambda: None)

    sloop.call_soon(spawn)
    report = sloop.run_once(0)
    assert report.callbacks == 1
    assert report.pending == 2
    report = sloop.run_once(0)
    assert report.callbacks == 2
    assert report.pending == 0


def test_report_counts_timers(sloop: Any) -> None:
    calls: list[str] = []
    now = sloop.time()
    for delta, name in ((3.0, "a"), (2.0, "b"), (1.0, "c")):
        sloop.call_at(now - delta, calls.append, name)
    far = sloop.call_at(now + 100.0, calls.append, "far")
    sloop.call_soon(calls.append, "soon")
    report = sloop.run_once(0)
    assert calls == ["soon", "a", "b", "c"]
    assert report.timers == 3
    assert report.callbacks == 4
    assert report.next_deadline == pytest.approx(far.when(), abs=1e-6)
    far.cancel()


def test_report_counts_io_events(sloop: Any) -> None:
    a, b = socket.socketpair()
    try:
        a.setblocking(False)
        got: list[bytes] = []

        def on_readable() -> None:
            got.append(a.recv(10))

        sloop.add_reader(a.fileno(), on_readable)
        b.send(b"x")
        report = None
        for _ in range(100):  # the data is in the socket: the next poll sees it
            report = sloop.run_once(0)
            if got:
                break
        assert got == [b"x"]
        assert report is not None
        assert report.io_events == 1
        assert report.callbacks == 1
        assert sloop.remove_reader(a.fileno()) is True
    finally:
        a.close()
        b.close()


def test_cancelled_handles_are_not_counted(sloop: Any) -> None:
    calls: list[int] = []
    sloop.call_soon(calls.append, 1).cancel()
    sloop.call_soon(calls.append, 2)
    report = sloop.run_once(0)
    assert calls == [2]
    assert report.callbacks == 1


# ---------------------------------------------------------------- run_once semantics


def test_run_once_only_runs_what_was_ready(sloop: Any) -> None:
    calls: list[str] = []

    def first() -> None:
        calls.append("first")
        sloop.call_soon(calls.append, "next step")

    sloop.call_soon(first)
    sloop.run_once(0)
    assert calls == ["first"]
    sloop.run_once(0)
    assert calls == ["first", "next step"]


def test_running_loop_inside_run_once(sloop: Any) -> None:
    seen: list[Any] = []

    def cb() -> None:
        seen.append(asyncio.get_running_loop())
        seen.append(sloop.is_running())

    sloop.call_soon(cb)
    sloop.run_once(0)
    assert seen == [sloop, True]
    assert not sloop.is_running()
    assert asyncio._get_running_loop() is None


def test_run_once_drives_a_task(sloop: Any) -> None:
    async def work() -> int:
        for _ in range(3):
            await asyncio.sleep(0)
        return 7

    task = sloop.create_task(work())
    steps = 0
    while not task.done():
        sloop.run_once(0)
        steps += 1
        assert steps < 100
    assert task.result() == 7
    assert steps == 4


def test_run_once_timeout_is_an_upper_bound(sloop: Any) -> None:
    # Nothing scheduled: run_once(timeout) returns after at most `timeout` (no hang).
    report = sloop.run_once(0.001)
    assert report.callbacks == 0
    # A far timer: run_once(0) does not wait for it.
    far = sloop.call_later(100.0, lambda: None)
    report = sloop.run_once(0)
    assert report.timers == 0
    assert report.next_deadline == pytest.approx(far.when(), abs=1e-6)
    far.cancel()


def test_run_once_waits_for_a_timer(sloop: Any) -> None:
    calls: list[str] = []
    timer = sloop.call_later(0.01, calls.append, "timer")
    for _ in range(1000):
        report = sloop.run_once(10.0)  # blocks at most until the timer is due
        if calls:
            break
    assert calls == ["timer"]
    assert report.timers == 1
    assert sloop.time() >= timer.when() - 0.01


def test_run_once_closed_loop(sloop: Any) -> None:
    sloop.close()
    with pytest.raises(RuntimeError) as info:
        sloop.run_once(0)
    assert type(info.value) is RuntimeError
    assert str(info.value) == "Event loop is closed"


@pytest.mark.parametrize("timeout", [-1.0, -0.001, math.nan])
def test_run_once_bad_timeout(sloop: Any, timeout: float) -> None:
    calls: list[int] = []
    sloop.call_soon(calls.append, 1)
    with pytest.raises(ValueError):
        sloop.run_once(timeout)
    assert calls == []  # nothing ran
    sloop.run_once(0)
    assert calls == [1]


def test_run_once_callback_exception_goes_to_handler(sloop: Any) -> None:
    errors: list[dict[str, Any]] = []
    sloop.set_exception_handler(lambda _loop, context: errors.append(context))

    def boom() -> None:
        raise ZeroDivisionError

    handle = sloop.call_soon(boom)
    report = sloop.run_once(0)
    assert report.callbacks == 1
    (context,) = errors
    assert context["handle"] is handle
    assert isinstance(context["exception"], ZeroDivisionError)


def test_run_once_keyboard_interrupt_escapes(sloop: Any) -> None:
    def interrupt() -> None:
        raise KeyboardInterrupt

    calls: list[int] = []
    sloop.call_soon(interrupt)
    sloop.call_soon(calls.append, 1)
    with pytest.raises(KeyboardInterrupt):
        sloop.run_once(0)
    assert not sloop.is_running()
    sloop.run_once(0)
    assert calls == [1]


def test_private_run_once_returns_none(sloop: Any) -> None:
    calls: list[int] = []
    sloop.call_soon(calls.append, 1)
    assert sloop._run_once() is None
    assert calls == [1]


def test_run_once_does_not_block_with_ready_callbacks(sloop: Any) -> None:
    sloop.call_later(100.0, lambda: None).cancel()
    sloop.call_soon(lambda: None)
    report = sloop.run_once(None)  # would block forever if it ignored the ready callback
    assert report.callbacks == 1


def test_run_once_inside_running_loop(sloop: Any) -> None:
    errors: list[BaseException] = []

    def nested() -> None:
        try:
            sloop.run_once(0)
        except RuntimeError as exc:
            errors.append(exc)

    sloop.call_soon(nested)
    sloop.run_once(0)
    assert [str(e) for e in errors] == ["This event loop is already running"]


def test_run_once_while_another_loop_runs(sloop: Any) -> None:
    outer = asyncio.new_event_loop()
    errors: list[BaseException] = []

    def nested() -> None:
        try:
            sloop.run_once(0)
        except RuntimeError as exc:
            errors.append(exc)

    try:
        outer.call_soon(nested)
        outer.call_soon(outer.stop)
        outer.run_forever()
    finally:
        outer.close()
    assert [str(e) for e in errors] == ["Cannot run the event loop while another loop is running"]


def test_step_report_repr(sloop: Any) -> None:
    sloop.call_soon(lambda: None)
    text = repr(sloop.run_once(0))
    assert text.startswith("StepReport(")
    for field in REPORT_FIELDS:
        assert f"{field}=" in text


# ---------------------------------------------------------------- run_until_idle


def test_run_until_idle_counts_steps(sloop: Any) -> None:
    calls: list[str] = []

    def a() -> None:
        calls.append("a")
        sloop.call_soon(b)

    def b() -> None:
        calls.append("b")
        sloop.call_soon(calls.append, "c")

    sloop.call_soon(a)
    far = sloop.call_later(100.0, calls.append, "far")
    assert sloop.run_until_idle() == 3
    assert calls == ["a", "b", "c"]
    assert sloop.run_until_idle() == 0  # a timer that is not due is not work
    far.cancel()


def test_run_until_idle_runs_due_timers(sloop: Any) -> None:
    calls: list[str] = []
    sloop.call_at(sloop.time() - 1.0, calls.append, "due")
    assert sloop.run_until_idle() == 1
    assert calls == ["due"]


def test_run_until_idle_max_steps(sloop: Any) -> None:
    def forever() -> None:
        sloop.call_soon(forever)

    sloop.call_soon(forever)
    assert sloop.run_until_idle(max_steps=5) == 5
    assert sloop.time_until_next() == 0.0


def test_run_until_idle_nothing_to_do(sloop: Any) -> None:
    assert sloop.run_until_idle() == 0


# ---------------------------------------------------------------- host-loop integration


def test_time_until_next(sloop: Any) -> None:
    assert sloop.time_until_next() is None
    timer = sloop.call_later(10.0, lambda: None)
    wait = sloop.time_until_next()
    assert isinstance(wait, float)
    assert 0.0 < wait <= 10.0
    handle = sloop.call_soon(lambda: None)
    assert sloop.time_until_next() == 0.0
    handle.cancel()
    sloop.run_once(0)
    assert 0.0 < sloop.time_until_next() <= 10.0
    timer.cancel()
    assert sloop.time_until_next() is None  # a cancelled timer is not "next"


def test_time_until_next_due_timer(sloop: Any) -> None:
    sloop.call_at(sloop.time() - 1.0, lambda: None)
    assert sloop.time_until_next() == 0.0
    sloop.run_once(0)
    assert sloop.time_until_next() is None


def test_fileno(sloop: Any) -> None:
    fd = sloop.fileno()
    assert type(fd) is int
    assert fd >= 0
    os.fstat(fd)  # a real, open descriptor
    assert sloop.fileno() == fd


def test_fileno_readable_after_threadsafe_call(sloop: Any) -> None:
    # A host loop waits on fileno(); work queued from another thread must wake it.
    fd = sloop.fileno()
    sloop.run_once(0)
    thread = threading.Thread(target=sloop.call_soon_threadsafe, args=(lambda: None,))
    thread.start()
    thread.join()
    readable, _, _ = select.select([fd], [], [], 5.0)
    assert readable == [fd]
    report = sloop.run_once(0)
    assert report.callbacks == 1
