"""Signals and interrupts (asyncio and steploop).

SIGINT with Python's default handler raises KeyboardInterrupt in the main thread wherever it
happens to be: in a callback, between callbacks, or in the loop's blocking poll. It must
escape `run_forever`/`run_until_complete` and leave the loop usable (not running, callbacks
still queued run next time), as on asyncio. `asyncio.Runner` turns the first SIGINT into a
cancellation of the main task. `add_signal_handler` survives a storm of signals; asyncio
coalesces them, so the tests compare semantics (at least one call, loop alive), not counts.

Signals are sent by `signal.raise_signal` (synchronous) or by a helper thread with
`os.kill`; nothing asserts on timing.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from loop_helpers import new_loop_of_kind, run_until_done

GUARD = 30.0  # seconds; turns a missed signal into a failure instead of a hang


@pytest.fixture(autouse=True)
def default_sigint() -> Iterator[None]:
    """Python's own SIGINT handler (raises KeyboardInterrupt), restored afterwards."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def kill_soon(sig: int = signal.SIGINT, count: int = 1, delay: float = 0) -> threading.Thread:
    """Send `sig` to this process from another thread (after `delay` seconds: lets the loop
    reach its poll first, which makes that path likely; no test depends on it)."""

    def send() -> None:
        time.sleep(delay)
        for _ in range(count):
            os.kill(os.getpid(), sig)

    t = threading.Thread(target=send)
    t.start()
    return t


def assert_usable(loop: asyncio.AbstractEventLoop) -> None:
    assert not loop.is_running()
    assert not loop.is_closed()
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()

    async def ok() -> str:
        await asyncio.sleep(0)
        return "ok"

    assert run_until_done(loop, asyncio.ensure_future(ok(), loop=loop)) == "ok"


def test_sigint_inside_callback(loop: asyncio.AbstractEventLoop) -> None:
    calls: list[str] = []

    def interrupt() -> None:
        calls.append("interrupt")
        signal.raise_signal(signal.SIGINT)
        calls.append("not reached")

    loop.call_soon(calls.append, "before")
    loop.call_soon(interrupt)
    loop.call_soon(calls.append, "after")
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    assert calls == ["before", "interrupt"]
    assert_usable(loop)  # runs "after" first: it stayed queued
    assert calls == ["before", "interrupt", "after"]


def test_sigint_inside_timer_callback(loop: asyncio.AbstractEventLoop) -> None:
    calls: list[str] = []
    base = loop.time()
    loop.call_at(base - 2, calls.append, "t1")
    loop.call_at(base - 1, signal.raise_signal, signal.SIGINT)
    loop.call_at(base - 1, calls.append, "t2")
    with pytest.raises(KeyboardInterrupt):
        loop.run_forever()
    assert calls == ["t1"]
    assert_usable(loop)
    assert calls == ["t1", "t2"]


def test_sigint_inside_task(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        await asyncio.sleep(0)
        signal.raise_signal(signal.SIGINT)

    task = loop.create_task(main())
    with pytest.raises(KeyboardInterrupt):
        loop.run_until_complete(task)
    assert task.done()
    assert isinstance(task.exception(), KeyboardInterrupt)
    assert_usable(loop)


def test_sigint_during_run_forever_from_thread(loop: asyncio.AbstractEventLoop) -> None:
    """SIGINT from a thread while callbacks keep the loop busy."""
    interrupted = False

    def busy() -> None:
        if not interrupted:
            loop.call_soon(busy)

    threads: list[threading.Thread] = []
    loop.call_soon(busy)
    loop.call_soon(lambda: threads.append(kill_soon()))
    guard = loop.call_later(GUARD, loop.stop)
    try:
        with pytest.raises(KeyboardInterrupt):
            loop.run_forever()
    finally:
        interrupted = True
        guard.cancel()
        for t in threads:
            t.join()
    assert_usable(loop)


def test_sigint_during_blocking_poll(loop: asyncio.AbstractEventLoop) -> None:
    """Nothing ready, no timer due: the loop blocks in its poll; SIGINT must wake it up
    and escape as KeyboardInterrupt (a long timer stays pending)."""
    started = threading.Event()
    sender: list[threading.Thread] = []

    def start_sender() -> None:
        def send() -> None:
            started.wait()
            # Let the loop reach its poll first (likely, not required: a signal landing
            # earlier still has to escape as KeyboardInterrupt).
            time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGINT)

        t = threading.Thread(target=send)
        t.start()
        sender.append(t)
        started.set()

    loop.call_soon(start_sender)
    far = loop.call_later(3600, lambda: None)
    guard = loop.call_later(GUARD, loop.stop)  # only if the signal is lost
    t0 = loop.time()
    try:
        with pytest.raises(KeyboardInterrupt):
            loop.run_forever()
    finally:
        guard.cancel()
        for t in sender:
            t.join()
    # Not a timing assertion: a poll that ignores EINTR would sleep until the guard (30 s)
    # and only then raise KeyboardInterrupt; this tells that apart from waking at once.
    assert loop.time() - t0 < GUARD / 2, "the poll did not wake up on SIGINT"
    assert not far.cancelled()
    far.cancel()
    assert_usable(loop)


def test_sigint_during_run_until_complete_waiting(loop: asyncio.AbstractEventLoop) -> None:
    """The main task waits on a future nobody resolves; SIGINT from a thread escapes
    run_until_complete and the task stays pending (then cancels normally)."""
    threads: list[threading.Thread] = []

    async def wait_forever() -> None:
        loop.call_soon(lambda: threads.append(kill_soon(delay=0.05)))
        await loop.create_future()

    task = loop.create_task(wait_forever())
    guard = loop.call_later(GUARD, task.cancel)
    t0 = loop.time()
    try:
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(task)
    finally:
        guard.cancel()
        for t in threads:
            t.join()
    assert loop.time() - t0 < GUARD / 2, "the poll did not wake up on SIGINT"
    if not task.done():  # the signal may land in the task step itself: then it is done
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            loop.run_until_complete(task)
    assert_usable(loop)


@pytest.mark.parametrize("where", ["poll", "callback"])
def test_runner_turns_sigint_into_main_task_cancellation(loop_kind: str, where: str) -> None:
    """asyncio.Runner installs its own SIGINT handler: the first SIGINT cancels the main
    task (whose handler runs inside the loop's poll or inside a callback) and run() raises
    KeyboardInterrupt."""
    seen: list[str] = []

    async def main() -> None:
        try:
            if where == "callback":
                signal.raise_signal(signal.SIGINT)
                await asyncio.sleep(3600)
            else:
                threads.append(kill_soon(delay=0.05))
                await asyncio.sleep(3600)  # the loop blocks in its poll
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    threads: list[threading.Thread] = []
    with asyncio.Runner(loop_factory=lambda: new_loop_of_kind(loop_kind)) as runner:
        try:
            with pytest.raises(KeyboardInterrupt):
                runner.run(main())
        finally:
            for t in threads:
                t.join()
        assert seen == ["cancelled"]
        assert runner.run(asyncio.sleep(0, "again")) == "again"


def test_add_signal_handler_sigint_replaces_keyboard_interrupt(
    loop: asyncio.AbstractEventLoop,
) -> None:
    got: list[str] = []
    loop.add_signal_handler(signal.SIGINT, lambda: (got.append("sigint"), loop.stop()))
    try:
        loop.call_soon(signal.raise_signal, signal.SIGINT)
        guard = loop.call_later(GUARD, loop.stop)
        loop.run_forever()
        guard.cancel()
        assert got == ["sigint"]
    finally:
        assert loop.remove_signal_handler(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# A full self-pipe makes CPython report the wakeup-fd write as unraisable (both loops).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("count", [10_000])
def test_signal_storm(loop: asyncio.AbstractEventLoop, count: int) -> None:
    calls: list[Any] = []
    done = loop.create_future()
    loop.add_signal_handler(signal.SIGUSR1, calls.append, "usr1")
    try:

        def storm() -> None:
            for _ in range(count):
                os.kill(os.getpid(), signal.SIGUSR1)
            loop.call_soon_threadsafe(done.set_result, None)

        t = threading.Thread(target=storm)
        loop.call_soon(t.start)
        try:
            run_until_done(loop, done, guard=GUARD)
        finally:
            t.join()

        async def until_handled() -> None:
            while not calls:
                await asyncio.sleep(0)

        run_until_done(loop, asyncio.ensure_future(until_handled(), loop=loop), GUARD)
        assert 1 <= len(calls) <= count
        assert set(calls) == {"usr1"}
        # still alive: the next signal is handled too
        before = len(calls)
        loop.call_soon(signal.raise_signal, signal.SIGUSR1)

        async def until_more() -> None:
            while len(calls) == before:
                await asyncio.sleep(0)

        run_until_done(loop, asyncio.ensure_future(until_more(), loop=loop), GUARD)
    finally:
        assert loop.remove_signal_handler(signal.SIGUSR1)
    assert_usable(loop)


def test_signal_handler_raising_goes_to_exception_handler(
    loop: asyncio.AbstractEventLoop, loop_errors: list[dict[str, Any]]
) -> None:
    def bad() -> None:
        raise ValueError("in signal handler")

    loop.add_signal_handler(signal.SIGUSR2, bad)
    try:
        loop.call_soon(signal.raise_signal, signal.SIGUSR2)

        async def until_error() -> None:
            while not loop_errors:
                await asyncio.sleep(0)

        run_until_done(loop, asyncio.ensure_future(until_error(), loop=loop), GUARD)
    finally:
        loop.remove_signal_handler(signal.SIGUSR2)
    assert len(loop_errors) == 1
    assert isinstance(loop_errors[0]["exception"], ValueError)
    assert loop_errors[0]["message"].startswith("Exception in callback")
