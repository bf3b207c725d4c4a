"""Short leak soak (asyncio and steploop): after a warm-up round, further rounds of loops
created and closed, callbacks run, timers created and cancelled and connections opened and
closed leave *exactly* as many open fds and gc-tracked objects as before.

The long soak (10^7 callbacks, 10^6 timers, 10^5 connections, 10^4 loops; RSS and fds at
start and end) is ``.venv/bin/python scripts/soak.py`` (see docs/testing.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from leakcheck import callbacks, connections, gc_objects, loops, open_fds, timers
from loop_helpers import new_loop_of_kind

ROUNDS = 3


def steady(kind: str, work: Callable[[], None]) -> None:
    """Run `work` until two consecutive rounds leave fds and gc objects unchanged (at most
    ROUNDS + warm-up); fail if they never do."""
    work()  # warm-up: caches, interned strings, lazily imported modules
    work()
    history = []
    for _ in range(ROUNDS):
        fds, objs = open_fds(), gc_objects()
        work()
        after = (open_fds(), gc_objects())
        history.append((fds, objs, *after))
        if after == (fds, objs):
            return
    pytest.fail(f"{kind}: fds/objects before and after each round: {history}")


def with_loop(kind: str, fn: Callable[[asyncio.AbstractEventLoop], None]) -> Callable[[], None]:
    def work() -> None:
        loop = new_loop_of_kind(kind)
        try:
            fn(loop)
        finally:
            loop.close()

    return work


def test_loops_created_and_closed(loop_kind: str) -> None:
    steady(loop_kind, lambda: loops(lambda: new_loop_of_kind(loop_kind), 200))


def test_callbacks(loop_kind: str) -> None:
    steady(loop_kind, with_loop(loop_kind, lambda loop: callbacks(loop, 20_000)))


def test_timers_created_and_cancelled(loop_kind: str) -> None:
    steady(loop_kind, with_loop(loop_kind, lambda loop: timers(loop, 20_000)))


def test_connections_opened_and_closed(loop_kind: str) -> None:
    steady(loop_kind, with_loop(loop_kind, lambda loop: connections(loop, 100)))


def test_callbacks_on_one_long_lived_loop(loop_kind: str) -> None:
    """The same loop across rounds: its queues must not keep anything."""
    loop = new_loop_of_kind(loop_kind)
    try:
        steady(loop_kind, lambda: callbacks(loop, 20_000))
        steady(loop_kind, lambda: (timers(loop, 5_000), None)[1])
    finally:
        loop.close()
