"""Memory: loops, handles and their arguments are freed, cycles through the loop included."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import pytest
from loop_helpers import new_loop_of_kind, run_briefly

N = 100_000


class Node:
    """Callback argument that refers to the loop and to itself."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.me = self


def noop(*args: Any) -> None:
    pass


def _fill(loop: asyncio.AbstractEventLoop) -> None:
    loop.set_debug(False)  # not about debug mode, where each handle records a traceback
    for i in range(N):
        node = Node(loop)
        if i % 2:
            loop.call_soon(noop, node)
        else:
            loop.call_later(1000.0, noop, node)


def test_closed_loop_with_pending_cycles_is_freed(loop_kind: str) -> None:
    loop = new_loop_of_kind(loop_kind)
    _fill(loop)
    loop.close()
    ref = weakref.ref(loop)
    del loop
    gc.collect()
    assert ref() is None


def test_unclosed_loop_with_pending_cycles_is_collected(loop_kind: str) -> None:
    # Without close(): only the garbage collector can break loop -> queue -> args ->
    # loop, so the loop must let it see what its queues hold. asyncio's loop warns
    # about not being closed when it is collected.
    loop = new_loop_of_kind(loop_kind)
    _fill(loop)
    ref = weakref.ref(loop)
    del loop
    with pytest.warns(ResourceWarning, match="unclosed event loop"):
        gc.collect()
    assert ref() is None


def test_callback_args_freed_after_run(loop_kind: str) -> None:
    loop = new_loop_of_kind(loop_kind)
    try:
        node = Node(loop)
        node_ref = weakref.ref(node)
        handle = loop.call_soon(noop, node)
        timer = loop.call_later(0, noop, node)
        del node
        run_briefly(loop)
        del handle, timer
        gc.collect()
        assert node_ref() is None
    finally:
        loop.close()


def test_cancelled_timer_args_freed(loop_kind: str) -> None:
    # asyncio drops a cancelled handle's callback and args at once (Handle.cancel).
    loop = new_loop_of_kind(loop_kind)
    try:
        node = Node(loop)
        node_ref = weakref.ref(node)
        timer = loop.call_later(1000.0, noop, node)
        del node
        timer.cancel()
        gc.collect()
        assert node_ref() is None
    finally:
        loop.close()


def test_task_result_cycle_freed(loop_kind: str) -> None:
    loop = new_loop_of_kind(loop_kind)

    async def main() -> Node:
        await asyncio.sleep(0)
        return Node(asyncio.get_running_loop())

    node = loop.run_until_complete(main())
    node_ref = weakref.ref(node)
    loop_ref = weakref.ref(loop)
    del node
    loop.close()
    del loop
    gc.collect()
    assert node_ref() is None
    assert loop_ref() is None


class Keeper:
    """Keeps the handle that will call its own method: handle -> method -> self -> handle."""

    handle: asyncio.Handle | None = None

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def method(self) -> None:
        pass


def test_kept_handle_cycle_collected_after_close(loop_kind: str) -> None:
    # The caller holds the handle while it is queued, then only the cycle does.
    loop = new_loop_of_kind(loop_kind)
    refs = []
    for delay in (None, 1000.0):
        k = Keeper(loop)
        if delay is None:
            k.handle = loop.call_soon(k.method)
        else:
            k.handle = loop.call_later(delay, k.method)
        refs.append(weakref.ref(k))
        del k
    loop.close()
    gc.collect()
    assert [r() for r in refs] == [None, None]


def test_kept_handle_cycle_collected_after_it_ran(loop_kind: str) -> None:
    loop = new_loop_of_kind(loop_kind)
    try:
        k = Keeper(loop)
        k.handle = loop.call_soon(k.method)
        ref = weakref.ref(k)
        del k
        run_briefly(loop)
        gc.collect()
        assert ref() is None
    finally:
        loop.close()


def test_kept_handle_cycle_in_unclosed_loop_is_collected(loop_kind: str) -> None:
    # loop -> queue -> handle -> method -> keeper -> handle, and keeper -> loop.
    loop = new_loop_of_kind(loop_kind)
    loop.set_debug(False)
    k = Keeper(loop)
    k.handle = loop.call_later(1000.0, k.method)
    loop.call_soon(k.method)
    ref, loop_ref = weakref.ref(k), weakref.ref(loop)
    del k, loop
    with pytest.warns(ResourceWarning, match="unclosed event loop"):
        gc.collect()
    assert ref() is None
    assert loop_ref() is None


def test_pending_handle_survives_collection(loop_kind: str) -> None:
    # Collections while callbacks wait must not free (or clear) what they will run.
    loop = new_loop_of_kind(loop_kind)
    try:
        seen: list[int] = []
        for i in range(1000):
            node = Node(loop)
            loop.call_soon(lambda n=node, i=i: seen.append(i) if n.me is n else None)
        del node
        gc.collect()
        run_briefly(loop)
        assert seen == list(range(1000))
    finally:
        loop.close()
