"""Errors: exception handler, BaseException escaping the loop, re-entrancy, bad input."""

from __future__ import annotations

import asyncio
import logging
from asyncio import format_helpers
from collections.abc import Callable
from typing import Any

import pytest
from loop_helpers import run_briefly, run_until_done

# ---------------------------------------------------------------- exception handler


def boom() -> None:
    raise ZeroDivisionError("boom")


def test_exception_in_callback_reaches_handler(
    loop: asyncio.AbstractEventLoop, loop_errors: list[dict[str, Any]]
) -> None:
    loop.set_debug(False)  # debug mode adds 'source_traceback'
    calls: list[int] = []
    handle = loop.call_soon(boom)
    loop.call_soon(calls.append, 1)  # the loop goes on after the error
    run_briefly(loop)
    assert calls == [1]
    assert len(loop_errors) == 1
    context = loop_errors[0]
    assert set(context) == {"message", "exception", "handle"}
    expected = "Exception in callback " + format_helpers._format_callback_source(boom, ())
    assert context["message"] == expected
    assert isinstance(context["exception"], ZeroDivisionError)
    assert context["exception"].args == ("boom",)
    assert context["handle"] is handle


def test_exception_in_timer_reaches_handler(
    loop: asyncio.AbstractEventLoop, loop_errors: list[dict[str, Any]]
) -> None:
    loop.set_debug(False)
    timer = loop.call_later(0, boom)
    run_briefly(loop)
    assert len(loop_errors) == 1
    context = loop_errors[0]
    assert set(context) == {"message", "exception", "handle"}
    assert context["message"].startswith("Exception in callback boom() at ")
    assert context["handle"] is timer


def test_exception_context_with_args(
    loop: asyncio.AbstractEventLoop, loop_errors: list[dict[str, Any]]
) -> None:
    def fail(a: int, b: str) -> None:
        raise ValueError(a, b)

    loop.call_soon(fail, 1, "x")
    run_briefly(loop)
    (context,) = loop_errors
    expected = "Exception in callback " + format_helpers._format_callback_source(fail, (1, "x"))
    assert context["message"] == expected
    assert "fail(1, 'x')" in context["message"]


def test_non_callable_in_non_debug_mode_fails_when_run(
    loop: asyncio.AbstractEventLoop, loop_errors: list[dict[str, Any]]
) -> None:
    # asyncio only checks the callback in debug mode; otherwise the error surfaces
    # when the handle runs, through the exception handler.
    loop.set_debug(False)
    handle = loop.call_soon(1)  # type: ignore[arg-type]
    run_briefly(loop)
    (context,) = loop_errors
    assert context["message"] == "Exception in callback 1()"
    assert isinstance(context["exception"], TypeError)
    assert str(context["exception"]) == "'int' object is not callable"
    assert context["handle"] is handle


@pytest.mark.parametrize("method", ["call_soon", "call_later", "call_soon_threadsafe"])
def test_context_that_is_not_a_context(
    loop: asyncio.AbstractEventLoop, loop_errors: list[dict[str, Any]], method: str
) -> None:
    # asyncio does not check `context=`: the handle calls `context.run(callback, *args)`
    # when it runs, so an int fails there with AttributeError, and any object with a `run`
    # method is used as it is.
    loop.set_debug(False)
    ran: list[tuple[Any, ...]] = []

    class Runs:
        def run(self, callback: Callable[..., Any], *args: Any) -> None:
            ran.append(args)
            callback(*args)

    def schedule(callback: Callable[..., Any], *args: Any, context: Any) -> asyncio.Handle:
        if method == "call_later":
            return loop.call_later(0, callback, *args, context=context)
        return getattr(loop, method)(callback, *args, context=context)  # type: ignore[no-any-return]

    handle = schedule(ran.append, ("int",), context=1)
    schedule(ran.append, ("duck",), context=Runs())
    run_briefly(loop)
    (context,) = loop_errors
    assert context["handle"] is handle
    assert type(context["exception"]) is AttributeError
    assert str(context["exception"]) == "'int' object has no attribute 'run'"
    assert ran == [(("duck",),), ("duck",)]


def test_exception_handler_api(loop: asyncio.AbstractEventLoop) -> None:
    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        pass

    loop.set_exception_handler(handler)
    assert loop.get_exception_handler() is handler
    loop.set_exception_handler(None)
    assert loop.get_exception_handler() is None
    with pytest.raises(TypeError, match="^A callable object or None is expected, got 1$"):
        loop.set_exception_handler(1)  # type: ignore[arg-type]


def test_call_exception_handler_directly(
    loop: asyncio.AbstractEventLoop, loop_errors: list[dict[str, Any]]
) -> None:
    loop.call_exception_handler({"message": "hello", "extra": 1})
    assert loop_errors == [{"message": "hello", "extra": 1}]


def test_default_exception_handler_logs(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    loop.set_exception_handler(None)
    loop.set_debug(False)  # debug mode appends where the handle was created
    handle = loop.call_soon(boom)
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        run_briefly(loop)
    records = [r for r in caplog.records if r.name == "asyncio"]
    assert len(records) == 1
    record = records[0]
    assert record.levelno == logging.ERROR
    source = format_helpers._format_callback_source(boom, ())
    assert record.getMessage() == f"Exception in callback {source}\nhandle: {handle!r}"
    assert record.exc_info is not None
    assert record.exc_info[0] is ZeroDivisionError


def test_default_exception_handler_message_keys_sorted(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    loop.set_exception_handler(None)
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        loop.call_exception_handler({"zeta": 1, "alpha": "a"})
    (record,) = [r for r in caplog.records if r.name == "asyncio"]
    assert record.getMessage() == "Unhandled exception in event loop\nalpha: 'a'\nzeta: 1"
    assert not record.exc_info


def test_failing_exception_handler_falls_back_to_default(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    def bad_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        raise RuntimeError("handler failed")

    loop.set_exception_handler(bad_handler)
    loop.call_soon(boom)
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        run_briefly(loop)
    (record,) = [r for r in caplog.records if r.name == "asyncio"]
    assert record.getMessage().startswith("Unhandled error in exception handler\ncontext: ")
    assert record.exc_info is not None
    assert record.exc_info[0] is RuntimeError
    loop.set_exception_handler(None)


def test_unretrieved_task_exception_is_reported(
    loop: asyncio.AbstractEventLoop, loop_errors: list[dict[str, Any]]
) -> None:
    async def fail() -> None:
        raise ValueError("never retrieved")

    task = loop.create_task(fail())
    run_briefly(loop, 2)
    assert task.done()
    del task
    import gc

    gc.collect()
    (context,) = loop_errors
    assert context["message"] == "Task exception was never retrieved"
    assert isinstance(context["exception"], ValueError)


# ---------------------------------------------------------------- BaseException


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exception_escapes_run_forever(
    loop: asyncio.AbstractEventLoop, exc_type: type[BaseException]
) -> None:
    calls: list[int] = []

    def raiser() -> None:
        raise exc_type()

    loop.call_soon(calls.append, 1)
    loop.call_soon(raiser)
    loop.call_soon(calls.append, 2)
    with pytest.raises(exc_type):
        loop.run_forever()
    assert calls == [1]
    assert not loop.is_running()
    assert asyncio._get_running_loop() is None
    # The loop is usable, and what was left in the ready queue still runs.
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert calls == [1, 2]


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exception_escapes_timer(
    loop: asyncio.AbstractEventLoop, exc_type: type[BaseException]
) -> None:
    def raiser() -> None:
        raise exc_type()

    calls: list[int] = []
    loop.call_later(0, raiser)
    loop.call_later(0, calls.append, 1)
    with pytest.raises(exc_type):
        run_briefly(loop)
    assert not loop.is_running()
    run_briefly(loop)
    assert calls == [1]


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exception_escapes_run_until_complete(
    loop: asyncio.AbstractEventLoop, exc_type: type[BaseException]
) -> None:
    def raiser() -> None:
        raise exc_type()

    fut = loop.create_future()
    loop.call_soon(raiser)
    loop.call_soon(fut.set_result, 5)
    with pytest.raises(exc_type):
        loop.run_until_complete(fut)
    assert not loop.is_running()
    assert not fut.done()
    assert run_until_done(loop, fut) == 5


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exception_from_task(
    loop: asyncio.AbstractEventLoop, exc_type: type[BaseException]
) -> None:
    async def main() -> None:
        await asyncio.sleep(0)
        raise exc_type()

    with pytest.raises(exc_type):
        loop.run_until_complete(main())
    assert not loop.is_running()
    assert loop.run_until_complete(asyncio.sleep(0, "again")) == "again"


# ---------------------------------------------------------------- re-entrancy


def _in_loop(loop: asyncio.AbstractEventLoop, fn: Callable[[], Any]) -> BaseException:
    """Run fn inside a callback of the running loop; return what it raised."""
    raised: list[BaseException] = []

    def cb() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001  (returned to the test)
            raised.append(exc)

    loop.call_soon(cb)
    run_briefly(loop)
    assert len(raised) == 1, "expected an exception"
    return raised[0]


def test_run_forever_inside_running_loop(loop: asyncio.AbstractEventLoop) -> None:
    exc = _in_loop(loop, loop.run_forever)
    assert type(exc) is RuntimeError
    assert str(exc) == "This event loop is already running"
    assert not loop.is_running()


def test_run_until_complete_inside_running_loop(loop: asyncio.AbstractEventLoop) -> None:
    fut = loop.create_future()
    exc = _in_loop(loop, lambda: loop.run_until_complete(fut))
    assert type(exc) is RuntimeError
    assert str(exc) == "This event loop is already running"
    fut.cancel()


def test_close_running_loop(loop: asyncio.AbstractEventLoop) -> None:
    exc = _in_loop(loop, loop.close)
    assert type(exc) is RuntimeError
    assert str(exc) == "Cannot close a running event loop"
    assert not loop.is_closed()


def test_is_running_inside_and_outside(loop: asyncio.AbstractEventLoop) -> None:
    seen: list[Any] = []

    def cb() -> None:
        seen.append(loop.is_running())
        seen.append(asyncio.get_running_loop())
        seen.append(asyncio.get_event_loop())

    loop.call_soon(cb)
    assert not loop.is_running()
    run_briefly(loop)
    assert seen == [True, loop, loop]
    assert not loop.is_running()
    with pytest.raises(RuntimeError, match="^no running event loop$"):
        asyncio.get_running_loop()


@pytest.mark.parametrize("other_kind", ["same", "reference"])
def test_run_other_loop_inside_running_loop(
    loop: asyncio.AbstractEventLoop,
    new_loop: Callable[[], asyncio.AbstractEventLoop],
    other_kind: str,
) -> None:
    other = new_loop() if other_kind == "same" else asyncio.new_event_loop()
    try:
        fut = other.create_future()
        for run in (other.run_forever, lambda: other.run_until_complete(fut)):
            exc = _in_loop(loop, run)
            assert type(exc) is RuntimeError
            assert str(exc) == "Cannot run the event loop while another loop is running"
        fut.cancel()
    finally:
        other.close()


def test_loop_inside_other_running_loop(
    loop: asyncio.AbstractEventLoop,
) -> None:
    # The other way round: an asyncio loop is running, and this loop is asked to run.
    outer = asyncio.new_event_loop()
    try:
        fut = loop.create_future()
        exc = _in_loop(outer, lambda: loop.run_until_complete(fut))
        assert type(exc) is RuntimeError
        assert str(exc) == "Cannot run the event loop while another loop is running"
        fut.cancel()
    finally:
        outer.close()


def test_run_until_complete_on_closed_loop(loop: asyncio.AbstractEventLoop) -> None:
    loop.close()

    async def coro() -> None:
        pass

    c = coro()
    with pytest.raises(RuntimeError) as info:
        loop.run_until_complete(c)
    assert type(info.value) is RuntimeError
    assert str(info.value) == "Event loop is closed"
    c.close()
    with pytest.raises(RuntimeError, match="^Event loop is closed$"):
        loop.run_forever()


def test_nested_run_inside_running_loop(loop: asyncio.AbstractEventLoop) -> None:
    async def inner() -> int:
        return 42

    async def outer() -> str:
        c = inner()
        try:
            asyncio.run(c)
        except RuntimeError as exc:
            return str(exc)
        finally:
            c.close()
        return "no error"

    message = run_until_done(loop, loop.create_task(outer()))
    assert message == "asyncio.run() cannot be called from a running event loop"


# ---------------------------------------------------------------- bad input


async def a_coroutine_function() -> None:
    pass


@pytest.mark.parametrize(
    ("method", "name"),
    [
        ("call_soon", "call_soon"),
        ("call_later", "call_at"),  # asyncio's call_later delegates to call_at
        ("call_at", "call_at"),
        ("call_soon_threadsafe", "call_soon_threadsafe"),
    ],
)
def test_debug_non_callable(loop: asyncio.AbstractEventLoop, method: str, name: str) -> None:
    loop.set_debug(True)
    with pytest.raises(TypeError) as info:
        _schedule(loop, method, 1)
    assert str(info.value) == f"a callable object was expected by {name}(), got 1"
    with pytest.raises(TypeError) as info:
        _schedule(loop, method, "text")
    assert str(info.value) == f"a callable object was expected by {name}(), got 'text'"


@pytest.mark.parametrize(
    ("method", "name"),
    [
        ("call_soon", "call_soon"),
        ("call_later", "call_at"),
        ("call_at", "call_at"),
        ("call_soon_threadsafe", "call_soon_threadsafe"),
    ],
)
def test_debug_coroutines_rejected(loop: asyncio.AbstractEventLoop, method: str, name: str) -> None:
    loop.set_debug(True)
    coro = a_coroutine_function()
    try:
        with pytest.raises(TypeError) as info:
            _schedule(loop, method, coro)
        assert str(info.value) == f"coroutines cannot be used with {name}()"
    finally:
        coro.close()
    with pytest.raises(TypeError) as info:
        _schedule(loop, method, a_coroutine_function)
    assert str(info.value) == f"coroutines cannot be used with {name}()"


def test_debug_run_in_executor_rejects_coroutine_function(
    loop: asyncio.AbstractEventLoop,
) -> None:
    loop.set_debug(True)
    with pytest.raises(TypeError, match=r"^coroutines cannot be used with run_in_executor\(\)$"):
        loop.run_in_executor(None, a_coroutine_function)


def _schedule(loop: asyncio.AbstractEventLoop, method: str, callback: Any) -> None:
    if method == "call_soon":
        loop.call_soon(callback)
    elif method == "call_later":
        loop.call_later(0, callback)
    elif method == "call_at":
        loop.call_at(loop.time(), callback)
    else:
        loop.call_soon_threadsafe(callback)


def test_create_task_rejects_non_coroutine(loop: asyncio.AbstractEventLoop) -> None:
    with pytest.raises(TypeError, match="a coroutine was expected, got 1"):
        loop.create_task(1)  # type: ignore[arg-type]
