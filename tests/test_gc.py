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


@pytest.mark.steploop_only
def test_handle_free_lists_keep_a_burst_while_running_and_give_it_back() -> None:
    """Freed handles are kept for reuse (up to 65536 per type) while the loop runs, so a burst
    of `call_soon_threadsafe` does not fault its memory in again each time; all but 4096 go
    back when the loop stops, and after a poll that sat idle for a second or more."""
    import steploop
    from steploop import _steploop

    loop = steploop.new_event_loop()
    try:
        kept: list[tuple[int, int]] = []

        def burst() -> None:
            for _ in range(20_000):
                loop.call_soon(lambda: None)
                loop.call_later(3600, lambda: None).cancel()

        def look() -> None:
            kept.append(_steploop._free_handle_counts())

        loop.call_soon(burst)
        loop.call_later(0, lambda: loop.call_soon(look))
        run_briefly(loop, 3)  # the burst; its callbacks and the timer; `look`
        during = kept[-1]
        after_stop = _steploop._free_handle_counts()

        # Idle: a burst again, then a poll that blocks for 1.1 s on a timer.
        done = loop.create_future()

        def finish() -> None:
            look()
            done.set_result(None)

        def look_then_idle() -> None:
            look()
            loop.call_later(1.1, finish)

        loop.call_soon(burst)
        loop.call_later(0, lambda: loop.call_soon(look_then_idle))
        loop.run_until_complete(done)
        before_idle, after_idle = kept[-2], kept[-1]
    finally:
        loop.close()
    assert during[0] > 4096 and during[1] > 4096
    assert after_stop[0] <= 4096 and after_stop[1] <= 4096
    assert before_idle[0] > 4096
    assert after_idle[0] <= 4096 and after_idle[1] <= 4096
