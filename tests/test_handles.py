"""Handle and TimerHandle objects: API and reprs as asyncio prints them."""

from __future__ import annotations

import asyncio
import functools

import pytest
from loop_helpers import run_briefly


def noop(*args: object) -> None:
    pass


def test_handle_repr(loop: asyncio.AbstractEventLoop) -> None:
    loop.set_debug(False)
    handle = loop.call_soon(noop, 1, "a")
    expected = asyncio.Handle(noop, (1, "a"), loop)
    assert repr(handle) == repr(expected)
    assert repr(handle).startswith("<Handle noop(1, 'a') at ")
    handle.cancel()
    assert repr(handle) == "<Handle cancelled>"


def test_timer_handle_repr(loop: asyncio.AbstractEventLoop) -> None:
    loop.set_debug(False)
    timer = loop.call_at(1234.5, noop)
    assert repr(timer) == repr(asyncio.TimerHandle(1234.5, noop, (), loop))
    assert repr(timer).startswith("<TimerHandle when=1234.5 noop() at ")
    timer.cancel()
    assert repr(timer) == "<TimerHandle cancelled when=1234.5>"


def test_partial_and_method_reprs(loop: asyncio.AbstractEventLoop) -> None:
    loop.set_debug(False)
    part = functools.partial(noop, 1)
    handle = loop.call_soon(part, 2)
    assert repr(handle) == repr(asyncio.Handle(part, (2,), loop))
    fut = loop.create_future()
    handle2 = loop.call_soon(fut.set_result, None)
    assert repr(handle2) == repr(asyncio.Handle(fut.set_result, (None,), loop))
    handle.cancel()
    handle2.cancel()


def test_handle_repr_after_run(loop: asyncio.AbstractEventLoop) -> None:
    loop.set_debug(False)
    handle = loop.call_soon(noop)
    before = repr(handle)
    run_briefly(loop)
    assert repr(handle) == before
    assert not handle.cancelled()


def test_handle_cancelled_flag(loop: asyncio.AbstractEventLoop) -> None:
    handle = loop.call_soon(noop)
    timer = loop.call_later(10.0, noop)
    assert not handle.cancelled()
    assert not timer.cancelled()
    handle.cancel()
    timer.cancel()
    assert handle.cancelled()
    assert timer.cancelled()


def test_timer_handles_compare_by_when(loop: asyncio.AbstractEventLoop) -> None:
    early = loop.call_at(100.0, noop)
    late = loop.call_at(200.0, noop)
    assert early < late
    assert late > early
    assert early <= late
    assert sorted([late, early]) == [early, late]
    early.cancel()
    late.cancel()


def test_debug_handle_repr_has_source(loop: asyncio.AbstractEventLoop) -> None:
    loop.set_debug(True)
    handle = loop.call_soon(noop)
    line = handle._source_traceback[-1]  # type: ignore[attr-defined]
    assert line.filename == __file__
    assert repr(handle).endswith(f" created at {__file__}:{line.lineno}>")
    handle.cancel()
    # asyncio keeps the callback of a cancelled handle in debug mode, for its repr.
    assert repr(handle).startswith("<Handle cancelled noop() at ")


@pytest.mark.parametrize("method", ["call_soon", "call_later"])
def test_debug_source_traceback_points_at_caller(
    loop: asyncio.AbstractEventLoop, method: str
) -> None:
    loop.set_debug(True)
    if method == "call_soon":
        handle = loop.call_soon(noop)
    else:
        handle = loop.call_later(10.0, noop)
    frame = handle._source_traceback[-1]  # type: ignore[attr-defined]
    assert (frame.filename, frame.name) == (
        __file__,
        "test_debug_source_traceback_points_at_caller",
    )
    handle.cancel()
