"""Thread hammer: many threads post into a running loop at once (asyncio and steploop).

8 threads x STEPLOOP_HAMMER_CALLS (10^4 in the normal run; the long run is
``STEPLOOP_HAMMER_CALLS=100000 .venv/bin/python -m pytest tests/test_hammer.py``)
`call_soon_threadsafe` calls while the loop runs: nothing lost, nothing run twice, each
thread's calls run in the order it made them. Then `run_coroutine_threadsafe` with
cancellation from either side. No timing assertions: the loop runs until every call arrived
(with a generous guard that only turns a hang into a failure).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from typing import Any

from loop_helpers import run_until_done

THREADS = 8
CALLS = int(os.environ.get("STEPLOOP_HAMMER_CALLS", "10000"))
GUARD = 600.0  # seconds; only turns a lost callback into a failure instead of a hang


def test_call_soon_threadsafe_hammer(loop: asyncio.AbstractEventLoop) -> None:
    seen: list[list[int]] = [[] for _ in range(THREADS)]
    total = THREADS * CALLS
    count = 0
    done = loop.create_future()
    barrier = threading.Barrier(THREADS + 1)

    def record(tid: int, seq: int) -> None:
        nonlocal count
        seen[tid].append(seq)
        count += 1
        if count == total:
            done.set_result(None)

    def post(tid: int) -> None:
        barrier.wait()
        call = loop.call_soon_threadsafe
        for seq in range(CALLS):
            call(record, tid, seq)

    threads = [threading.Thread(target=post, args=(tid,)) for tid in range(THREADS)]
    for t in threads:
        t.start()
    loop.call_soon(barrier.wait)  # the threads start posting once the loop runs
    try:
        run_until_done(loop, done, guard=GUARD)
    finally:
        for t in threads:
            t.join()
    assert count == total
    for tid in range(THREADS):
        assert seen[tid] == list(range(CALLS)), f"thread {tid}: lost, doubled or reordered"
    # nothing posted afterwards, nothing pending
    loop.stop()
    loop.run_forever()
    assert count == total


def test_call_soon_threadsafe_hammer_with_loop_thread_calls(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """Posts from other threads interleave with call_soon from the loop thread; each
    source keeps its own order."""
    n = CALLS // 4
    from_threads: list[tuple[int, int]] = []
    from_loop: list[int] = []
    done = loop.create_future()
    barrier = threading.Barrier(THREADS + 1)
    expected = THREADS * n

    def record(tid: int, seq: int) -> None:
        from_threads.append((tid, seq))
        if len(from_threads) == expected:
            done.set_result(None)

    def local(seq: int) -> None:
        from_loop.append(seq)
        if seq + 1 < n and not done.done():
            loop.call_soon(local, seq + 1)

    def post(tid: int) -> None:
        barrier.wait()
        for seq in range(n):
            loop.call_soon_threadsafe(record, tid, seq)

    threads = [threading.Thread(target=post, args=(tid,)) for tid in range(THREADS)]
    for t in threads:
        t.start()
    loop.call_soon(barrier.wait)
    loop.call_soon(local, 0)
    try:
        run_until_done(loop, done, guard=GUARD)
    finally:
        for t in threads:
            t.join()
    for tid in range(THREADS):
        assert [s for t, s in from_threads if t == tid] == list(range(n))
    assert from_loop == list(range(len(from_loop)))


def test_run_coroutine_threadsafe_cancelled_from_the_thread(
    loop: asyncio.AbstractEventLoop,
) -> None:
    per_thread = 200
    threads_n = 4
    started = 0
    cancelled_inside = 0
    all_started = loop.create_future()

    async def forever() -> None:
        nonlocal started, cancelled_inside
        started += 1
        if started == per_thread * threads_n:
            all_started.set_result(None)
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled_inside += 1
            raise

    results: list[list[str]] = [[] for _ in range(threads_n)]
    go_cancel = threading.Event()

    def client(i: int) -> None:
        futs = [asyncio.run_coroutine_threadsafe(forever(), loop) for _ in range(per_thread)]
        go_cancel.wait()
        for f in futs:
            f.cancel()
        for f in futs:
            try:
                f.result(timeout=GUARD)
            except concurrent.futures.CancelledError:
                results[i].append("cancelled")
            else:
                results[i].append("result")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    run_until_done(loop, all_started, guard=GUARD)
    go_cancel.set()

    async def until_all_cancelled() -> None:
        while cancelled_inside < per_thread * threads_n:
            await asyncio.sleep(0)

    try:
        run_until_done(loop, asyncio.ensure_future(until_all_cancelled(), loop=loop), GUARD)
    finally:
        for t in threads:
            t.join()
    assert results == [["cancelled"] * per_thread] * threads_n
    assert cancelled_inside == per_thread * threads_n


def test_run_coroutine_threadsafe_cancelled_from_the_loop(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """The task is cancelled inside the loop; the thread's concurrent future sees it."""
    n = 500
    tasks: list[asyncio.Task[Any]] = []
    created = loop.create_future()

    async def forever() -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.append(task)
        if len(tasks) == n:
            created.set_result(None)
        await asyncio.sleep(3600)

    outcomes: list[str] = []

    def client() -> None:
        futs = [asyncio.run_coroutine_threadsafe(forever(), loop) for _ in range(n)]
        for f in futs:
            try:
                f.result(timeout=GUARD)
            except concurrent.futures.CancelledError:
                outcomes.append("cancelled")

    t = threading.Thread(target=client)
    t.start()
    try:
        run_until_done(loop, created, guard=GUARD)
        for task in tasks:
            task.cancel()
        gathered = asyncio.gather(*tasks, return_exceptions=True)
        run_until_done(loop, gathered, guard=GUARD)
        # the concurrent futures are completed through call_soon_threadsafe-free chaining
        # (done callbacks run on the loop); let the thread collect them
        done = loop.create_future()

        def wait_thread() -> None:
            t.join()
            loop.call_soon_threadsafe(done.set_result, None)

        threading.Thread(target=wait_thread).start()
        run_until_done(loop, done, guard=GUARD)
    finally:
        t.join()
    assert outcomes == ["cancelled"] * n
