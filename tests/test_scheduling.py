"""Order and timing semantics of call_soon / call_later / call_at / stop (asyncio and steploop).

What one iteration does is asyncio 3.11's `BaseEventLoop._run_once` (DESIGN.md, "One
iteration"): ready callbacks first, due timers appended after them, and only the callbacks
that were ready when the step began run in it.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import math
import sys
import threading
from typing import Any

import pytest
from loop_helpers import run_briefly, run_until_done

# ---------------------------------------------------------------- stop / run_forever


def test_stop_inside_callback_finishes_the_iteration(loop: asyncio.AbstractEventLoop) -> None:
    calls: list[int] = []
    loop.call_soon(calls.append, 1)
    loop.call_soon(loop.stop)
    loop.call_soon(calls.append, 2)  # already ready: runs in the same iteration
    loop.run_forever()
    assert calls == [1, 2]
    assert not loop.is_running()


def test_stop_then_run_forever_runs_exactly_one_iteration(
    loop: asyncio.AbstractEventLoop,
) -> None:
    calls: list[str] = []

    def first() -> None:
        calls.append("first")
        loop.call_soon(second)

    def second() -> None:
        calls.append("second")
        loop.call_soon(calls.append, "third")

    loop.call_soon(first)
    loop.stop()
    loop.run_forever()
    assert calls == ["first"]
    loop.stop()
    loop.run_forever()
    assert calls == ["first", "second"]
    loop.stop()
    loop.run_forever()
    assert calls == ["first", "second", "third"]


def test_stop_twice_is_one_stop(loop: asyncio.AbstractEventLoop) -> None:
    calls: list[int] = []
    loop.call_soon(lambda: loop.call_soon(calls.append, 1))
    loop.stop()
    loop.stop()
    loop.run_forever()
    assert calls == []
    run_briefly(loop)
    assert calls == [1]


def test_callbacks_scheduled_after_stop_run_in_the_next_run(
    loop: asyncio.AbstractEventLoop,
) -> None:
    calls: list[str] = []

    def stopper() -> None:
        loop.stop()
        loop.call_soon(calls.append, "after stop")

    loop.call_soon(stopper)
    loop.call_soon(calls.append, "same iteration")
    loop.run_forever()
    assert calls == ["same iteration"]

    # Queued before the next run: it runs first thing in that run.
    loop.call_soon(calls.append, "queued between runs")
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert calls == ["same iteration", "after stop", "queued between runs"]


def test_stop_before_run_until_complete_does_not_leak(loop: asyncio.AbstractEventLoop) -> None:
    # run_forever resets the stopping flag when it returns: a later run is unaffected.
    run_briefly(loop)
    fut = loop.create_future()
    loop.call_soon(lambda: loop.call_soon(fut.set_result, "done"))
    assert run_until_done(loop, fut) == "done"


def test_run_until_complete_stopped_early(loop: asyncio.AbstractEventLoop) -> None:
    fut = loop.create_future()
    loop.call_soon(loop.stop)
    with pytest.raises(RuntimeError, match="^Event loop stopped before Future completed.$"):
        loop.run_until_complete(fut)
    assert not loop.is_running()


# ---------------------------------------------------------------- ready queue and timers


def test_call_soon_is_fifo(loop: asyncio.AbstractEventLoop) -> None:
    calls: list[int] = []
    for i in range(200):
        loop.call_soon(calls.append, i)
    run_briefly(loop)
    assert calls == list(range(200))


def test_call_soon_passes_args(loop: asyncio.AbstractEventLoop) -> None:
    calls: list[tuple[Any, ...]] = []
    loop.call_soon(lambda *a: calls.append(a), 1, "two", None)
    loop.call_soon(lambda: calls.append(()))
    run_briefly(loop)
    assert calls == [(1, "two", None), ()]


def test_call_later_zero_runs_after_ready_callbacks(loop: asyncio.AbstractEventLoop) -> None:
    calls: list[str] = []
    loop.call_later(0, calls.append, "timer")
    loop.call_soon(calls.append, "soon 1")
    loop.call_soon(calls.append, "soon 2")
    run_briefly(loop)  # the timer is due in this iteration, and runs after the ready ones
    assert calls == ["soon 1", "soon 2", "timer"]


def test_call_later_zero_from_callback(loop: asyncio.AbstractEventLoop) -> None:
    calls: list[str] = []

    def schedule() -> None:
        loop.call_later(0, calls.append, "timer")
        loop.call_soon(calls.append, "soon")

    loop.call_soon(schedule)
    run_briefly(loop)
    assert calls == []
    run_briefly(loop)
    assert calls == ["soon", "timer"]


def test_call_later_zero_stays_a_timer(loop: asyncio.AbstractEventLoop) -> None:
    handle = loop.call_later(0, lambda: None)
    # A TimerHandle (steploop's own class is not asyncio's, as with uvloop): it has when().
    assert type(handle).__name__ == "TimerHandle"
    assert handle.when() <= loop.time()
    handle.cancel()


def test_timers_with_equal_deadlines_run_in_scheduling_order(
    loop: asyncio.AbstractEventLoop,
) -> None:
    # asyncio keeps scheduling order for up to 3 equal deadlines only: see below.
    calls: list[int] = []
    when = loop.time() - 1.0
    for i in range(3):
        loop.call_at(when, calls.append, i)
    run_briefly(loop)
    assert calls == [0, 1, 2]


class _Keyed:
    """Compares like asyncio's TimerHandle: by deadline only."""

    def __init__(self, when: float, index: int) -> None:
        self.when = when
        self.index = index

    def __lt__(self, other: _Keyed) -> bool:
        return self.when < other.when


def _heapq_order(n: int) -> list[int]:
    """The order in which asyncio's heapq pops n timers with one deadline."""
    heap: list[_Keyed] = []
    for i in range(n):
        heapq.heappush(heap, _Keyed(0.0, i))
    return [heapq.heappop(heap).index for _ in range(n)]


@pytest.mark.parametrize("n", [4, 5, 50])
def test_equal_deadlines_run_in_heapq_order(loop: asyncio.AbstractEventLoop, n: int) -> None:
    # heapq is not stable: with 4 equal deadlines asyncio runs them 0, 2, 1, 3. A
    # drop-in loop runs them in that same order (steploop: TieBreak::Asyncio).
    calls: list[int] = []
    when = loop.time() - 1.0
    for i in range(n):
        loop.call_at(when, calls.append, i)
    run_briefly(loop)
    assert calls == _heapq_order(n)
    assert calls != list(range(n))


def test_call_at_runs_in_deadline_order(loop: asyncio.AbstractEventLoop) -> None:
    calls: list[str] = []
    now = loop.time()
    # Already due: all move to the ready queue in one iteration, in deadline order.
    loop.call_at(now - 1.0, calls.append, "c")
    loop.call_at(now - 3.0, calls.append, "a")
    loop.call_at(now - 2.0, calls.append, "b")
    run_briefly(loop)
    assert calls == ["a", "b", "c"]

    # In the future: still deadline order, whatever the scheduling order.
    calls.clear()
    now = loop.time()
    done = loop.create_future()
    loop.call_at(now + 0.03, calls.append, "z")
    loop.call_at(now + 0.01, calls.append, "x")
    loop.call_at(now + 0.04, done.set_result, None)
    loop.call_at(now + 0.02, calls.append, "y")
    run_until_done(loop, done)
    assert calls == ["x", "y", "z"]


def test_timer_waits_until_its_deadline(loop: asyncio.AbstractEventLoop) -> None:
    seen: list[float] = []
    handle = loop.call_later(0.02, lambda: seen.append(loop.time()))
    done = loop.create_future()
    loop.call_later(0.03, done.set_result, None)
    run_until_done(loop, done)
    # Judged by the loop's own clock (with asyncio's clock_resolution slack).
    assert len(seen) == 1
    assert seen[0] >= handle.when() - 0.01


def test_timer_handle_when(loop: asyncio.AbstractEventLoop) -> None:
    when = loop.time() + 100.0
    handle = loop.call_at(when, lambda: None)
    assert handle.when() == when
    later = loop.call_later(50.0, lambda: None)
    assert when - 60.0 < later.when() < when
    handle.cancel()
    later.cancel()


def test_loop_time_is_monotonic_clock(loop: asyncio.AbstractEventLoop) -> None:
    import time

    before = time.monotonic()
    t = loop.time()
    after = time.monotonic()
    assert before <= t <= after


# ---------------------------------------------------------------- cancellation


def test_cancelled_handles_and_timers_never_run(loop: asyncio.AbstractEventLoop) -> None:
    calls: list[str] = []
    soon = loop.call_soon(calls.append, "soon")
    due = loop.call_at(loop.time() - 1.0, calls.append, "due timer")
    zero = loop.call_later(0, calls.append, "zero timer")
    later = loop.call_later(0.01, calls.append, "later timer")
    for handle in (soon, due, zero, later):
        handle.cancel()
        assert handle.cancelled()
    loop.call_soon(calls.append, "kept")
    done = loop.create_future()
    loop.call_later(0.02, done.set_result, None)
    run_until_done(loop, done)
    assert calls == ["kept"]


def test_cancel_is_idempotent(loop: asyncio.AbstractEventLoop) -> None:
    calls: list[int] = []
    handle = loop.call_soon(calls.append, 1)
    handle.cancel()
    handle.cancel()
    timer = loop.call_later(0, calls.append, 2)
    timer.cancel()
    timer.cancel()
    run_briefly(loop, 2)
    assert calls == []


def test_cancel_after_run_is_harmless(loop: asyncio.AbstractEventLoop) -> None:
    calls: list[int] = []
    handle = loop.call_soon(calls.append, 1)
    timer = loop.call_later(0, calls.append, 2)
    run_briefly(loop)
    handle.cancel()
    timer.cancel()
    run_briefly(loop)
    assert calls == [1, 2]


def test_cancel_timer_from_callback_in_same_iteration(loop: asyncio.AbstractEventLoop) -> None:
    calls: list[str] = []
    now = loop.time()
    victim = loop.call_at(now - 1.0, calls.append, "victim")  # due in this iteration

    def killer() -> None:
        calls.append("killer")
        victim.cancel()

    # The killer timer runs first (earlier deadline); the victim was already moved
    # to the ready queue for this iteration, and must still be skipped.
    loop.call_at(now - 2.0, killer)
    run_briefly(loop)
    assert calls == ["killer"]
    run_briefly(loop)
    assert calls == ["killer"]


def test_cancel_due_timer_from_ready_callback(loop: asyncio.AbstractEventLoop) -> None:
    calls: list[str] = []
    victim = loop.call_later(0, calls.append, "victim")
    loop.call_soon(victim.cancel)
    loop.call_soon(calls.append, "soon")
    run_briefly(loop)
    assert calls == ["soon"]


def test_cancel_handle_from_earlier_callback(loop: asyncio.AbstractEventLoop) -> None:
    calls: list[int] = []
    handles: list[asyncio.Handle] = []
    loop.call_soon(lambda: handles[0].cancel())
    handles.append(loop.call_soon(calls.append, 1))
    loop.call_soon(calls.append, 2)
    run_briefly(loop)
    assert calls == [2]


def test_many_cancelled_timers(loop: asyncio.AbstractEventLoop) -> None:
    # Enough cancelled timers to trigger asyncio's heap compaction (> 100 and > half).
    calls: list[int] = []
    handles = [loop.call_later(10.0 + i, calls.append, i) for i in range(500)]
    for handle in handles[:400]:
        handle.cancel()
    loop.call_at(loop.time() - 1.0, calls.append, -1)
    run_briefly(loop)
    assert calls == [-1]
    for handle in handles[400:]:
        handle.cancel()
    run_briefly(loop)
    assert calls == [-1]


# ---------------------------------------------------------------- odd delays


def test_negative_delay_runs_asap(loop: asyncio.AbstractEventLoop) -> None:
    calls: list[str] = []
    loop.call_later(-5.0, calls.append, "negative")
    loop.call_soon(calls.append, "soon")
    run_briefly(loop)
    assert calls == ["soon", "negative"]


def test_nan_delay_runs_asap(loop: asyncio.AbstractEventLoop) -> None:
    # asyncio: when=nan compares False with everything, so the timer is never
    # "in the future": it runs in the first iteration, after the ready callbacks.
    calls: list[str] = []
    handle = loop.call_later(math.nan, calls.append, "nan")
    assert math.isnan(handle.when())
    loop.call_soon(calls.append, "soon")
    run_briefly(loop)
    assert calls == ["soon", "nan"]


def test_nan_call_at_runs_asap(loop: asyncio.AbstractEventLoop) -> None:
    calls: list[str] = []
    loop.call_at(math.nan, calls.append, "nan")
    loop.call_later(-1.0, calls.append, "negative")
    loop.call_soon(calls.append, "soon")
    run_briefly(loop)
    assert calls[0] == "soon"
    assert sorted(calls[1:]) == ["nan", "negative"]


def test_infinite_delay_never_runs(loop: asyncio.AbstractEventLoop) -> None:
    calls: list[str] = []
    handle = loop.call_later(math.inf, calls.append, "never")
    assert handle.when() == math.inf
    loop.call_soon(calls.append, "soon")
    run_briefly(loop, 2)
    assert calls == ["soon"]
    handle.cancel()


def test_none_delay_and_when(loop: asyncio.AbstractEventLoop) -> None:
    with pytest.raises(TypeError, match="^delay must not be None$"):
        loop.call_later(None, lambda: None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="^when cannot be None$"):
        loop.call_at(None, lambda: None)  # type: ignore[arg-type]


def test_integer_delay(loop: asyncio.AbstractEventLoop) -> None:
    calls: list[int] = []
    loop.call_later(0, calls.append, 1)
    loop.call_at(int(loop.time()) - 1, calls.append, 2)
    run_briefly(loop)
    assert calls == [2, 1]


# ---------------------------------------------------------------- closing


def test_close_with_pending_callbacks(loop: asyncio.AbstractEventLoop) -> None:
    calls: list[str] = []
    loop.call_soon(calls.append, "soon")
    loop.call_later(0, calls.append, "timer")
    loop.call_later(100.0, calls.append, "far timer")
    loop.close()
    assert loop.is_closed()
    assert calls == []
    loop.close()  # idempotent
    for schedule in (
        lambda: loop.call_soon(calls.append, "x"),
        lambda: loop.call_later(0, calls.append, "x"),
        lambda: loop.call_at(loop.time(), calls.append, "x"),
        lambda: loop.call_soon_threadsafe(calls.append, "x"),
    ):
        with pytest.raises(RuntimeError, match="^Event loop is closed$"):
            schedule()
    with pytest.raises(RuntimeError, match="^Event loop is closed$"):
        loop.run_forever()
    assert calls == []


# ---------------------------------------------------------------- threads


def test_call_soon_threadsafe_from_another_thread(loop: asyncio.AbstractEventLoop) -> None:
    seen: list[int] = []
    done = loop.create_future()

    def in_thread() -> None:
        for i in range(100):
            loop.call_soon_threadsafe(seen.append, i)
        loop.call_soon_threadsafe(done.set_result, threading.get_ident())

    threads: list[threading.Thread] = []

    def start() -> None:  # once the loop is polling, so the wake-up is needed
        thread = threading.Thread(target=in_thread)
        threads.append(thread)
        thread.start()

    loop.call_soon(start)
    thread_id = run_until_done(loop, done)
    threads[0].join()
    assert thread_id != threading.get_ident()
    assert seen == list(range(100))


def test_call_soon_threadsafe_wakes_a_blocked_loop(loop: asyncio.AbstractEventLoop) -> None:
    # Nothing is scheduled: the loop blocks in its poll until the other thread wakes it.
    started = threading.Event()
    done = loop.create_future()

    def in_thread() -> None:
        started.wait()
        loop.call_soon_threadsafe(done.set_result, "woken")

    thread = threading.Thread(target=in_thread)
    thread.start()
    loop.call_soon(started.set)
    assert run_until_done(loop, done) == "woken"
    thread.join()


def test_call_soon_threadsafe_same_thread_keeps_fifo(loop: asyncio.AbstractEventLoop) -> None:
    calls: list[int] = []
    loop.call_soon(calls.append, 1)
    loop.call_soon_threadsafe(calls.append, 2)
    loop.call_soon(calls.append, 3)
    loop.call_soon_threadsafe(calls.append, 4)
    run_briefly(loop)
    assert calls == [1, 2, 3, 4]


def test_debug_call_soon_from_wrong_thread(loop: asyncio.AbstractEventLoop) -> None:
    loop.set_debug(True)
    errors: list[BaseException] = []

    def in_thread() -> None:
        try:
            loop.call_soon(lambda: None)
        except RuntimeError as exc:
            errors.append(exc)

    def in_loop() -> None:  # the loop is running: its thread id is known
        thread = threading.Thread(target=in_thread)
        thread.start()
        thread.join()

    loop.call_soon(in_loop)
    run_briefly(loop)
    assert [str(e) for e in errors] == [
        "Non-thread-safe operation invoked on an event loop other than the current one"
    ]


# ---------------------------------------------------------------- contextvars

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="default")


def test_context_argument(loop: asyncio.AbstractEventLoop) -> None:
    ctx = contextvars.copy_context()
    ctx.run(var.set, "in ctx")
    seen: list[tuple[str, str]] = []

    def record(label: str) -> None:
        seen.append((label, var.get()))

    loop.call_soon(record, "soon", context=ctx)
    loop.call_later(0, record, "later", context=ctx)
    loop.call_at(loop.time() - 1.0, record, "at", context=ctx)
    loop.call_soon_threadsafe(record, "threadsafe", context=ctx)
    loop.call_soon(record, "no context")
    run_briefly(loop)
    assert sorted(seen) == sorted(
        [
            ("soon", "in ctx"),
            ("later", "in ctx"),
            ("at", "in ctx"),
            ("threadsafe", "in ctx"),
            ("no context", "default"),
        ]
    )


def test_context_changes_stay_in_context(loop: asyncio.AbstractEventLoop) -> None:
    ctx = contextvars.copy_context()
    loop.call_soon(var.set, "changed", context=ctx)
    loop.call_soon(var.set, "leaked?")  # runs in a copy of the current context
    run_briefly(loop)
    assert ctx[var] == "changed"
    assert var.get() == "default"


def test_default_context_is_copied_when_scheduling(loop: asyncio.AbstractEventLoop) -> None:
    seen: list[str] = []

    def schedule() -> None:
        var.set("at scheduling")
        loop.call_soon(lambda: seen.append(var.get()))
        loop.call_later(0, lambda: seen.append(var.get()))
        var.set("after scheduling")

    contextvars.copy_context().run(schedule)
    run_briefly(loop)
    assert seen == ["at scheduling", "at scheduling"]


def test_handles_from_one_context_do_not_see_each_others_changes(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """Handles scheduled from the same context (steploop shares one snapshot between them,
    crates/steploop-py/src/context.rs) each run as in their own copy: what one sets, the
    next does not see; a child scheduled by the one that set it does; the scheduling
    context is untouched."""
    seen: list[tuple[str, str]] = []

    def setter(label: str) -> None:
        seen.append((label, var.get()))
        var.set(f"set by {label}")
        loop.call_soon(lambda: seen.append((f"child of {label}", var.get())))

    def reader(label: str) -> None:
        seen.append((label, var.get()))

    for i in range(3):
        loop.call_soon(setter, f"s{i}")
        loop.call_soon(reader, f"r{i}")
        loop.call_later(0, reader, f"t{i}")
    run_briefly(loop)
    run_briefly(loop)
    assert sorted(seen) == sorted(
        [(f"s{i}", "default") for i in range(3)]
        + [(f"r{i}", "default") for i in range(3)]
        + [(f"t{i}", "default") for i in range(3)]
        + [(f"child of s{i}", f"set by s{i}") for i in range(3)]
    )
    assert var.get() == "default"


def test_snapshots_follow_the_scheduling_context(loop: asyncio.AbstractEventLoop) -> None:
    """Each handle sees the context as it was when it was scheduled, also when many handles
    are scheduled between two changes, from this thread and from another one."""
    seen: list[str] = []

    def schedule() -> None:
        for value in ("a", "b", "c"):
            var.set(value)
            for _ in range(100):
                loop.call_soon(lambda: seen.append(var.get()))

    def from_thread() -> None:
        var.set("thread")
        for _ in range(100):
            loop.call_soon_threadsafe(lambda: seen.append(var.get()))

    contextvars.copy_context().run(schedule)
    thread = threading.Thread(target=from_thread)
    thread.start()
    thread.join()
    run_briefly(loop)
    assert seen == ["a"] * 100 + ["b"] * 100 + ["c"] * 100 + ["thread"] * 100


def test_snapshot_after_the_context_changed_in_place(loop: asyncio.AbstractEventLoop) -> None:
    """The scheduling context is changed between two handles (steploop compares the current
    context's variables with the last snapshot's before copying), from a thread that had no
    context before its first handle, and from the loop's thread."""
    seen: list[str] = []

    def from_thread() -> None:
        loop.call_soon_threadsafe(lambda: seen.append(var.get()))  # no context yet
        var.set("thread")
        loop.call_soon_threadsafe(lambda: seen.append(var.get()))
        var.set("thread again")
        loop.call_soon_threadsafe(lambda: seen.append(var.get()))

    thread = threading.Thread(target=from_thread)
    thread.start()
    thread.join()

    def schedule() -> None:
        loop.call_soon(lambda: seen.append(var.get()))
        var.set("here")
        loop.call_soon(lambda: seen.append(var.get()))
        loop.call_soon(lambda: seen.append(var.get()))

    contextvars.copy_context().run(schedule)
    run_briefly(loop)
    assert seen == ["default", "thread", "thread again", "default", "here", "here"]


@pytest.mark.skipif(
    sys.implementation.name != "cpython" or not (3, 11) <= sys.version_info[:2] < (3, 14),
    reason="the thread state's context is only read on CPython 3.11-3.13",
)
@pytest.mark.steploop_only
def test_steploop_reads_the_current_context_directly() -> None:
    # Handles scheduled without context= from an unchanged context reuse the last snapshot
    # without copying the context first; the field must be found on this interpreter.
    from steploop import _steploop

    assert _steploop._current_context_known()


def test_callback_raising_after_a_change_leaves_no_trace(
    loop: asyncio.AbstractEventLoop, loop_errors: list[dict[str, Any]]
) -> None:
    seen: list[str] = []

    def set_and_raise() -> None:
        var.set("changed")
        raise ZeroDivisionError

    loop.call_soon(set_and_raise)
    loop.call_soon(lambda: seen.append(var.get()))
    run_briefly(loop)
    assert seen == ["default"]
    assert [type(c["exception"]) for c in loop_errors] == [ZeroDivisionError]


@pytest.mark.steploop_only
def test_nested_run_inside_a_handle_sharing_the_snapshot() -> None:
    """A reentrant loop runs handles from inside a handle: a handle that shares the running
    one's snapshot (which is entered) still runs, with its own view of the variables."""
    import steploop

    lp = steploop.new_event_loop(reentrant=True)
    seen: list[tuple[str, str]] = []

    def inner() -> None:
        seen.append(("inner", var.get()))
        var.set("set by inner")

    def outer() -> None:
        var.set("set by outer")
        fut = lp.create_future()
        lp.call_soon(inner)  # scheduled from outer's (changed) context
        lp.call_soon(fut.set_result, None)
        lp.run_until_complete(fut)
        seen.append(("outer after", var.get()))

    try:
        lp.call_soon(outer)
        lp.call_soon(lambda: seen.append(("sibling", var.get())))
        run_briefly(lp)
    finally:
        lp.close()
    assert seen == [
        ("inner", "set by outer"),
        ("outer after", "set by outer"),
        ("sibling", "default"),
    ]


@pytest.mark.steploop_only
def test_nested_run_meets_a_handle_of_the_running_snapshot() -> None:
    """A reader added from the same context as the running handle fires in a nested run,
    while that handle has changed a variable: the reader sees the context as it was when it
    was added, not the running handle's change."""
    import socket

    import steploop

    lp = steploop.new_event_loop(reentrant=True)
    a, b = socket.socketpair()
    seen: list[tuple[str, str]] = []
    try:
        fired = lp.create_future()

        def on_read() -> None:
            b.recv(10)
            lp.remove_reader(b)
            seen.append(("reader", var.get()))
            var.set("set by reader")
            fired.set_result(None)

        def outer() -> None:
            var.set("set by outer")
            a.send(b"x")
            lp.run_until_complete(fired)
            seen.append(("outer after", var.get()))

        lp.add_reader(b, on_read)
        lp.call_soon(outer)
        run_briefly(lp)
    finally:
        lp.close()
        a.close()
        b.close()
    assert seen == [("reader", "default"), ("outer after", "set by outer")]


def test_snapshot_released_when_the_loop_closes(loop: asyncio.AbstractEventLoop) -> None:
    import gc
    import weakref

    handle = loop.call_soon(lambda: None)
    ref = weakref.ref(handle._context)  # type: ignore[attr-defined]
    del handle
    loop.close()
    gc.collect()
    assert ref() is None


def test_create_task_context(loop: asyncio.AbstractEventLoop) -> None:
    ctx = contextvars.copy_context()
    ctx.run(var.set, "task ctx")

    async def read() -> str:
        await asyncio.sleep(0)
        return var.get()

    task = loop.create_task(read(), context=ctx)
    assert run_until_done(loop, task) == "task ctx"
    task2 = loop.create_task(read())
    assert run_until_done(loop, task2) == "default"
