"""Debug mode: slow-callback warnings on the `asyncio` logger, debug flag plumbing."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from asyncio import constants, coroutines

import pytest
from loop_helpers import new_loop_of_kind, run_briefly

SLOW = 0.01  # slow_callback_duration used by these tests


def busy(seconds: float = 2 * SLOW) -> None:
    """A callback that is slow: it busy-waits (the loop's clock is not involved)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def slow_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == "asyncio" and r.getMessage().startswith("Executing ")
    ]


def took(message: str, what: str) -> bool:
    """message is 'Executing <what> took N.NNN seconds'."""
    prefix = f"Executing {what} took "
    return message.startswith(prefix) and bool(
        re.fullmatch(r"\d+\.\d{3} seconds", message[len(prefix) :])
    )


def test_slow_handle_warning(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    loop.set_debug(True)
    loop.slow_callback_duration = SLOW
    handle = loop.call_soon(busy)
    loop.call_soon(lambda: None)  # fast: no warning
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        run_briefly(loop)
    records = slow_records(caplog)
    assert len(records) == 1
    record = records[0]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert message.startswith("Executing <Handle busy() at ")
    assert " created at " in message  # debug mode: handles record where they were made
    assert took(message, repr(handle))


def test_slow_timer_warning(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    loop.set_debug(True)
    loop.slow_callback_duration = SLOW
    timer = loop.call_later(0, busy)
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        run_briefly(loop)
    (record,) = slow_records(caplog)
    assert record.getMessage().startswith("Executing <TimerHandle when=")
    assert took(record.getMessage(), repr(timer))


def test_slow_task_step_warning(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    loop.set_debug(True)
    loop.slow_callback_duration = SLOW

    async def slow_task() -> None:
        busy()

    with caplog.at_level(logging.WARNING, logger="asyncio"):
        loop.run_until_complete(loop.create_task(slow_task(), name="slow-task"))
    (record,) = slow_records(caplog)
    # The task step is reported as the task (asyncio's _format_handle).
    assert re.match(r"Executing <Task finished name='slow-task' coro=<", record.getMessage())
    assert re.search(r"> took \d+\.\d{3} seconds$", record.getMessage())


def test_no_warning_without_debug(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    loop.set_debug(False)
    loop.slow_callback_duration = SLOW
    loop.call_soon(busy)
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        run_briefly(loop)
    assert slow_records(caplog) == []


def test_fast_callbacks_no_warning(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    loop.set_debug(True)
    loop.slow_callback_duration = 10.0
    loop.call_soon(busy)
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        run_briefly(loop)
    assert slow_records(caplog) == []


def test_debug_flag(loop: asyncio.AbstractEventLoop) -> None:
    # Off by default, unless PYTHONASYNCIODEBUG / -X dev says otherwise.
    assert loop.get_debug() is coroutines._is_debug_mode()  # type: ignore[attr-defined]
    loop.set_debug(True)
    assert loop.get_debug() is True
    loop.set_debug(False)
    assert loop.get_debug() is False
    assert loop.slow_callback_duration == 0.1  # asyncio's default
    loop.slow_callback_duration = 0.5
    assert loop.slow_callback_duration == 0.5


def test_runner_debug(loop_kind: str) -> None:
    seen: list[bool] = []

    async def main() -> None:
        seen.append(asyncio.get_running_loop().get_debug())

    with asyncio.Runner(debug=True, loop_factory=lambda: new_loop_of_kind(loop_kind)) as runner:
        runner.run(main())
    assert seen == [True]


def test_debug_env_variable(loop_kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONASYNCIODEBUG", "1")
    loop = new_loop_of_kind(loop_kind)
    try:
        assert loop.get_debug() is True
    finally:
        loop.close()


def test_coroutine_origin_tracking(loop: asyncio.AbstractEventLoop) -> None:
    # Debug mode turns on coroutine origin tracking while the loop runs (asyncio: 10
    # frames), and turns it off again when the loop stops.
    import sys

    depths: list[int] = []
    loop.set_debug(True)
    loop.call_soon(lambda: depths.append(sys.get_coroutine_origin_tracking_depth()))
    run_briefly(loop)
    loop.set_debug(False)
    loop.call_soon(lambda: depths.append(sys.get_coroutine_origin_tracking_depth()))
    run_briefly(loop)
    assert depths == [constants.DEBUG_STACK_DEPTH, 0]
    assert sys.get_coroutine_origin_tracking_depth() == 0


def test_never_awaited_coroutine_origin_in_debug(
    loop: asyncio.AbstractEventLoop, recwarn: pytest.WarningsRecorder
) -> None:
    import gc

    async def forgotten() -> None:
        pass

    def make() -> None:
        forgotten()  # type: ignore[unused-coroutine]  # dropped while the loop runs

    loop.set_debug(True)
    loop.call_soon(make)
    run_briefly(loop)
    gc.collect()
    messages = [str(w.message) for w in recwarn if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1
    assert messages[0].startswith(
        "coroutine 'test_never_awaited_coroutine_origin_in_debug.<locals>.forgotten'"
        " was never awaited\nCoroutine created at (most recent call last)\n"
    )
