"""Helpers for driving a loop in the behaviour tests (asyncio and steploop alike)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

steploop: Any = None
STEPLOOP_IMPORT_ERROR: ImportError | None = None
try:
    import steploop as _steploop
except ImportError as exc:  # reported by every steploop test, see require_steploop
    STEPLOOP_IMPORT_ERROR = exc
else:
    steploop = _steploop


def require_steploop() -> Any:
    """The steploop module, or a test failure saying why it cannot be imported."""
    if steploop is None:
        pytest.fail(f"cannot import steploop: {STEPLOOP_IMPORT_ERROR!r}", pytrace=False)
    return steploop


def new_loop_of_kind(kind: str) -> asyncio.AbstractEventLoop:
    """A new event loop of the given kind ('asyncio' or 'steploop')."""
    if kind == "asyncio":
        return asyncio.new_event_loop()
    if kind == "steploop":
        loop: asyncio.AbstractEventLoop = require_steploop().new_event_loop()
        return loop
    raise ValueError(f"unknown loop kind {kind!r}")


def run_briefly(loop: asyncio.AbstractEventLoop, iterations: int = 1) -> None:
    """Run exactly `iterations` iterations of the loop (`stop(); run_forever()`)."""
    for _ in range(iterations):
        loop.stop()
        loop.run_forever()


def run_until_done(
    loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Any], guard: float = 10.0
) -> Any:
    """`run_until_complete(fut)`, cancelling `fut` after `guard` seconds so a bug
    fails the test instead of hanging it. Not a timing assertion: the guard is
    far longer than anything the tests wait for."""
    guard_handle = loop.call_later(guard, fut.cancel)
    try:
        return loop.run_until_complete(fut)
    finally:
        guard_handle.cancel()
